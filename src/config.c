/*
 * config: settings table, value parsing and the config file reader.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "logsink/clock.h"
#include "logsink/config.h"
#include "logsink/framer.h"
#include "logsink/parser.h"
#include "logsink/log.h"
#include "logsink/tls.h"
#include "logsink/tzrule.h"

enum cf_type {
	CF_LISTEN,   /* repeatable HOST:PORT */
	CF_STRING,   /* free text */
	CF_CONNINFO, /* free text never shown: it may hold a password */
	CF_HOSTPORT, /* one HOST:PORT */
	CF_TABLE,    /* [schema.]table identifier */
	CF_LEVEL,    /* log level name */
	CF_INT,      /* plain integer */
	CF_SIZE,     /* bytes, with optional KiB/MiB/GiB suffix */
	CF_MS,       /* duration in ms; a bare number means ms */
	CF_SECONDS,  /* duration in ms; a bare number means seconds */
	CF_VERIFY,   /* none, optional or require */
	CF_TLSVER,   /* 1.2 or 1.3 */
	CF_RATEMODE, /* pause or drop */
};

/*
 * One setting.  reload says what SIGHUP does with a new value: the part of
 * the daemon that applies it at run time, or CONFIG_RESTART.
 */
struct cf_key {
	const char *name;
	enum cf_type type;
	size_t offset;
	const char *def;
	long long min, max;
	enum config_reload reload;
	const char *help;
};

#define OFF(f) offsetof(struct config, f)

