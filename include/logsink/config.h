/*
 * config: the daemon's settings.  One static table drives parsing,
 * defaults, range checks, --help, --check-config's dump, freeing and what
 * a SIGHUP reload does with each key.  Leaf module: it reports
 * errors through (err, errlen) and never logs or exits.
 */
#ifndef LOGSINK_CONFIG_H
#define LOGSINK_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "logsink/cidr.h"

#define CONFIG_DEFAULT_LISTEN "127.0.0.1:5140"

/*
 * One listen value: "HOST:PORT [framing=auto|lf|nul|octet]
 * [format=auto|raw] [ack=none|commit|spooled] [allow=CIDR,CIDR,...]
 * [tls=off|on] [proxy=CIDR,CIDR,...] [tz=ZONE] [proto=tcp|udp]".  tls=on:
 * TLS over TCP (RFC 5425), with the global tls-cert, tls-key, tls-ca and
 * tls-verify-client settings; the framing applies inside TLS.  proxy=:
 * only these peers may connect, each connection starting with a PROXY
 * protocol header (v1 or v2) naming the client, to which allow= and the
 * per-address limits apply.  proto=udp: syslog datagrams (RFC 5426), one
 * datagram one message; framing=, ack= and tls= do not apply there (an
 * error).
 */
#define CONFIG_MAX_ALLOW 64

enum config_ack {
	CONFIG_ACK_NONE,
	CONFIG_ACK_COMMIT,  /* "ok N": N lines committed */
	CONFIG_ACK_SPOOLED, /* the same, or durable in the spool */
};

enum config_proto {
	CONFIG_PROTO_TCP,     /* framed lines (framing=) */
	CONFIG_PROTO_RELP,    /* RELP sessions (relp.h); always acknowledged */
	CONFIG_PROTO_UDP,     /* syslog datagrams (RFC 5426), one per message */
	CONFIG_PROTO_HTTP,    /* HTTP ingest: journald upload, JSON, OTLP;
				 answered after commit */
	CONFIG_PROTO_FORWARD, /* Fluent forward; chunks acked after commit */
	CONFIG_NPROTOS,
};

/* "tcp", "relp", ...; NULL if out of range. */
const char *config_proto_name(int proto);
/* True for protocols that answer each message once stored (an ack
 * reference always, ack=commit unless ack=spooled). */
bool config_proto_acked(int proto);

struct listen_spec {
	char host[256];
	char port[8];
	int framing;                         /* enum framer_mode */
	int format;                          /* enum parser_format */
	int ack;                             /* enum config_ack */
	int tls;                             /* 1: tls=on */
	int proto;                           /* enum config_proto */
	struct cidr allow[CONFIG_MAX_ALLOW]; /* none: any peer */
	int nallow;
	struct cidr proxy[CONFIG_MAX_ALLOW]; /* none: no PROXY header */
	int nproxy;
	/* tz=: the zone of BSD timestamps (logsink/tzrule.h); "": local */
	char tz[64];
	/* shared-key=FILE (proto=forward): the key read from FILE; "": no
	 * handshake */
	char shared_key[256];
	/* proto=http: path= of the JSON endpoint ("": /ingest) and
	 * tokens=, a file of bearer tokens ("": no Authorization needed) */
	char http_path[256];
	char http_tokens[1024];
	char *text; /* the value as written, for dump and comparison; owned
		     * by the config holding the spec (NULL from
		     * config_parse_listen()) */
};

/*
 * What SIGHUP does with a key whose value changed (the table's reload
 * column): CONFIG_RESTART keeps the running value; the others name the
 * part of the daemon main's reload hands the new value to.
 */
enum config_reload {
	CONFIG_RESTART = 1 << 0,          /* read at start-up only */
	CONFIG_APPLY_READ = 1 << 1,       /* read from the config when used */
	CONFIG_APPLY_LOG = 1 << 2,        /* the log level */
	CONFIG_APPLY_QUEUE = 1 << 3,      /* queue_set_batch_limits() */
	CONFIG_APPLY_POOL = 1 << 4,       /* pgpool_set_*() but partitions */
	CONFIG_APPLY_PARTITIONS = 1 << 5, /* pgpool_set_partitions() */
	CONFIG_APPLY_LISTENERS = 1 << 6,  /* listeners_set_settings() */
	CONFIG_APPLY_STATS = 1 << 7,      /* the stats: timer */
	CONFIG_APPLY_TLS = 1 << 8,        /* a new TLS context, if it loads */
};

#define CONFIG_MAX_KEYS 64 /* at least the number of keys */

