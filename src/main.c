/*
 * logsinkd: command line, signals and the event loop; everything else
 * lives in the modules this file wires together.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <systemd/sd-daemon.h>

#include "logsink/ack.h"
#include "logsink/clock.h"
#include "logsink/config.h"
#include "logsink/copyenc.h"
#include "logsink/dbconn.h"
#include "logsink/httpd.h"
#include "logsink/listener.h"
#include "logsink/log.h"
#include "logsink/looplag.h"
#include "logsink/metrics.h"
#include "logsink/pgpool.h"
#include "logsink/queue.h"
#include "logsink/schema.h"
#include "logsink/spool.h"
#include "logsink/tls.h"

#define EXIT_USAGE         2
#define DRAIN_POLL_MS      20
#define STATUS_INTERVAL_MS 5000

enum action { RUN, INIT_DB, CHECK_CONFIG };

struct options {
	enum action action;
	const char *config_file;
	int argc;
	char **argv;
};

/* Owned by main(); the loop's callbacks reach it through their arg. */
struct daemon {
	struct options opts;
	struct config cfg;
	struct event_base *base;
	struct queue *q;
	struct pgpool *pool;
	struct listeners *ls;
	struct event *ev_kick, *ev_resume, *ev_stats, *ev_drain, *ev_deadline;
	struct event *ev_sig[3];
	struct event *ev_watchdog, *ev_status, *ev_spool;
	struct event *ev_looplag; /* one-shot, re-armed by looplag_cb */
	struct event *ev_synced;  /* the spool's sync thread finished a job */
	int64_t looplag_due_us;   /* when it should fire (monotonic) */
	struct httpd *httpd;
	struct spool *spool;   /* NULL: no spool-dir */
	sigset_t startup_mask; /* the signal mask before start-up */
	bool stopping;
	bool tls; /* a tls=on listener: SIGHUP reloads its files */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: logsinkd [-c FILE] [--KEY VALUE ...] [--init-db | "
	    "--check-config]\n"
	    "\n"
	    "Receives log lines over TCP and UDP and stores them in "
	    "PostgreSQL.\n"
	    "\n"
	    "  -c FILE                  read settings from FILE (key = value; "
	    "the\n"
	    "                           command line overrides it)\n"
	    "  --init-db                create or upgrade the table, then "
	    "exit\n"
	    "  --check-config           validate the settings, print them, "
	    "exit\n"
	    "  --help, --version\n"
	    "\n"
	    "Settings (in FILE without the leading --):\n");
	config_print_keys(fp);
	fprintf(fp,
	    "\nListen options, after HOST:PORT (--listen '0.0.0.0:5140 "
	    "ack=commit'):\n"
	    "  framing=auto|lf|nul|octet  message framing (auto: per "
	    "connection)\n"
	    "  format=auto|raw            parse syslog/JSON/GELF/logfmt, or "
	    "store\n"
	    "                             the raw line\n"
	    "  ack=none|commit|spooled    write \"ok N\" once N lines are "
	    "stored\n"
	    "                             (spooled: or safe in spool-dir)\n"
	    "  allow=CIDR,...             only these peers may connect\n"
	    "  tls=off|on                 TLS (RFC 5425) with tls-cert, "
	    "tls-key,\n"
	    "                             tls-ca and tls-verify-client\n"
	    "  proxy=CIDR,...             only these proxies may connect, "
	    "each\n"
	    "                             sending a PROXY v1/v2 header "
	    "first\n"
	    "  tz=local|UTC|+HH:MM|ZONE   zone of RFC 3164 timestamps, e.g. "
	    "tz=Europe/Berlin\n"
	    "                             (local: the daemon's TZ; default)\n"
	    "  proto=tcp|udp|relp|forward|http\n"
	    "                             udp: syslog datagrams (RFC 5426), "
	    "one\n"
	    "                             per message, no ack=/tls=/framing= "
	    "(--listen\n"
	    "                             '0.0.0.0:514 proto=udp'); relp: "
	    "RELP\n"
	    "                             (rsyslog omrelp), each message "
	    "answered\n"
	    "                             once committed (or ack=spooled);\n"
	    "                             forward: Fluent forward protocol "
	    "(Fluentd,\n"
	    "                             Fluent Bit, fluent-logger; port "
	    "24224), each\n"
	    "                             chunk answered {\"ack\": chunk} "
	    "once committed;\n"
	    "                             http: HTTP ingest, answered once "
	    "committed:\n"
	    "                             POST /ingest (NDJSON, JSON, text), "
	    "POST\n"
	    "                             /upload (systemd-journal-upload), "
	    "POST\n"
	    "                             /v1/logs (OTLP, protobuf or JSON) "
	    "(--listen\n"
	    "                             '0.0.0.0:8080 proto=http')\n"
	    "  shared-key=FILE            proto=forward: the shared-key "
	    "handshake, the\n"
	    "                             key in FILE's first line\n"
	    "  path=/PATH                 proto=http: the JSON endpoint's "
	    "path\n"
	    "  tokens=FILE                proto=http: bearer tokens, one a "
	    "line\n");
}