static const struct cf_key cf_keys[] = {
	{ "listen", CF_LISTEN, OFF(listen), CONFIG_DEFAULT_LISTEN, 0, 0,
	    CONFIG_RESTART, "address to accept TCP clients on (repeatable)" },
	{ "db", CF_CONNINFO, OFF(db), NULL, 0, 0, CONFIG_RESTART,
	    "libpq conninfo or postgresql:// URI; unset: the PG* environment" },
	{ "db-file", CF_STRING, OFF(db_file), NULL, 0, 0, CONFIG_RESTART,
	    "read the db setting from this file (keeps a password out of "
	    "the config and the process list)" },
	{ "table", CF_TABLE, OFF(table), "public.logs", 0, 0, CONFIG_RESTART,
	    "table the lines are written to" },
	{ "log-level", CF_LEVEL, OFF(log_level), "info", 0, 0, CONFIG_APPLY_LOG,
	    "debug, info, notice, warning or error" },
	{ "max-line-bytes", CF_SIZE, OFF(max_line_bytes), "64KiB", 16,
	    1LL << 30, CONFIG_RESTART,
	    "longer lines are truncated (counted, logged)" },
	/* Confirmed: throughput is PostgreSQL's; 16 MiB is as fast, 256 MiB
	 * no faster (more RSS and CPU).  The size sets how long an outage or
	 * a burst is absorbed (docs/performance.md, "Queue"). */
	{ "queue-bytes", CF_SIZE, OFF(queue_bytes), "64MiB", 64 * 1024,
	    1LL << 40, CONFIG_RESTART,
	    "memory for lines not yet committed; full = stop reading" },
	{ "queue-resume-percent", CF_INT, OFF(queue_resume_percent), "75", 1,
	    99, CONFIG_RESTART,
	    "reading resumes when the queue drops below this fill level" },
	/* Confirmed: 1 leaves a core idle, 3 or 4 add PostgreSQL CPU per row
	 * without more throughput on 2 cores (docs/performance.md). */
	{ "db-connections", CF_INT, OFF(db_connections), "2", 1, 64,
	    CONFIG_RESTART, "PostgreSQL connections writing in parallel" },
	/* Confirmed: 20000 saves ~8 % of PostgreSQL's CPU per row but doubles
	 * the p99 ack latency at half the maximum rate; 1000 costs ~5 % more
	 * (docs/performance.md, "Batch size and flush interval"). */
	{ "batch-lines", CF_INT, OFF(batch_lines), "5000", 1, 10000000,
	    CONFIG_APPLY_QUEUE, "most lines in one COPY" },
	/* Confirmed: only long lines reach it before batch-lines. */
	{ "batch-bytes", CF_SIZE, OFF(batch_bytes), "16MiB", 4096, 1LL << 32,
	    CONFIG_APPLY_QUEUE,
	    "a batch is closed once its encoded rows reach this size" },
	/* Confirmed: bounds the latency of slow senders; under load batches
	 * fill first (docs/performance.md). */
	{ "flush-interval-ms", CF_MS, OFF(flush_interval_ms), "100", 1, 60000,
	    CONFIG_APPLY_POOL,
	    "longest a line waits before its batch is sent" },
	{ "shutdown-timeout", CF_SECONDS, OFF(shutdown_timeout_ms), "30s", 0,
	    3600000, CONFIG_APPLY_READ,
	    "time allowed to flush the queue on SIGTERM" },
	{ "reconnect-min-ms", CF_MS, OFF(reconnect_min_ms), "100", 1, 3600000,
	    CONFIG_APPLY_POOL, "first reconnect delay after a database error" },
	{ "reconnect-max-ms", CF_MS, OFF(reconnect_max_ms), "30000", 1, 3600000,
	    CONFIG_APPLY_POOL, "reconnect delays double up to this" },
	{ "stats-interval", CF_SECONDS, OFF(stats_interval_ms), "60s", 0,
	    86400000, CONFIG_APPLY_STATS,
	    "period of the \"stats:\" log line (0: never); it ends with the "
	    "event loop's lag (loop_lag_max_ms, loop_lag_p99_ms)" },
	{ "db-timeout", CF_SECONDS, OFF(db_timeout_ms), "30s", 1000, 3600000,
	    CONFIG_APPLY_POOL,
	    "a database command without progress this long is given "
	    "up: reconnect, retry the batch" },
	{ "maintenance-timeout", CF_SECONDS, OFF(maintenance_timeout_ms), "1h",
	    1000, 86400000, CONFIG_APPLY_POOL,
	    "partition upkeep (creating, indexing, dropping partitions) may "
	    "take this long" },
	{ "metrics-listen", CF_HOSTPORT, OFF(metrics_listen), NULL, 0, 0,
	    CONFIG_RESTART,
	    "HOST:PORT serving /metrics and /healthz over HTTP; unset: off" },
	{ "partitions-ahead", CF_INT, OFF(partitions_ahead), "3", 0, 365,
	    CONFIG_APPLY_PARTITIONS,
	    "daily partitions created ahead of today" },
	{ "retention-days", CF_INT, OFF(retention_days), "0", 0, 1000000,
	    CONFIG_APPLY_PARTITIONS,
	    "partitions older than this many days are dropped (0: keep all)" },
	{ "max-connections", CF_INT, OFF(max_connections), "10000", 1, 1000000,
	    CONFIG_APPLY_LISTENERS,
	    "client connections open at once; more are refused" },
	{ "max-connections-per-ip", CF_INT, OFF(max_connections_per_ip), "1000",
	    0, 1000000, CONFIG_APPLY_LISTENERS,
	    "connections from one address at once (0: no limit)" },
	{ "idle-timeout", CF_SECONDS, OFF(idle_timeout_ms), "1h", 0, 2000000000,
	    CONFIG_APPLY_LISTENERS,
	    "close a connection that sent nothing this long (0: "
	    "never)" },
	{ "partial-line-timeout", CF_SECONDS, OFF(partial_line_timeout_ms),
	    "60s", 0, 2000000000, CONFIG_APPLY_LISTENERS,
	    "close a connection whose unfinished line waited this long; the "
	    "part received is stored (0: never)" },
	/* Longer than a pause inside one send() across a WAN (an RTT);
	 * short next to a person's notice of a line (framer.h, AUTO). */
	{ "framing-detect-timeout", CF_SECONDS, OFF(framing_detect_timeout_ms),
	    "500ms", 0, 60000, CONFIG_APPLY_LISTENERS,
	    "framing=auto: a <PRI> connection's first lines, when nothing "
	    "yet tells LF from NUL framing, wait this long without new bytes, "
	    "then are taken as LF lines" },
	/* UDP has no back-pressure: the receive buffer is all that absorbs a
	 * burst while the loop is busy (bench/udp.sh).  The kernel caps it at
	 * net.core.rmem_max unless started as root (SO_RCVBUFFORCE). */
	{ "udp-rcvbuf", CF_SIZE, OFF(udp_rcvbuf_bytes), "4MiB", 4096, 1LL << 30,
	    CONFIG_RESTART,
	    "kernel receive buffer of proto=udp listeners (capped by "
	    "net.core.rmem_max; what was granted is logged)" },
	{ "user", CF_STRING, OFF(user), NULL, 0, 0, CONFIG_RESTART,
	    "when started as root, switch to this user after binding" },
	{ "spool-dir", CF_STRING, OFF(spool_dir), NULL, 0, 0, CONFIG_RESTART,
	    "directory for lines the database cannot take yet (memory full, "
	    "shutdown); unset: no disk spool" },
	{ "spool-max-bytes", CF_SIZE, OFF(spool_max_bytes), "1GiB", 1024 * 1024,
	    1LL << 50, CONFIG_RESTART,
	    "disk the spool may use; when it and the queue are full, "
	    "reading stops" },
	{ "spool-segment-bytes", CF_SIZE, OFF(spool_segment_bytes), "16MiB",
	    64 * 1024, 1LL << 32, CONFIG_RESTART,
	    "spool file size; a file is deleted once all its lines are "
	    "stored" },
	{ "spool-sync-interval-ms", CF_MS, OFF(spool_sync_interval_ms), "100",
	    1, 60000, CONFIG_RESTART,
	    "the spool is fdatasync()ed this often, on a helper thread; "
	    "ack=spooled acks wait for it" },
	{ "tls-cert", CF_STRING, OFF(tls_cert), NULL, 0, 0, CONFIG_APPLY_TLS,
	    "PEM certificate (then its chain) of tls=on listeners; re-read "
	    "on SIGHUP" },
	{ "tls-key", CF_STRING, OFF(tls_key), NULL, 0, 0, CONFIG_APPLY_TLS,
	    "PEM private key of tls-cert (not encrypted); re-read on SIGHUP" },
	{ "tls-ca", CF_STRING, OFF(tls_ca), NULL, 0, 0, CONFIG_APPLY_TLS,
	    "PEM CA certificates client certificates must chain to" },
	{ "tls-verify-client", CF_VERIFY, OFF(tls_verify_client), "none", 0, 0,
	    CONFIG_APPLY_TLS,
	    "client certificates: none (not asked), optional (one sent must "
	    "verify), require" },
	{ "tls-min-version", CF_TLSVER, OFF(tls_min_version), "1.2", 0, 0,
	    CONFIG_APPLY_TLS, "oldest TLS version accepted: 1.2 or 1.3" },
	{ "tls-handshake-timeout", CF_SECONDS, OFF(tls_handshake_timeout_ms),
	    "10s", 0, 2000000000, CONFIG_APPLY_TLS,
	    "close a TLS connection whose handshake has not finished after "
	    "this long (0: idle-timeout applies)" },
	{ "tls-max-handshakes", CF_INT, OFF(tls_max_handshakes), "1000", 1,
	    1000000, CONFIG_APPLY_LISTENERS,
	    "TLS connections still in their handshake at once (each holds "
	    "about 48 KiB); more are refused" },
	{ "proxy-header-timeout", CF_SECONDS, OFF(proxy_header_timeout_ms),
	    "10s", 1, 2000000000, CONFIG_APPLY_LISTENERS,
	    "close a connection on a proxy= listener whose PROXY header has "
	    "not arrived whole after this long" },
	{ "proxy-max-header-bytes", CF_SIZE, OFF(proxy_max_header_bytes),
	    "1KiB", 232, 65551, CONFIG_APPLY_LISTENERS,
	    "longest PROXY v2 header (with its TLVs) a proxy= listener takes; "
	    "v1 lines are at most 107 bytes" },
	/* Fluentd's out_forward sends a buffer chunk per message (8 MiB by
	 * default, chunk_limit_size), so it must fit; decoding one holds
	 * it, its inflated entries and one entry's values (forward.h). */
	{ "forward-max-message-bytes", CF_SIZE, OFF(forward_max_message_bytes),
	    "8MiB", 1024, 1LL << 30, CONFIG_APPLY_LISTENERS,
	    "longest Fluent forward message (proto=forward), and most bytes "
	    "its compressed entries inflate to; longer ones close the "
	    "connection" },
	{ "forward-max-entries", CF_INT, OFF(forward_max_entries), "1000000", 1,
	    100000000, CONFIG_APPLY_LISTENERS,
	    "most entries in one Fluent forward message; more close the "
	    "connection" },
	/* proto=http listeners (listener_http.c).  A curl or browser head is
	 * under 1 KiB; OTel SDKs and systemd-journal-upload send a few
	 * hundred bytes of fields. */
	{ "http-max-header-bytes", CF_SIZE, OFF(http_max_header_bytes), "16KiB",
	    256, 65536, CONFIG_APPLY_LISTENERS,
	    "proto=http: longest request head (request line and header "
	    "fields), chunk-size line or trailer section; more: 431" },
	{ "http-max-headers", CF_INT, OFF(http_max_headers), "100", 1, 10000,
	    CONFIG_APPLY_LISTENERS,
	    "proto=http: most header fields in one request; more: 431" },
	{ "http-max-body-bytes", CF_SIZE, OFF(http_max_body_bytes), "16MiB",
	    1024, 1LL << 40, CONFIG_APPLY_LISTENERS,
	    "proto=http: largest request body after decompression (gzip "
	    "bombs included); more: 413" },
	{ "http-max-depth", CF_INT, OFF(http_max_depth), "64", 2, 256,
	    CONFIG_APPLY_LISTENERS,
	    "proto=http: deepest nesting of a JSON or OTLP body (arrays, "
	    "objects, protobuf messages); deeper: 400" },
	{ "http-header-timeout", CF_SECONDS, OFF(http_header_timeout_ms), "10s",
	    1, 2000000000, CONFIG_APPLY_LISTENERS,
	    "proto=http: a request head must arrive whole within this time "
	    "of its first byte; else 408 and close" },
	{ "http-body-timeout", CF_SECONDS, OFF(http_body_timeout_ms), "30s", 1,
	    2000000000, CONFIG_APPLY_LISTENERS,
	    "proto=http: a request body without a new byte for this long "
	    "(not counting our own back-pressure): 408 and close; also the "
	    "longest the rest of a refused body is read and dropped" },
	{ "http-keepalive-timeout", CF_SECONDS, OFF(http_keepalive_timeout_ms),
	    "60s", 1, 2000000000, CONFIG_APPLY_LISTENERS,
	    "proto=http: close a connection idle this long between "
	    "requests" },
	{ "http-answer-timeout", CF_SECONDS, OFF(http_answer_timeout_ms), "60s",
	    1, 2000000000, CONFIG_APPLY_LISTENERS,
	    "proto=http: a request not stored this long after its body "
	    "ended gets 503 with Retry-After and the connection is closed "
	    "(its records may still be stored: the sender's retry may "
	    "duplicate them)" },
	/* Half: the other half is room for the connections that do not
	 * flood (bench/fairness.sh). */
	{ "fair-share-percent", CF_INT, OFF(fair_share_percent), "50", 0, 99,
	    CONFIG_APPLY_LISTENERS,
	    "above this fill level of the queue, a connection whose lines hold "
	    "more than queue-bytes / open connections is paused first; 0: "
	    "only a full queue pauses, everyone" },
	{ "rate-limit-lines-per-sec", CF_INT, OFF(rate_limit_per_sec), "0", 0,
	    1000000000, CONFIG_APPLY_LISTENERS,
	    "lines a second each source (address, or TLS subject) may send "
	    "over TCP; 0: no limit" },
	{ "rate-limit-burst", CF_INT, OFF(rate_limit_burst), "0", 0, 1000000000,
	    CONFIG_APPLY_LISTENERS,
	    "lines a source may send at once above the rate (its token "
	    "bucket); 0: one second's worth" },
	{ "rate-limit-mode", CF_RATEMODE, OFF(rate_limit_drop), "pause", 0, 0,
	    CONFIG_APPLY_LISTENERS,
	    "past the rate: pause (stop reading until tokens return) or "
	    "drop (the excess, counted; ack= and RELP listeners pause)" },
	{ "rate-limit-sources", CF_INT, OFF(rate_limit_sources), "65536", 1,
	    10000000, CONFIG_RESTART,
	    "sources the rate limit tracks; past that the least recently "
	    "seen is forgotten (it starts again with a full burst)" },
};