/* Owned by main; strings and the listen array freed by config_free(). */
struct config {
	struct listen_spec *listen; /* parsed, each with its text */
	size_t nlisten;
	char *db;      /* libpq conninfo; NULL: PG* environment */
	char *db_file; /* file holding the conninfo instead */
	char *table;   /* "schema.table" */
	int log_level;
	size_t max_line_bytes;
	size_t queue_bytes;
	int queue_resume_percent;
	int db_connections;
	int batch_lines;
	size_t batch_bytes;
	int flush_interval_ms;
	int shutdown_timeout_ms;
	int reconnect_min_ms;
	int reconnect_max_ms;
	int stats_interval_ms;
	char *metrics_listen; /* "HOST:PORT" or NULL */
	int db_timeout_ms;
	int maintenance_timeout_ms;
	int partitions_ahead;
	int retention_days; /* 0: keep forever */
	int max_connections;
	int max_connections_per_ip;  /* 0: no limit */
	int idle_timeout_ms;         /* 0: never */
	int partial_line_timeout_ms; /* 0: never */
	char *user;                  /* drop to this user after binding */
	char *spool_dir;             /* NULL: no disk spool */
	size_t spool_max_bytes;
	size_t spool_segment_bytes;
	int spool_sync_interval_ms;
	int framing_detect_timeout_ms;
	char *tls_cert; /* PEM files for tls=on listeners */
	char *tls_key;
	char *tls_ca;
	int tls_verify_client;        /* enum tls_verify */
	int tls_min_version;          /* 12: TLS 1.2, 13: TLS 1.3 */
	int tls_handshake_timeout_ms; /* 0: never */
	int tls_max_handshakes;
	int proxy_header_timeout_ms;
	size_t proxy_max_header_bytes;
	size_t udp_rcvbuf_bytes;          /* SO_RCVBUF of proto=udp listeners */
	size_t forward_max_message_bytes; /* proto=forward */
	int forward_max_entries;
	size_t http_max_header_bytes; /* proto=http listeners */
	int http_max_headers;
	size_t http_max_body_bytes;
	int http_max_depth;
	int http_header_timeout_ms;
	int http_body_timeout_ms;
	int http_keepalive_timeout_ms;
	int http_answer_timeout_ms;
	int fair_share_percent; /* 0: only a full queue pauses */
	int rate_limit_per_sec; /* 0: no rate limit */
	int rate_limit_burst;   /* 0: rate_limit_per_sec */
	int rate_limit_drop;    /* rate-limit-mode=drop */
	int rate_limit_sources;
};

void config_init(struct config *cfg);
void config_free(struct config *cfg);

/* Sets one key from text; "listen" appends.  -1 with a message in err. */
int config_set(struct config *cfg, const char *key, const char *value,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Reads "key = value" lines; errors name the file and line. */
int config_load_file(struct config *cfg, const char *path, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Drops the listen addresses (the command line replaces the file's). */
void config_clear_listen(struct config *cfg);

/* Cross-key checks and defaults that depend on other keys. */
int config_finish(struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* True if key names a setting (for the command line parser). */
int config_is_key(const char *key);

/* True if a listen value has tls=on (a server context is needed). */
int config_uses_tls(const struct config *cfg);

int config_parse_listen(const char *value, struct listen_spec *spec, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Splits "HOST:PORT" / "[HOST]:PORT" into host and port. */
int config_split_hostport(const char *s, char *host, size_t hostlen, char *port,
    size_t portlen) __attribute__((warn_unused_result));

/* Prints every key with its meaning, default and what SIGHUP does. */
void config_print_keys(FILE *fp);
/* Prints the effective settings (db masked) as a config file. */
void config_dump(const struct config *cfg, FILE *fp);

/* The keys, by index 0..config_nkeys()-1 in the table's order. */
size_t config_nkeys(void);
const char *config_key_name(size_t key);
enum config_reload config_key_reload(size_t key);
/*
 * key's value in cfg for the log: as in the config file, "unset" when it
 * has none, "(set, not shown)" for db; listen entries quoted, comma
 * separated.  Truncated to len.
 */
void config_key_value(
    const struct config *cfg, size_t key, char *buf, size_t len);
/* Puts the keys whose values differ in a and b into keys[] (at most max,
 * table order) and returns how many. */
size_t config_diff(
    const struct config *a, const struct config *b, size_t *keys, size_t max);
/* Exchanges key's values (and their ownership) between a and b. */
void config_key_swap(struct config *a, struct config *b, size_t key);

#endif