/* Splits argv into actions and KEY VALUE pairs (checked later). */
static int
parse_args(int argc, char **argv, struct options *o)
{
	const char *a;
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--version") == 0 ||
		    strcmp(a, "-V") == 0) {
			printf("logsinkd %s\n", LOGSINK_VERSION);
			exit(0);
		} else if (strcmp(a, "--init-db") == 0) {
			o->action = INIT_DB;
		} else if (strcmp(a, "--check-config") == 0) {
			o->action = CHECK_CONFIG;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (++i == argc) {
				fprintf(
				    stderr, "logsinkd: %s needs a file\n", a);
				return -1;
			}
			o->config_file = argv[i];
		} else if (strncmp(a, "--", 2) == 0) {
			/* A setting, checked by apply_args(); skip its value.
			 */
			if (strchr(a, '=') == NULL && config_is_key(a + 2) &&
			    i + 1 < argc)
				i++;
			continue;
		} else {
			fprintf(stderr,
			    "logsinkd: unexpected argument '%s' (see "
			    "--help)\n",
			    a);
			return -1;
		}
		argv[i] = NULL; /* consumed */
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
			argv[i - 1] = NULL;
	}
	o->argc = argc;
	o->argv = argv;
	return 0;
}

/* Applies the --KEY VALUE / --KEY=VALUE settings of the command line. */
static int
apply_args(
    struct config *cfg, const struct options *o, char *err, size_t errlen)
{
	char key[64], msg[512];
	const char *a, *eq, *val;
	bool cleared = false;
	int i;

	for (i = 1; i < o->argc; i++) {
		if ((a = o->argv[i]) == NULL)
			continue;
		a += 2;
		if ((eq = strchr(a, '=')) != NULL) {
			snprintf(key, sizeof(key), "%.*s", (int)(eq - a), a);
			val = eq + 1;
		} else {
			snprintf(key, sizeof(key), "%s", a);
			if (!config_is_key(key))
				val = NULL;
			else if (i + 1 == o->argc || o->argv[i + 1] == NULL)
				return snprintf(err, errlen,
					   "--%s needs a value", key),
				       -1;
			else
				val = o->argv[++i];
		}
		if (!config_is_key(key)) {
			snprintf(err, errlen,
			    "unknown option --%s (see logsinkd --help)", key);
			return -1;
		}
		if (strcmp(key, "listen") == 0 && !cleared) {
			config_clear_listen(cfg);
			cleared = true;
		}
		if (config_set(cfg, key, val, msg, sizeof(msg)) == -1) {
			snprintf(err, errlen, "--%s", msg);
			return -1;
		}
	}
	return 0;
}

static int
load_config(
    struct config *cfg, const struct options *o, char *err, size_t errlen)
{
	config_init(cfg);
	if ((o->config_file != NULL &&
		config_load_file(cfg, o->config_file, err, errlen) == -1) ||
	    apply_args(cfg, o, err, errlen) == -1 ||
	    config_finish(cfg, err, errlen) == -1) {
		config_free(cfg);
		return -1;
	}
	return 0;
}

/* The TLS part of cfg, for tls.c (strings borrowed from cfg). */
static void
tls_settings_of(const struct config *cfg, struct tls_settings *set)
{
	set->cert_file = cfg->tls_cert;
	set->key_file = cfg->tls_key;
	set->ca_file = cfg->tls_ca;
	set->verify = (enum tls_verify)cfg->tls_verify_client;
	set->min_version = cfg->tls_min_version;
}

/*
 * Builds the TLS context from cfg's files; NULL with the reason in err.
 * Warns of an expired server certificate.
 */
static struct tls_ctx *
load_tls(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_settings set;
	struct tls_ctx *ctx;

	tls_settings_of(cfg, &set);
	if ((ctx = tls_ctx_new(&set, err, errlen)) == NULL)
		return NULL;
	if (tls_ctx_expired(ctx))
		log_warnx("tls-cert %s has expired: TLS clients will refuse "
			  "it; replace it and send SIGHUP",
		    cfg->tls_cert);
	return ctx;
}

/*
 * --check-config: the TLS files too (readable, PEM, key matching the
 * certificate, CA file); 0 or -1 with the reason printed.
 */
static int
check_tls(const struct config *cfg)
{
	struct tls_settings set;
	struct tls_ctx *ctx;
	char err[1024];

	if (cfg->tls_cert == NULL)
		return 0;
	tls_settings_of(cfg, &set);
	if ((ctx = tls_ctx_new(&set, err, sizeof(err))) == NULL) {
		fprintf(stderr, "logsinkd: %s\n", err);
		return -1;
	}
	printf("# tls: %s\n", tls_ctx_describe(ctx));
	tls_ctx_free(ctx);
	return 0;
}