#define NKEYS (sizeof(cf_keys) / sizeof(cf_keys[0]))
_Static_assert(NKEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

/* How a type's value is stored in struct config. */
enum cf_store {
	ST_INT,    /* int */
	ST_SIZE,   /* size_t */
	ST_STR,    /* char *, NULL: unset */
	ST_LISTEN, /* listen[nlisten] */
};

static enum cf_store
cf_store(enum cf_type t)
{
	switch (t) {
	case CF_LISTEN:
		return ST_LISTEN;
	case CF_STRING:
	case CF_CONNINFO:
	case CF_HOSTPORT:
	case CF_TABLE:
		return ST_STR;
	case CF_SIZE:
		return ST_SIZE;
	default:
		return ST_INT;
	}
}

/* k's field in cfg (void *: the caller names the stored type). */
static void *
cf_field(struct config *cfg, const struct cf_key *k)
{
	return (char *)cfg + k->offset;
}

static const void *
cf_cfield(const struct config *cfg, const struct cf_key *k)
{
	return (const char *)cfg + k->offset;
}

static int cf_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
cf_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static const struct cf_key *
cf_find(const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(cf_keys[i].name, name) == 0)
			return &cf_keys[i];
	return NULL;
}

int
config_is_key(const char *key)
{
	return cf_find(key) != NULL;
}

/* Parses a number followed by an optional unit from units[]. */
struct unit {
	const char *suffix;
	long long mult;
};

static const struct unit size_units[] = {
	{ "", 1 },
	{ "b", 1 },
	{ "k", 1024 },
	{ "kb", 1024 },
	{ "kib", 1024 },
	{ "m", 1 << 20 },
	{ "mb", 1 << 20 },
	{ "mib", 1 << 20 },
	{ "g", 1 << 30 },
	{ "gb", 1 << 30 },
	{ "gib", 1 << 30 },
	{ "t", 1LL << 40 },
	{ "tb", 1LL << 40 },
	{ "tib", 1LL << 40 },
	{ NULL, 0 },
};
static const struct unit ms_units[] = {
	{ "", 1 },
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60000 },
	{ "min", 60000 },
	{ "h", 3600000 },
	{ NULL, 0 },
};
static const struct unit sec_units[] = {
	{ "", 1000 },
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60000 },
	{ "min", 60000 },
	{ "h", 3600000 },
	{ NULL, 0 },
};

static int
parse_number(const char *s, const struct unit *units, long long *out)
{
	const struct unit *u;
	char *end;
	long long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	while (*end == ' ')
		end++;
	for (u = units; u->suffix != NULL; u++) {
		if (strcasecmp(end, u->suffix) != 0)
			continue;
		if (v > LLONG_MAX / u->mult)
			return -1;
		*out = v * u->mult;
		return 0;
	}
	return -1;
}

static const char *
type_hint(enum cf_type t)
{
	switch (t) {
	case CF_SIZE:
		return "a size in bytes, optionally with KiB, MiB or GiB";
	case CF_MS:
		return "milliseconds, or a number with ms, s, m or h";
	case CF_SECONDS:
		return "seconds, or a number with ms, s, m or h";
	default:
		return "a whole number";
	}
}

static const struct unit int_units[] = {
	{ "", 1 },
	{ NULL, 0 },
};

static int
set_number(struct config *cfg, const struct cf_key *k, const char *value,
    char *err, size_t errlen)
{
	const struct unit *units = int_units;
	void *p = cf_field(cfg, k);
	long long v;

	if (k->type == CF_SIZE)
		units = size_units;
	else if (k->type == CF_MS)
		units = ms_units;
	else if (k->type == CF_SECONDS)
		units = sec_units;
	if (parse_number(value, units, &v) != 0)
		return cf_error(err, errlen, "%s: '%s' is not %s", k->name,
		    value, type_hint(k->type));
	if (v < k->min || v > k->max)
		return cf_error(err, errlen,
		    "%s: %s is out of range (%lld to %lld%s)", k->name, value,
		    k->min, k->max,
		    k->type == CF_SIZE      ? " bytes"
			: k->type == CF_INT ? ""
					    : " ms");
	if (cf_store(k->type) == ST_SIZE)
		*(size_t *)p = (size_t)v;
	else
		*(int *)p = (int)v;
	return 0;
}

int
config_split_hostport(
    const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *h = s;
	size_t n;
	char *end;
	long v;

	if (*s == '[') {
		if ((colon = strstr(s, "]:")) == NULL)
			return -1;
		h = s + 1;
		n = (size_t)(colon - h);
		colon++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL ||
		    memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hostlen)
		return -1;
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || v < 1 ||
	    v > 65535)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, portlen, "%ld", v);
	return 0;
}

static int
valid_ident(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '$')
			return 0;
	return 1;
}

static int
set_table(struct config *cfg, const char *value, char *err, size_t errlen)
{
	const char *dot = strchr(value, '.');
	char *copy;

	if (dot == NULL ? !valid_ident(value, strlen(value))
			: !valid_ident(value, (size_t)(dot - value)) ||
		    !valid_ident(dot + 1, strlen(dot + 1)))
		return cf_error(err, errlen,
		    "table: '%s' is not [schema.]name made of letters, digits "
		    "and '_' (at most 63 each, not starting with a digit)",
		    value);
	if (dot == NULL) {
		if (asprintf(&copy, "public.%s", value) == -1)
			return cf_error(err, errlen, "out of memory");
	} else if ((copy = strdup(value)) == NULL)
		return cf_error(err, errlen, "out of memory");
	free(cfg->table);
	cfg->table = copy;
	return 0;
}

/*
 * allow=CIDR,CIDR,...: the peers a listener accepts; proxy=CIDR,...: the
 * proxies allowed to send it PROXY headers (opt, "allow" or "proxy").
 */
static int
listen_cidrs(struct cidr *list, int *nlist, const char *opt, const char *v,
    char *err, size_t errlen)
{
	size_t n;

	if (*v == '\0')
		return cf_error(err, errlen, "listen: %s= is empty", opt);
	for (; *v != '\0'; v += n + (v[n] == ',')) {
		n = strcspn(v, ",");
		if (*nlist == CONFIG_MAX_ALLOW)
			return cf_error(err, errlen,
			    "listen: more than %d %s= entries",
			    CONFIG_MAX_ALLOW, opt);
		if (cidr_parse(v, n, &list[(*nlist)++]) == -1)
			return cf_error(err, errlen,
			    "listen: %s entry '%.*s' is not an address or "
			    "ADDRESS/BITS (e.g. 10.0.0.0/8, ::1)",
			    opt, (int)n, v);
	}
	return 0;
}

/*
 * tz=ZONE: the zone of RFC 3164 timestamps (logsink/tzrule.h); "local"
 * is the default.  Checked by building the rule once.
 */
static int
listen_tz(struct listen_spec *spec, const char *v, char *err, size_t errlen)
{
	struct tzrule *tz;
	char why[256];

	if (strcmp(v, "local") == 0) {
		spec->tz[0] = '\0';
		return 0;
	}
	if (strlen(v) >= sizeof(spec->tz))
		return cf_error(err, errlen, "listen: tz '%s' is too long", v);
	if ((tz = tzrule_new(v, clock_real_us() / 1000000, why, sizeof(why))) ==
	    NULL)
		return cf_error(err, errlen, "listen: %s", why);
	tzrule_free(tz);
	snprintf(spec->tz, sizeof(spec->tz), "%s", v);
	return 0;
}

/* proto= values, in enum config_proto order. */
static const struct {
	const char *name;
	bool acked; /* answers each message once stored */
} proto_names[CONFIG_NPROTOS] = {
	[CONFIG_PROTO_TCP] = { "tcp", false },
	[CONFIG_PROTO_RELP] = { "relp", true },
	[CONFIG_PROTO_UDP] = { "udp", false },
	[CONFIG_PROTO_HTTP] = { "http", true },
	[CONFIG_PROTO_FORWARD] = { "forward", true },
};
#define PROTO_LIST "tcp, udp, relp, http, forward"

const char *
config_proto_name(int proto)
{
	return proto >= 0 && proto < CONFIG_NPROTOS ? proto_names[proto].name
						    : NULL;
}