/* --init-db: apply sql/ over one blocking connection, then exit. */
static int
init_db(const struct config *cfg)
{
	struct dbconn dc;
	char err[1024], msg[512];
	PGconn *conn;
	int rc = 0;

	if (dbconn_init(&dc, cfg->db, err, sizeof(err)) == -1) {
		log_errx("%s", err);
		return 1;
	}
	dbconn_set_timeouts(&dc, cfg->db_timeout_ms);
	conn = PQconnectdbParams(dc.keys, dc.vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		log_errx("cannot connect to %s: %s", dc.target,
		    dbconn_trim(msg, sizeof(msg),
			conn ? PQerrorMessage(conn) : "out of memory"));
		PQfinish(conn);
		return 1;
	}
	if (schema_apply(conn, cfg->table, err, sizeof(err)) == -1) {
		log_errx("--init-db on %s: %s", dc.target,
		    dbconn_trim(msg, sizeof(msg), err));
		rc = 1;
	} else {
		log_notice(
		    "schema for %s is in place on %s", cfg->table, dc.target);
	}
	PQfinish(conn);
	return rc;
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	pgpool_kick(d->pool);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (!d->stopping)
		listeners_resume(d->ls);
}

/* Queue callbacks run inside other modules' work: defer to the loop. */
static void
on_queue_data(void *arg)
{
	event_active(((struct daemon *)arg)->ev_kick, EV_TIMEOUT, 0);
}

static void
on_queue_space(void *arg)
{
	event_active(((struct daemon *)arg)->ev_resume, EV_TIMEOUT, 0);
}

/* The gauges /metrics and /healthz show, from the modules that own them. */
static void
gauges_cb(void *arg, struct metrics_gauges *g)
{
	struct daemon *d = arg;
	int n;

	g->queue_lines = queue_lines(d->q);
	g->queue_bytes = queue_bytes(d->q);
	g->queue_limit_bytes = d->cfg.queue_bytes;
	g->db_writable = pgpool_connected(d->pool);
	g->db_state_names = pgpool_state_names(&n);
	g->ndb_states = n;
	pgpool_state_counts(d->pool, g->db_state_counts);
	if (d->spool != NULL) {
		struct spool_stats st;

		spool_get_stats(d->spool, &st);
		g->spool = true;
		g->spool_bytes = st.bytes;
		g->spool_segments = st.segments;
		g->spool_unread_bytes = st.unread_bytes;
		g->spool_corrupt_records = st.records_corrupt;
		g->spool_corrupt_bytes = st.bytes_corrupt;
		g->spool_write_errors = st.write_errors;
		g->spool_syncs = st.syncs;
		g->spool_sync_errors = st.sync_errors;
	}
}

static void
notify_status(struct daemon *d)
{
	sd_notifyf(0,
	    "STATUS=%s%llu received, %llu stored, %llu queued, %llu "
	    "connections, %d/%d database connections ready",
	    d->stopping ? "stopping: " : "",
	    (unsigned long long)metrics.lines_received,
	    (unsigned long long)metrics.lines_committed,
	    (unsigned long long)queue_lines(d->q),
	    (unsigned long long)metrics.connections_open,
	    pgpool_connected(d->pool), d->cfg.db_connections);
}

static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	notify_status(arg);
}

/* The keep-alive comes from the event loop, so a stuck loop is noticed. */
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sd_notify(0, "WATCHDOG=1");
}

/* Listeners are bound and the database answered (or could not be reached,
 * in which case lines queue until it can): ready for systemd. */
static void
on_db_contact(void *arg)
{
	struct daemon *d = arg;

	sd_notify(0, "READY=1");
	notify_status(d);
}

static void
stats_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	char line[1024];

	(void)fd;
	(void)what;
	metrics_format(
	    line, sizeof(line), queue_lines(d->q), queue_bytes(d->q));
	log_info("stats: %s db_connected=%d", line, pgpool_connected(d->pool));
}

/*
 * Arms the loop-lag timer LOOPLAG_INTERVAL_MS from now.  One-shot and
 * re-armed from its callback, so a stall is measured once (EV_PERSIST
 * would schedule from the missed deadline).
 */
static void
looplag_arm(struct daemon *d)
{
	struct timeval tv = { 0, LOOPLAG_INTERVAL_MS * 1000 };

	d->looplag_due_us = clock_mono_us() + LOOPLAG_INTERVAL_MS * 1000;
	if (event_add(d->ev_looplag, &tv) == -1)
		log_warnx("event_add: the loop-lag timer: no loop_lag metrics");
}

/* Lateness includes up to 1 ms of epoll's millisecond rounding. */
static void
looplag_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	looplag_observe(&metrics.loop_lag, clock_mono_us() - d->looplag_due_us);
	looplag_arm(d);
}

static void
spool_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	queue_tick(d->q);
}