bool
config_proto_acked(int proto)
{
	return proto >= 0 && proto < CONFIG_NPROTOS && proto_names[proto].acked;
}

/*
 * shared-key=FILE: the Fluent forward shared key is FILE's first line
 * (without its line end), 1 to 255 bytes; read now, so a missing or
 * unreadable file fails the configuration (--check-config too).
 */
static int
listen_shared_key(
    struct listen_spec *spec, const char *path, char *err, size_t errlen)
{
	char line[sizeof(spec->shared_key) + 2];
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL)
		return cf_error(err, errlen, "listen: shared-key %s: %s", path,
		    strerror(errno));
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	n = strcspn(line, "\r\n");
	if (n == 0 || n >= sizeof(spec->shared_key))
		return cf_error(err, errlen,
		    "listen: shared-key %s: the first line must hold the key, "
		    "1 to %zu bytes",
		    path, sizeof(spec->shared_key) - 1);
	memcpy(spec->shared_key, line, n);
	spec->shared_key[n] = '\0';
	return 0;
}

/* Applies one "key=value" option of a listen value. */
static int
listen_option(struct listen_spec *spec, const char *opt, size_t n, char *err,
    size_t errlen)
{
	char buf[2048];
	const char *v;
	int i;

	snprintf(buf, sizeof(buf), "%.*s", (int)n, opt);
	if ((v = strchr(buf, '=')) == NULL)
		return cf_error(
		    err, errlen, "listen: option '%s' is not key=value", buf);
	v++;
	if (strncmp(buf, "framing=", 8) == 0) {
		if ((spec->framing = framer_mode_parse(v)) == -1)
			return cf_error(err, errlen,
			    "listen: framing '%s' is not one of auto, lf, "
			    "nul, octet",
			    v);
	} else if (strncmp(buf, "format=", 7) == 0) {
		if (strcmp(v, "auto") == 0)
			spec->format = PARSER_AUTO;
		else if (strcmp(v, "raw") == 0)
			spec->format = PARSER_RAW;
		else
			return cf_error(err, errlen,
			    "listen: format '%s' is not auto or raw", v);
	} else if (strncmp(buf, "ack=", 4) == 0) {
		if (strcmp(v, "none") == 0)
			spec->ack = 0;
		else if (strcmp(v, "commit") == 0)
			spec->ack = CONFIG_ACK_COMMIT;
		else if (strcmp(v, "spooled") == 0)
			spec->ack = CONFIG_ACK_SPOOLED;
		else
			return cf_error(err, errlen,
			    "listen: ack '%s' is not none, commit or spooled",
			    v);
	} else if (strncmp(buf, "allow=", 6) == 0) {
		return listen_cidrs(
		    spec->allow, &spec->nallow, "allow", v, err, errlen);
	} else if (strncmp(buf, "proxy=", 6) == 0) {
		return listen_cidrs(
		    spec->proxy, &spec->nproxy, "proxy", v, err, errlen);
	} else if (strncmp(buf, "tz=", 3) == 0) {
		return listen_tz(spec, v, err, errlen);
	} else if (strncmp(buf, "tls=", 4) == 0) {
		if (strcmp(v, "off") == 0)
			spec->tls = 0;
		else if (strcmp(v, "on") == 0)
			spec->tls = 1;
		else
			return cf_error(err, errlen,
			    "listen: tls '%s' is not on or off", v);
	} else if (strncmp(buf, "shared-key=", 11) == 0) {
		return listen_shared_key(spec, v, err, errlen);
	} else if (strncmp(buf, "path=", 5) == 0) {
		if (v[0] != '/' || strlen(v) >= sizeof(spec->http_path))
			return cf_error(err, errlen,
			    "listen: path '%s' does not start with / or is "
			    "too long",
			    v);
		snprintf(spec->http_path, sizeof(spec->http_path), "%s", v);
	} else if (strncmp(buf, "tokens=", 7) == 0) {
		if (v[0] == '\0' || strlen(v) >= sizeof(spec->http_tokens))
			return cf_error(err, errlen,
			    "listen: tokens= needs a file name (shorter than "
			    "1024 bytes)");
		snprintf(spec->http_tokens, sizeof(spec->http_tokens), "%s", v);
	} else if (strncmp(buf, "proto=", 6) == 0) {
		for (i = 0; i < CONFIG_NPROTOS; i++)
			if (strcmp(v, proto_names[i].name) == 0)
				break;
		if (i == CONFIG_NPROTOS)
			return cf_error(err, errlen,
			    "listen: proto '%s' is not one of %s", v,
			    PROTO_LIST);
		spec->proto = i;
	} else {
		return cf_error(err, errlen,
		    "listen: unknown option '%s' (known: framing=, format=, "
		    "ack=, allow=, tls=, proxy=, tz=, proto=, shared-key=, "
		    "path=, tokens=)",
		    buf);
	}
	return 0;
}

/*
 * proto=udp: one datagram is one message with no reply (RFC 5426), so a
 * framing, an acknowledgement or TLS cannot apply; say so rather than
 * ignore the option.
 */
static int
listen_udp_check(const struct listen_spec *spec, const char *addr,
    bool framing_set, char *err, size_t errlen)
{
	const char *opt;

	if (spec->proto != CONFIG_PROTO_UDP)
		return 0;
	opt = spec->ack != CONFIG_ACK_NONE ? "ack="
	    : spec->tls                    ? "tls=on"
	    : framing_set                  ? "framing="
					   : NULL;
	if (opt == NULL)
		return 0;
	return cf_error(err, errlen,
	    "listen %s: %s does not apply to proto=udp (a datagram is one "
	    "message and gets no reply; use a TCP listener for acks or TLS)",
	    addr, opt);
}

int
config_parse_listen(
    const char *value, struct listen_spec *spec, char *err, size_t errlen)
{
	const char *p = value, *end;
	bool framing_set = false;
	char addr[300];
	size_t n;

	memset(spec, 0, sizeof(*spec));
	spec->framing = FRAMER_AUTO;
	spec->format = PARSER_AUTO;
	n = strcspn(p, " \t");
	snprintf(addr, sizeof(addr), "%.*s", (int)n, p);
	if (config_split_hostport(addr, spec->host, sizeof(spec->host),
		spec->port, sizeof(spec->port)) == -1)
		return cf_error(err, errlen,
		    "listen: '%s' is not HOST:PORT or [IPV6]:PORT with a port "
		    "from 1 to 65535",
		    addr);
	for (p += n; *p != '\0'; p = end) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		end = p + strcspn(p, " \t");
		if (listen_option(spec, p, (size_t)(end - p), err, errlen) ==
		    -1)
			return -1;
		if (strncmp(p, "framing=", 8) == 0)
			framing_set = true;
	}
	/* RELP, HTTP, forward answer each message once stored: after the
	 * commit, or with ack=spooled once durable in the spool. */
	if (config_proto_acked(spec->proto) && spec->ack == CONFIG_ACK_NONE)
		spec->ack = CONFIG_ACK_COMMIT;
	if (spec->shared_key[0] != '\0' && spec->proto != CONFIG_PROTO_FORWARD)
		return cf_error(err, errlen,
		    "listen %s: shared-key= needs proto=forward", addr);
	if (spec->proto != CONFIG_PROTO_HTTP &&
	    (spec->http_path[0] != '\0' || spec->http_tokens[0] != '\0'))
		return cf_error(err, errlen,
		    "listen %s: path= and tokens= apply to proto=http only",
		    addr);
	return listen_udp_check(spec, addr, framing_set, err, errlen);
}

/* Appends a listen value, parsed once here, with its text. */
static int
add_listen(struct config *cfg, const char *value, char *err, size_t errlen)
{
	struct listen_spec *l;

	l = reallocarray(cfg->listen, cfg->nlisten + 1, sizeof(*l));
	if (l == NULL)
		return cf_error(err, errlen, "out of memory");
	cfg->listen = l;
	l += cfg->nlisten;
	if (config_parse_listen(value, l, err, errlen) == -1)
		return -1;
	if ((l->text = strdup(value)) == NULL)
		return cf_error(err, errlen, "out of memory");
	cfg->nlisten++;
	return 0;
}

static int
set_verify(struct config *cfg, const char *value, char *err, size_t errlen)
{
	if (strcmp(value, "none") == 0)
		cfg->tls_verify_client = TLS_VERIFY_NONE;
	else if (strcmp(value, "optional") == 0)
		cfg->tls_verify_client = TLS_VERIFY_OPTIONAL;
	else if (strcmp(value, "require") == 0)
		cfg->tls_verify_client = TLS_VERIFY_REQUIRE;
	else
		return cf_error(err, errlen,
		    "tls-verify-client: '%s' is not none, optional or require",
		    value);
	return 0;
}

int
config_set(struct config *cfg, const char *key, const char *value, char *err,
    size_t errlen)
{
	const struct cf_key *k = cf_find(key);
	char host[256], port[8];
	char **sp;
	int lvl;

	if (k == NULL)
		return cf_error(err, errlen,
		    "unknown key '%s' (see logsinkd --help for the keys)", key);
	switch (k->type) {
	case CF_LISTEN:
		return add_listen(cfg, value, err, errlen);
	case CF_STRING:
	case CF_CONNINFO:
		sp = cf_field(cfg, k);
		free(*sp);
		if ((*sp = strdup(value)) == NULL)
			return cf_error(err, errlen, "out of memory");
		return 0;
	case CF_HOSTPORT:
		if (config_split_hostport(
			value, host, sizeof(host), port, sizeof(port)) == -1)
			return cf_error(err, errlen,
			    "%s: '%s' is not HOST:PORT or [IPV6]:PORT", key,
			    value);
		sp = cf_field(cfg, k);
		free(*sp);
		if ((*sp = strdup(value)) == NULL)
			return cf_error(err, errlen, "out of memory");
		return 0;
	case CF_TABLE:
		return set_table(cfg, value, err, errlen);
	case CF_VERIFY:
		return set_verify(cfg, value, err, errlen);
	case CF_TLSVER:
		if (strcmp(value, "1.2") == 0)
			cfg->tls_min_version = 12;
		else if (strcmp(value, "1.3") == 0)
			cfg->tls_min_version = 13;
		else
			return cf_error(err, errlen,
			    "tls-min-version: '%s' is not 1.2 or 1.3", value);
		return 0;
	case CF_RATEMODE:
		if (strcmp(value, "pause") == 0 || strcmp(value, "drop") == 0)
			cfg->rate_limit_drop = value[0] == 'd';
		else
			return cf_error(err, errlen,
			    "rate-limit-mode: '%s' is not pause or drop",
			    value);
		return 0;
	case CF_LEVEL:
		if ((lvl = log_level_parse(value)) == -1 || lvl < LOG_ERR)
			return cf_error(err, errlen,
			    "log-level: '%s' is not one of debug, info, "
			    "notice, warning, error",
			    value);
		cfg->log_level = lvl;
		return 0;
	default:
		return set_number(cfg, k, value, err, errlen);
	}
}

void
config_init(struct config *cfg)
{
	char err[256];
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < NKEYS; i++) {
		if (cf_keys[i].def == NULL || cf_keys[i].type == CF_LISTEN)
			continue;
		if (config_set(cfg, cf_keys[i].name, cf_keys[i].def, err,
			sizeof(err)) == -1)
			abort(); /* a default that does not parse is a bug */
	}
}

void
config_clear_listen(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nlisten; i++)
		free(cfg->listen[i].text);
	free(cfg->listen);
	cfg->listen = NULL;
	cfg->nlisten = 0;
}

void
config_free(struct config *cfg)
{
	char **sp;
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (cf_store(cf_keys[i].type) == ST_LISTEN) {
			config_clear_listen(cfg);
		} else if (cf_store(cf_keys[i].type) == ST_STR) {
			sp = cf_field(cfg, &cf_keys[i]);
			free(*sp);
		}
	}
	memset(cfg, 0, sizeof(*cfg));
}

static char *trim_value(char *s);