static void
synced_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	queue_sync_done(d->q);
}

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (d->spool != NULL && pgpool_connected(d->pool) == 0) {
		/* Nothing can be stored now: teardown() spools the rest. */
		log_notice("shutdown: the database is not reachable; the "
			   "%llu queued lines go to the spool",
		    (unsigned long long)queue_lines(d->q));
		event_base_loopexit(d->base, NULL);
		return;
	}
	if (queue_lines(d->q) == 0 && listeners_open(d->ls) == 0) {
		log_notice("shutdown: all %llu received lines are stored",
		    (unsigned long long)metrics.lines_committed);
		event_base_loopexit(d->base, NULL);
	}
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (d->spool != NULL)
		log_notice("shutdown: shutdown-timeout (%d ms) reached with "
			   "%llu lines not stored in the database; they go "
			   "to the spool",
		    d->cfg.shutdown_timeout_ms,
		    (unsigned long long)queue_lines(d->q));
	else
		log_errx("shutdown: shutdown-timeout (%d ms) reached with "
			 "%llu lines (%zu bytes) not stored in the database; "
			 "they are lost (set spool-dir to keep them)",
		    d->cfg.shutdown_timeout_ms,
		    (unsigned long long)queue_lines(d->q), queue_bytes(d->q));
	event_base_loopexit(d->base, NULL); /* exit 0: the stop was asked for */
}

/* Re-arms the stats: timer for stats-interval (0: no stats: line). */
static void
stats_arm(struct daemon *d)
{
	int ms = d->cfg.stats_interval_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_del(d->ev_stats);
	if (ms > 0 && event_add(d->ev_stats, &tv) == -1)
		log_warnx("event_add: the stats timer: no stats: lines");
}

/*
 * Whether records can be stored now: a database connection is up, or a
 * spool takes them (proto=http answers 503 to new requests otherwise).
 */
static bool
can_store(void *arg)
{
	const struct daemon *d = arg;

	return d->spool != NULL || pgpool_connected(d->pool) > 0;
}

/* The listener part of cfg (start-up and SIGHUP). */
static void
listener_settings_of(const struct config *cfg, struct listener_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->max_line_bytes = cfg->max_line_bytes;
	set->max_connections = cfg->max_connections;
	set->max_per_ip = cfg->max_connections_per_ip;
	set->idle_timeout_ms = cfg->idle_timeout_ms;
	set->partial_line_timeout_ms = cfg->partial_line_timeout_ms;
	set->framing_detect_ms = cfg->framing_detect_timeout_ms;
	set->max_tls_handshakes = cfg->tls_max_handshakes;
	set->proxy_header_timeout_ms = cfg->proxy_header_timeout_ms;
	set->proxy_max_header_bytes = cfg->proxy_max_header_bytes;
	set->udp_rcvbuf_bytes = cfg->udp_rcvbuf_bytes;
	set->forward_max_message_bytes = cfg->forward_max_message_bytes;
	set->forward_max_entries = (size_t)cfg->forward_max_entries;
	set->http_max_header_bytes = cfg->http_max_header_bytes;
	set->http_max_headers = cfg->http_max_headers;
	set->http_max_body_bytes = cfg->http_max_body_bytes;
	set->http_max_depth = cfg->http_max_depth;
	set->http_header_timeout_ms = cfg->http_header_timeout_ms;
	set->http_body_timeout_ms = cfg->http_body_timeout_ms;
	set->http_keepalive_timeout_ms = cfg->http_keepalive_timeout_ms;
	set->http_answer_timeout_ms = cfg->http_answer_timeout_ms;
	set->fair_share_percent = cfg->fair_share_percent;
	set->rate_per_sec = (uint32_t)cfg->rate_limit_per_sec;
	set->rate_burst = (uint32_t)cfg->rate_limit_burst;
	set->rate_drop = cfg->rate_limit_drop != 0;
	set->rate_max_sources = (size_t)cfg->rate_limit_sources;
}

/*
 * SIGHUP with a tls=on listener: a new context from n's files, for new
 * connections (open ones keep theirs).  The files are read again even if
 * their names did not change (a renewed certificate).  NULL when the new
 * context replaced the running one; else why not: then the running
 * context and tls-* settings stay.
 */
static const char *
reload_tls(struct daemon *d, const struct config *n)
{
	struct tls_ctx *ctx;
	char err[1024];

	if (!d->tls)
		return NULL;
	if (n->tls_cert == NULL) {
		/* No tls=on listener left in the file: that is a listen
		 * change, which waits for a restart. */
		log_warnx("SIGHUP: tls-cert and tls-key are no longer set; the "
			  "TLS listeners keep the running certificate until a "
			  "restart");
		return "tls-cert and tls-key are no longer set";
	}
	if ((ctx = load_tls(n, err, sizeof(err))) == NULL) {
		log_errx("SIGHUP: TLS files not reloaded, new connections keep "
			 "the previous certificate: %s",
		    err);
		return "the TLS files did not load";
	}
	listeners_set_tls(d->ls, ctx, n->tls_handshake_timeout_ms);
	log_notice("SIGHUP: TLS files reloaded: %s", tls_ctx_describe(ctx));
	return NULL;
}

/*
 * Hands the running config's values to the parts named in groups (an OR
 * of enum config_reload): the keys of those groups changed.
 * CONFIG_APPLY_READ keys are read from d->cfg when used; TLS was applied
 * by reload_tls().
 */