/* db-file: the conninfo is the file's first line that is not a comment. */
static int
load_db_file(struct config *cfg, char *err, size_t errlen)
{
	char *line = NULL, *v;
	size_t cap = 0;
	FILE *fp;
	int rc = -1;

	if ((fp = fopen(cfg->db_file, "r")) == NULL)
		return cf_error(err, errlen, "db-file: %s: %s", cfg->db_file,
		    strerror(errno));
	while (getline(&line, &cap, fp) != -1) {
		v = trim_value(line);
		if (*v == '\0' || *v == '#')
			continue;
		free(cfg->db);
		if ((cfg->db = strdup(v)) != NULL)
			rc = 0;
		break;
	}
	if (rc == -1)
		cf_error(err, errlen, "db-file: %s: %s", cfg->db_file,
		    ferror(fp) ? strerror(errno)
			       : "no connection string in it");
	free(line);
	fclose(fp);
	return rc;
}

/* Whether some listen value satisfies has(). */
static bool
any_listen(const struct config *cfg, bool (*has)(const struct listen_spec *))
{
	size_t i;

	for (i = 0; i < cfg->nlisten; i++)
		if (has(&cfg->listen[i]))
			return true;
	return false;
}

static bool
acks_spooled(const struct listen_spec *spec)
{
	return spec->ack == CONFIG_ACK_SPOOLED;
}

static bool
is_tls(const struct listen_spec *spec)
{
	return spec->tls != 0;
}

/* Whether a listener acknowledges lines once spooled. */
static bool
need_spool(const struct config *cfg)
{
	return any_listen(cfg, acks_spooled);
}

int
config_uses_tls(const struct config *cfg)
{
	return any_listen(cfg, is_tls);
}

/* The TLS settings go together; the files themselves are tls.c's. */
static int
finish_tls(struct config *cfg, char *err, size_t errlen)
{
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		return cf_error(err, errlen,
		    "%s is set but %s is not: set both (the certificate and "
		    "its private key)",
		    cfg->tls_cert != NULL ? "tls-cert" : "tls-key",
		    cfg->tls_cert != NULL ? "tls-key" : "tls-cert");
	if (cfg->tls_cert == NULL && config_uses_tls(cfg))
		return cf_error(err, errlen,
		    "a listen value has tls=on but tls-cert and tls-key are "
		    "not set: set them to the server's PEM certificate and "
		    "key files");
	if (cfg->tls_verify_client != TLS_VERIFY_NONE && cfg->tls_ca == NULL)
		return cf_error(err, errlen,
		    "tls-verify-client = %s needs tls-ca (the CA certificates "
		    "client certificates are checked against)",
		    tls_verify_name((enum tls_verify)cfg->tls_verify_client));
	return 0;
}

int
config_finish(struct config *cfg, char *err, size_t errlen)
{
	if (cfg->db_file != NULL && cfg->db != NULL)
		return cf_error(
		    err, errlen, "db and db-file are both set: keep one");
	if (cfg->db_file != NULL && load_db_file(cfg, err, errlen) == -1)
		return -1;
	if (cfg->nlisten == 0 &&
	    add_listen(cfg, CONFIG_DEFAULT_LISTEN, err, errlen) == -1)
		return -1;
	if (finish_tls(cfg, err, errlen) == -1)
		return -1;
	if (cfg->reconnect_min_ms > cfg->reconnect_max_ms)
		return cf_error(err, errlen,
		    "reconnect-min-ms (%d) is larger than reconnect-max-ms "
		    "(%d)",
		    cfg->reconnect_min_ms, cfg->reconnect_max_ms);
	if (cfg->spool_dir == NULL && need_spool(cfg))
		return cf_error(err, errlen,
		    "a listener says ack=spooled but no spool-dir is set: set "
		    "spool-dir (e.g. /var/lib/logsinkd/spool) or use "
		    "ack=commit");
	if (cfg->max_line_bytes * 3 + 4096 > cfg->queue_bytes)
		return cf_error(err, errlen,
		    "queue-bytes (%zu) must hold at least one line of "
		    "max-line-bytes (%zu) after encoding: raise queue-bytes "
		    "to %zu or more",
		    cfg->queue_bytes, cfg->max_line_bytes,
		    cfg->max_line_bytes * 3 + 4096);
	return 0;
}

/* Removes surrounding white space and one pair of double quotes. */
static char *
trim_value(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	if (end - s >= 2 && *s == '"' && end[-1] == '"') {
		end[-1] = '\0';
		s++;
	}
	return s;
}

static int
load_line(struct config *cfg, char *line, char *err, size_t errlen)
{
	char *eq, *key, *value, *hash;

	key = line;
	while (isspace((unsigned char)*key))
		key++;
	if (*key == '\0' || *key == '#')
		return 0;
	if ((eq = strchr(key, '=')) == NULL)
		return cf_error(
		    err, errlen, "expected 'key = value', got '%.60s'", key);
	*eq = '\0';
	value = eq + 1;
	while (isspace((unsigned char)*value))
		value++;
	/* " #" starts a comment; in a quoted value, after the quotes. */
	hash = value;
	if (*value == '"' && (hash = strchr(value + 1, '"')) == NULL)
		hash = value;
	if ((hash = strstr(hash, " #")) != NULL ||
	    (hash = strstr(value, "\t#")) != NULL)
		*hash = '\0';
	key = trim_value(key);
	value = trim_value(value);
	return config_set(cfg, key, value, err, errlen);
}

int
config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char msg[512], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL)
		return cf_error(err, errlen, "%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (load_line(cfg, line, msg, sizeof(msg)) == -1) {
			rc = cf_error(
			    err, errlen, "%s:%d: %s", path, lineno, msg);
			break;
		}
	}
	if (rc == 0 && ferror(fp))
		rc = cf_error(err, errlen, "%s: %s", path, strerror(errno));
	free(line);
	fclose(fp);
	return rc;
}

/* What --help and the docs say SIGHUP does with a key. */
static const char *
reload_word(enum config_reload r)
{
	return r == CONFIG_RESTART ? "needs a restart" : "SIGHUP applies it";
}

void
config_print_keys(FILE *fp)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		fprintf(fp, "  --%-22s %s (default: %s); %s\n", cf_keys[i].name,
		    cf_keys[i].help,
		    cf_keys[i].def != NULL ? cf_keys[i].def : "unset",
		    reload_word(cf_keys[i].reload));
}