static void
reload_apply(struct daemon *d, unsigned groups)
{
	const struct config *c = &d->cfg;
	struct listener_settings lset;

	if (groups & CONFIG_APPLY_LOG)
		log_level = c->log_level;
	if (groups & CONFIG_APPLY_QUEUE)
		queue_set_batch_limits(
		    d->q, (uint32_t)c->batch_lines, c->batch_bytes);
	if (groups & CONFIG_APPLY_POOL) {
		pgpool_set_flush_interval(d->pool, c->flush_interval_ms);
		pgpool_set_timeouts(
		    d->pool, c->db_timeout_ms, c->maintenance_timeout_ms);
		pgpool_set_reconnect(
		    d->pool, c->reconnect_min_ms, c->reconnect_max_ms);
	}
	if (groups & CONFIG_APPLY_PARTITIONS)
		pgpool_set_partitions(
		    d->pool, c->partitions_ahead, c->retention_days);
	if (groups & CONFIG_APPLY_LISTENERS) {
		listener_settings_of(c, &lset);
		listeners_set_settings(d->ls, &lset);
	}
	if (groups & CONFIG_APPLY_STATS)
		stats_arm(d);
}

/* Appends " text" to the NUL-terminated buf of size len (truncating). */
static void
append(char *buf, size_t len, const char *text)
{
	size_t n = strlen(buf);

	if (n + 1 < len)
		snprintf(buf + n, len - n, " %s", text);
}

/* The reload's result for the log: what SIGHUP did with the changed keys. */
struct reload_log {
	char applied[2048]; /* " key=value ..." */
	char restart[1024]; /* " key ..." */
	char kept[1024];    /* " key ...": applying failed */
};

/*
 * Logs what the reload does with one changed key, old and new values
 * (db not shown), and notes it in rl.  kept: why an applied key could
 * not be applied (NULL: it was).
 */
static void
reload_note(const struct config *old, const struct config *n, size_t key,
    const char *kept, struct reload_log *rl)
{
	const char *name = config_key_name(key);
	char a[1024], b[1024], kv[1100];

	config_key_value(old, key, a, sizeof(a));
	config_key_value(n, key, b, sizeof(b));
	if (config_key_reload(key) == CONFIG_RESTART) {
		log_warnx("SIGHUP: %s %s -> %s: needs a restart, running value "
			  "kept",
		    name, a, b);
		append(rl->restart, sizeof(rl->restart), name);
	} else if (kept != NULL) {
		log_warnx("SIGHUP: %s %s -> %s: not applied (%s), running "
			  "value kept",
		    name, a, b, kept);
		append(rl->kept, sizeof(rl->kept), name);
	} else {
		log_notice("SIGHUP: %s %s -> %s (applied)", name, a, b);
		snprintf(kv, sizeof(kv), "%s=%s", name, b);
		append(rl->applied, sizeof(rl->applied), kv);
	}
}

/*
 * SIGHUP: re-read the file and the command line into a fresh config,
 * validated as a whole (a bad file keeps the running settings, and says
 * why).  Every key whose value changed is logged as applied or as needing
 * a restart; the running config takes the applied values only, so it
 * keeps describing what runs (a restart key is reported again next time).
 * The mix stays valid: config_finish()'s cross-key checks tie keys of one
 * class (reconnect-min/max, tls-verify-client/tls-ca, db/db-file,
 * ack=spooled/spool-dir, max-line-bytes/queue-bytes), but for tls-cert
 * and tls-key against tls=on listeners, which reload_tls() keeps.
 */
static void
reload(struct daemon *d)
{
	size_t keys[CONFIG_MAX_KEYS], nkeys, i;
	struct reload_log rl = { "", "", "" };
	const char *tls_kept, *kept;
	enum config_reload r;
	unsigned groups = 0;
	struct config n;
	char err[1024];

	sd_notify(0, "RELOADING=1");
	if (load_config(&n, &d->opts, err, sizeof(err)) == -1) {
		log_errx("SIGHUP: configuration not reloaded, keeping the "
			 "running one: %s",
		    err);
		sd_notify(0, "READY=1");
		return;
	}
	nkeys = config_diff(&d->cfg, &n, keys, CONFIG_MAX_KEYS);
	tls_kept = reload_tls(d, &n);
	for (i = 0; i < nkeys; i++) {
		r = config_key_reload(keys[i]);
		kept = r == CONFIG_APPLY_TLS ? tls_kept : NULL;
		reload_note(&d->cfg, &n, keys[i], kept, &rl);
		if (r == CONFIG_RESTART || kept != NULL)
			continue;
		config_key_swap(&d->cfg, &n, keys[i]);
		groups |= (unsigned)r;
	}
	if (nkeys == 0)
		log_notice("SIGHUP: configuration reloaded, nothing changed");
	else
		log_notice("SIGHUP: configuration reloaded; applied:%s; apply "
			   "only after a restart:%s%s%s",
		    rl.applied[0] ? rl.applied : " none",
		    rl.restart[0] ? rl.restart : " none",
		    rl.kept[0] ? "; not applied:" : "", rl.kept);
	reload_apply(d, groups); /* the log level last: the lines above show */
	config_free(&n);
	sd_notify(0, "READY=1");
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval poll = { 0, DRAIN_POLL_MS * 1000 };
	struct timeval tv = { d->cfg.shutdown_timeout_ms / 1000,
		(d->cfg.shutdown_timeout_ms % 1000) * 1000 };
	size_t n;

	(void)what;
	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	if (d->stopping) {
		log_notice("%s again: still flushing %llu lines",
		    strsignal((int)sig), (unsigned long long)queue_lines(d->q));
		return;
	}
	d->stopping = true;
	sd_notify(0, "STOPPING=1");
	n = listeners_shutdown(d->ls);
	log_notice("%s: stopped listening, closed %zu connections; flushing "
		   "%llu queued lines (shutdown-timeout %d ms)",
	    strsignal((int)sig), n, (unsigned long long)queue_lines(d->q),
	    d->cfg.shutdown_timeout_ms);
	pgpool_drain(d->pool);
	queue_stop_replay(d->q); /* the spool waits for the next start */
	event_add(d->ev_drain, &poll);
	event_add(d->ev_deadline, &tv);
}

static struct event *
must_event(struct event *ev, const char *what)
{
	if (ev == NULL)
		fatalx("%s: event_new failed", what);
	return ev;
}