/* Whether k has a value in cfg (strings and listen may be unset). */
static bool
cf_is_set(const struct config *cfg, const struct cf_key *k)
{
	const char *const *sp;

	switch (cf_store(k->type)) {
	case ST_LISTEN:
		return cfg->nlisten > 0;
	case ST_STR:
		sp = cf_cfield(cfg, k);
		return *sp != NULL;
	default:
		return true;
	}
}

/*
 * k's value in cfg as config file text: what config_set() takes back
 * ("" when unset).  Listen: the entries in double quotes, ", " between
 * them (config_dump() prints one line per entry instead).
 */
static void
cf_format(
    const struct config *cfg, const struct cf_key *k, char *buf, size_t len)
{
	const void *p = cf_cfield(cfg, k);
	const char *const *sp = p;
	const int *ip = p;
	const size_t *zp = p;
	size_t i, n;

	buf[0] = '\0';
	switch (k->type) {
	case CF_LISTEN:
		for (i = n = 0; i < cfg->nlisten && n < len; i++)
			n += (size_t)snprintf(buf + n, len - n, "%s\"%s\"",
			    i > 0 ? ", " : "", cfg->listen[i].text);
		break;
	case CF_STRING:
	case CF_CONNINFO:
	case CF_HOSTPORT:
	case CF_TABLE:
		snprintf(buf, len, "%s", *sp != NULL ? *sp : "");
		break;
	case CF_SIZE:
		snprintf(buf, len, "%zu", *zp);
		break;
	case CF_SECONDS: /* a bare number would mean seconds */
		snprintf(buf, len, "%dms", *ip);
		break;
	case CF_MS: /* the key's name says ms */
	case CF_INT:
		snprintf(buf, len, "%d", *ip);
		break;
	case CF_LEVEL:
		snprintf(buf, len, "%s", log_level_name(*ip));
		break;
	case CF_VERIFY:
		snprintf(
		    buf, len, "%s", tls_verify_name((enum tls_verify) * ip));
		break;
	case CF_TLSVER:
		snprintf(buf, len, "1.%d", *ip % 10);
		break;
	case CF_RATEMODE:
		snprintf(buf, len, "%s", *ip ? "drop" : "pause");
		break;
	}
}

/* Whether the config reader would change v: then it is dumped quoted. */
static bool
needs_quotes(const char *v)
{
	size_t n = strlen(v);

	return n == 0 || isspace((unsigned char)v[0]) ||
	    isspace((unsigned char)v[n - 1]) || v[0] == '"' ||
	    strstr(v, " #") != NULL || strstr(v, "\t#") != NULL;
}

void
config_dump(const struct config *cfg, FILE *fp)
{
	const struct cf_key *k;
	char value[4096];
	size_t i, j;

	for (i = 0; i < NKEYS; i++) {
		k = &cf_keys[i];
		if (k->type == CF_LISTEN) {
			for (j = 0; j < cfg->nlisten; j++)
				fprintf(fp, "%s = %s\n", k->name,
				    cfg->listen[j].text);
			continue;
		}
		if (!cf_is_set(cfg, k)) {
			fprintf(fp, "# %s = (unset)\n", k->name);
			continue;
		}
		if (k->type == CF_CONNINFO) {
			fprintf(fp,
			    "# %s = (set, not shown: it may hold a "
			    "password)\n",
			    k->name);
			continue;
		}
		cf_format(cfg, k, value, sizeof(value));
		fprintf(fp, needs_quotes(value) ? "%s = \"%s\"\n" : "%s = %s\n",
		    k->name, value);
	}
}

size_t
config_nkeys(void)
{
	return NKEYS;
}

const char *
config_key_name(size_t key)
{
	assert(key < NKEYS);
	return cf_keys[key].name;
}

enum config_reload
config_key_reload(size_t key)
{
	assert(key < NKEYS);
	return cf_keys[key].reload;
}

void
config_key_value(const struct config *cfg, size_t key, char *buf, size_t len)
{
	const struct cf_key *k;

	assert(key < NKEYS);
	k = &cf_keys[key];
	if (!cf_is_set(cfg, k))
		snprintf(buf, len, "unset");
	else if (k->type == CF_CONNINFO)
		snprintf(buf, len, "(set, not shown)");
	else
		cf_format(cfg, k, buf, len);
}

/* Whether k has the same value in a and b (listen: the same texts). */
static bool
cf_equal(const struct config *a, const struct config *b, const struct cf_key *k)
{
	const void *pa = cf_cfield(a, k), *pb = cf_cfield(b, k);
	const char *const *sa = pa, *const *sb = pb;
	size_t i;

	switch (cf_store(k->type)) {
	case ST_LISTEN:
		if (a->nlisten != b->nlisten)
			return false;
		for (i = 0; i < a->nlisten; i++)
			if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
				return false;
		return true;
	case ST_STR:
		if (*sa == NULL || *sb == NULL)
			return *sa == *sb;
		return strcmp(*sa, *sb) == 0;
	case ST_SIZE:
		return *(const size_t *)pa == *(const size_t *)pb;
	default:
		return *(const int *)pa == *(const int *)pb;
	}
}

size_t
config_diff(
    const struct config *a, const struct config *b, size_t *keys, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < NKEYS && n < max; i++)
		if (!cf_equal(a, b, &cf_keys[i]))
			keys[n++] = i;
	return n;
}

/* Exchanges n bytes at x and y. */
static void
swap_bytes(void *x, void *y, size_t n)
{
	unsigned char t[sizeof(size_t)], *p = x, *q = y;

	assert(n <= sizeof(t));
	memcpy(t, p, n);
	memcpy(p, q, n);
	memcpy(q, t, n);
}

void
config_key_swap(struct config *a, struct config *b, size_t key)
{
	const struct cf_key *k;

	assert(key < NKEYS);
	k = &cf_keys[key];
	switch (cf_store(k->type)) {
	case ST_LISTEN:
		swap_bytes(&a->listen, &b->listen, sizeof(a->listen));
		swap_bytes(&a->nlisten, &b->nlisten, sizeof(a->nlisten));
		break;
	case ST_STR:
		swap_bytes(cf_field(a, k), cf_field(b, k), sizeof(char *));
		break;
	case ST_SIZE:
		swap_bytes(cf_field(a, k), cf_field(b, k), sizeof(size_t));
		break;
	default:
		swap_bytes(cf_field(a, k), cf_field(b, k), sizeof(int));
		break;
	}
}