static void
setup_events(struct daemon *d)
{
	static const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	struct timeval tv = { d->cfg.stats_interval_ms / 1000,
		(d->cfg.stats_interval_ms % 1000) * 1000 };
	int i;

	d->ev_kick = must_event(event_new(d->base, -1, 0, kick_cb, d), "kick");
	d->ev_resume =
	    must_event(event_new(d->base, -1, 0, resume_cb, d), "resume");
	d->ev_stats = must_event(
	    event_new(d->base, -1, EV_PERSIST, stats_cb, d), "stats");
	d->ev_drain = must_event(
	    event_new(d->base, -1, EV_PERSIST, drain_cb, d), "drain");
	d->ev_deadline =
	    must_event(evtimer_new(d->base, deadline_cb, d), "deadline");
	uint64_t wd_usec;

	if (d->cfg.stats_interval_ms > 0)
		event_add(d->ev_stats, &tv);
	d->ev_watchdog = must_event(
	    event_new(d->base, -1, EV_PERSIST, watchdog_cb, d), "watchdog");
	d->ev_status = must_event(
	    event_new(d->base, -1, EV_PERSIST, status_cb, d), "status");
	d->ev_spool = must_event(
	    event_new(d->base, -1, EV_PERSIST, spool_cb, d), "spool");
	d->ev_looplag =
	    must_event(evtimer_new(d->base, looplag_cb, d), "loop lag");
	looplag_arm(d);
	if (d->spool != NULL) {
		tv.tv_sec = d->cfg.spool_sync_interval_ms / 1000;
		tv.tv_usec = (d->cfg.spool_sync_interval_ms % 1000) * 1000;
		event_add(d->ev_spool, &tv);
		d->ev_synced =
		    must_event(event_new(d->base, spool_sync_fd(d->spool),
				   EV_READ | EV_PERSIST, synced_cb, d),
			"spool sync");
		event_add(d->ev_synced, NULL);
	}
	if (sd_watchdog_enabled(0, &wd_usec) > 0) {
		tv.tv_sec = (time_t)(wd_usec / 2 / 1000000);
		tv.tv_usec = (suseconds_t)(wd_usec / 2 % 1000000);
		event_add(d->ev_watchdog, &tv);
		log_info("systemd watchdog: keep-alive every %llu ms",
		    (unsigned long long)(wd_usec / 2000));
	}
	if (getenv("NOTIFY_SOCKET") != NULL) {
		tv.tv_sec = STATUS_INTERVAL_MS / 1000;
		tv.tv_usec = 0;
		event_add(d->ev_status, &tv);
	}
	for (i = 0; i < 3; i++) {
		d->ev_sig[i] = must_event(
		    evsignal_new(d->base, sigs[i], signal_cb, d), "signal");
		event_add(d->ev_sig[i], NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	/* Signals that came during start-up were held: handle them now. */
	sigprocmask(SIG_SETMASK, &d->startup_mask, NULL);
}

/* Whatever is still in memory at exit goes to the spool, if there is one. */
static void
spool_at_exit(struct daemon *d)
{
	uint64_t n = queue_lines(d->q), lost;

	if (d->spool == NULL || n == 0)
		return;
	lost = queue_spill_all(d->q);
	if (lost > 0)
		log_errx("shutdown: %llu lines could not be spooled to %s "
			 "(full: see spool-max-bytes); they are lost",
		    (unsigned long long)lost, spool_dir(d->spool));
	log_notice("shutdown: %llu lines are in the spool (%s); they are "
		   "stored when logsinkd starts again",
	    (unsigned long long)(n - lost), spool_dir(d->spool));
}

static void
teardown(struct daemon *d)
{
	int i;

	if (d->ev_synced != NULL)
		event_free(d->ev_synced); /* spool_close() closes its fd */
	listeners_free(d->ls);
	pgpool_free(d->pool); /* batches being written return to the queue */
	spool_at_exit(d);
	queue_free(d->q);
	spool_close(d->spool);
	event_free(d->ev_kick);
	event_free(d->ev_resume);
	event_free(d->ev_stats);
	event_free(d->ev_drain);
	event_free(d->ev_deadline);
	event_free(d->ev_watchdog);
	event_free(d->ev_status);
	event_free(d->ev_spool);
	event_free(d->ev_looplag);
	httpd_free(d->httpd);
	for (i = 0; i < 3; i++)
		event_free(d->ev_sig[i]);
	event_base_free(d->base);
	config_free(&d->cfg);
}

/*
 * The listen setting whose port matches a socket passed by systemd; NULL
 * if none does.
 */
static const struct listen_spec *
listen_for_fd(const struct config *cfg, int fd, bool udp)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char port[8];
	size_t i;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return NULL;
	snprintf(port, sizeof(port), "%u",
	    ntohs(ss.ss_family == AF_INET6
		    ? ((struct sockaddr_in6 *)&ss)->sin6_port
		    : ((struct sockaddr_in *)&ss)->sin_port));
	for (i = 0; i < cfg->nlisten; i++)
		if (strcmp(cfg->listen[i].port, port) == 0 &&
		    (cfg->listen[i].proto == CONFIG_PROTO_UDP) == udp)
			return &cfg->listen[i];
	return NULL;
}

/*
 * Sockets passed by systemd (logsinkd.socket) replace the listen setting;
 * a listen entry with the same port lends them its options.
 */
static void
open_listeners(struct daemon *d)
{
	char err[1024];
	int i, n, fd;
	bool udp;
	size_t k;

	if ((n = sd_listen_fds(1)) < 0)
		fatalx("sd_listen_fds: %s", strerror(-n));
	for (i = 0; i < n; i++) {
		fd = SD_LISTEN_FDS_START + i;
		udp = sd_is_socket(fd, AF_UNSPEC, SOCK_DGRAM, -1) > 0;
		if (!udp && sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			fatalx("socket %d from systemd is neither a listening "
			       "TCP socket (ListenStream=) nor a UDP one "
			       "(ListenDatagram=)",
			    fd);
		if (listeners_add_fd(d->ls, fd, listen_for_fd(&d->cfg, fd, udp),
			err, sizeof(err)) == -1)
			fatalx("%s", err);
	}
	if (n > 0)
		return;
	for (k = 0; k < d->cfg.nlisten; k++)
		if (listeners_add(d->ls, &d->cfg.listen[k], err, sizeof(err)) ==
		    -1)
			fatalx("%s", err);
}

/*
 * Started as root: switch to cfg->user once the sockets are bound, so no
 * line is ever handled with root's rights; refuse to run as root at all.
 */
static void
drop_privileges(const struct config *cfg)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		if (cfg->user != NULL)
			log_info("user = %s not applied: not started as root",
			    cfg->user);
		return;
	}
	if ((pw = getpwnam(cfg->user)) == NULL)
		fatalx("user = %s: no such user", cfg->user);
	if (pw->pw_uid == 0)
		fatalx(
		    "user = %s is root; name an unprivileged user", cfg->user);
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("switching to user %s", cfg->user);
	if (setuid(0) != -1)
		fatalx(
		    "switching to user %s: root could be regained", cfg->user);
	setenv("HOME", pw->pw_dir, 1); /* libpq's ~/.pgpass */
	log_info(
	    "running as user %s (uid %u)", cfg->user, (unsigned)pw->pw_uid);
}

static int
run(struct daemon *d)
{
	struct listener_settings lset;
	struct pgpool_settings pset = { d->cfg.db, d->cfg.table,
		d->cfg.db_connections, d->cfg.flush_interval_ms,
		d->cfg.reconnect_min_ms, d->cfg.reconnect_max_ms,
		d->cfg.db_timeout_ms, d->cfg.maintenance_timeout_ms,
		d->cfg.partitions_ahead, d->cfg.retention_days };
	struct tls_settings tset;
	struct tls_ctx *tls;
	char err[1024];
	sigset_t held;

	/* Until the handlers exist, a SIGHUP or SIGTERM would kill us with
	 * the default action: hold them (setup_events() releases them). */
	sigemptyset(&held);
	sigaddset(&held, SIGHUP);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGINT);
	sigprocmask(SIG_BLOCK, &held, &d->startup_mask);
	listener_settings_of(&d->cfg, &lset);
	if (geteuid() == 0 && d->cfg.user == NULL)
		fatalx("refusing to run as root: set user = NAME (or --user "
		       "NAME) to switch to that user after binding, or start "
		       "logsinkd as an unprivileged user");
	if ((d->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	d->q = queue_new(d->cfg.queue_bytes, d->cfg.queue_resume_percent,
	    (uint32_t)d->cfg.batch_lines, d->cfg.batch_bytes);
	if (d->q == NULL)
		fatalx("out of memory");
	queue_set_callbacks(d->q, on_queue_data, on_queue_space, d);
	queue_set_ack_callbacks(d->q, ack_take, ack_credit, ack_drop);
	if ((d->pool = pgpool_new(d->base, d->q, &pset, err, sizeof(err))) ==
	    NULL)
		fatalx("%s", err);
	if ((d->ls = listeners_new(d->base, d->q, &lset)) == NULL)
		fatalx("out of memory");
	listeners_set_can_store(d->ls, can_store, d);
	if (config_uses_tls(&d->cfg)) {
		/* Read now, while still root if started so. */
		if ((tls = load_tls(&d->cfg, err, sizeof(err))) == NULL)
			fatalx("%s", err);
		log_info("TLS: %s", tls_ctx_describe(tls));
		listeners_set_tls(d->ls, tls, d->cfg.tls_handshake_timeout_ms);
		d->tls = true;
	}
	if (d->cfg.metrics_listen != NULL) {
		d->httpd = httpd_new(d->base, d->cfg.metrics_listen, gauges_cb,
		    d, err, sizeof(err));
		if (d->httpd == NULL)
			fatalx("%s", err);
		log_info("metrics on http://%s/metrics and /healthz",
		    d->cfg.metrics_listen);
	}
	open_listeners(d);
	drop_privileges(&d->cfg);
	if (d->cfg.spool_dir != NULL) {
		struct spool_settings sset = { d->cfg.spool_dir,
			d->cfg.spool_max_bytes, d->cfg.spool_segment_bytes,
			spool_crc32c(
			    0, COPYENC_FORMAT, strlen(COPYENC_FORMAT)) };

		if ((d->spool = spool_open(&sset, err, sizeof(err))) == NULL)
			fatalx("%s", err);
		queue_set_spool(d->q, d->spool);
	}
	tls_settings_of(&d->cfg, &tset);
	if (d->tls && !tls_files_readable(&tset, err, sizeof(err)))
		log_warnx(
		    "a SIGHUP reload of the TLS files would fail: %s", err);
	setup_events(d);
	pgpool_on_contact(d->pool, on_db_contact, d);
	log_notice("logsinkd %s started", LOGSINK_VERSION);
	pgpool_start(d->pool);
	if (event_base_dispatch(d->base) == -1)
		fatalx("event_base_dispatch failed");
	teardown(d);
	return 0;
}

/* Copies of the --db values whose originals were blanked (below). */
static char *hidden_args[8];

static void
free_hidden_args(void)
{
	size_t i;

	for (i = 0; i < sizeof(hidden_args) / sizeof(hidden_args[0]); i++)
		free(hidden_args[i]);
}

/*
 * A password in --db would show in ps and /proc/PID/cmdline: blank the
 * value there (the process's own argv memory) and keep a private copy.
 */
static void
hide_db_args(int argc, char **argv)
{
	size_t n = 0, skip;
	char **slot;
	int i;

	atexit(free_hidden_args);
	for (i = 1; i < argc && n < 8; i++) {
		if (argv[i] == NULL)
			continue;
		if (strcmp(argv[i], "--db") == 0 && i + 1 < argc &&
		    argv[i + 1] != NULL) {
			slot = &argv[++i];
			skip = 0;
		} else if (strncmp(argv[i], "--db=", 5) == 0) {
			slot = &argv[i];
			skip = 5;
		} else {
			continue;
		}
		if ((hidden_args[n] = strdup(*slot)) == NULL)
			fatalx("out of memory");
		memset(*slot + skip, '*', strlen(*slot + skip));
		*slot = hidden_args[n++];
	}
}

int
main(int argc, char **argv)
{
	struct daemon d;
	char err[1024];
	int rc;

	setvbuf(stderr, NULL, _IOLBF, 0);
	log_init();
	memset(&d, 0, sizeof(d));
	hide_db_args(argc, argv);
	if (parse_args(argc, argv, &d.opts) == -1)
		return EXIT_USAGE;
	if (load_config(&d.cfg, &d.opts, err, sizeof(err)) == -1) {
		fprintf(stderr, "logsinkd: %s\n", err);
		return EXIT_USAGE;
	}
	log_level = d.cfg.log_level;
	switch (d.opts.action) {
	case CHECK_CONFIG:
		config_dump(&d.cfg, stdout);
		if (check_tls(&d.cfg) == -1) {
			config_free(&d.cfg);
			return EXIT_USAGE;
		}
		printf("# configuration OK\n");
		config_free(&d.cfg);
		return 0;
	case INIT_DB:
		rc = init_db(&d.cfg);
		config_free(&d.cfg);
		return rc;
	default:
		return run(&d);
	}
}
