/*
 * logsinkd: command line, signals and the event loop; everything else
 * lives in the modules this file wires together.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
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
#include "logsink/config.h"
#include "logsink/copyenc.h"
#include "logsink/dbconn.h"
#include "logsink/httpd.h"
#include "logsink/listener.h"
#include "logsink/log.h"
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
	    "Receives log lines over TCP and stores them in PostgreSQL.\n"
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
	    "  format=auto|raw            parse syslog/JSON, or store the raw "
	    "line\n"
	    "  ack=none|commit            write \"ok N\" once N lines are "
	    "stored\n"
	    "  allow=CIDR,...             only these peers may connect\n"
	    "  tls=off|on                 TLS (RFC 5425) with tls-cert, "
	    "tls-key,\n"
	    "                             tls-ca and tls-verify-client\n");
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

static void
spool_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	queue_tick(d->q);
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

/* Settings that only a restart can change, for the reload log line. */
static void
reload_warn(const struct config *old, const struct config *new)
{
	size_t i;
	bool same = old->nlisten == new->nlisten;

	for (i = 0; same && i < old->nlisten; i++)
		same = strcmp(old->listen[i], new->listen[i]) == 0;
	if (!same)
		log_warnx("SIGHUP: listen changed; restart to apply");
	if ((old->db == NULL) != (new->db == NULL) ||
	    (old->db != NULL && strcmp(old->db, new->db) != 0))
		log_warnx("SIGHUP: db changed; restart to apply");
	if (strcmp(old->table, new->table) != 0)
		log_warnx("SIGHUP: table changed; restart to apply");
	if ((old->metrics_listen == NULL) != (new->metrics_listen == NULL) ||
	    (old->metrics_listen != NULL &&
		strcmp(old->metrics_listen, new->metrics_listen) != 0))
		log_warnx("SIGHUP: metrics-listen changed; restart to apply");
	if ((old->spool_dir == NULL) != (new->spool_dir == NULL) ||
	    (old->spool_dir != NULL &&
		strcmp(old->spool_dir, new->spool_dir) != 0) ||
	    old->spool_max_bytes != new->spool_max_bytes ||
	    old->spool_segment_bytes != new->spool_segment_bytes ||
	    old->spool_sync_interval_ms != new->spool_sync_interval_ms)
		log_warnx("SIGHUP: spool-* settings apply only after a "
			  "restart");
	if (old->max_line_bytes != new->max_line_bytes ||
	    old->queue_bytes != new->queue_bytes ||
	    old->queue_resume_percent != new->queue_resume_percent ||
	    old->db_connections != new->db_connections ||
	    old->reconnect_min_ms != new->reconnect_min_ms ||
	    old->reconnect_max_ms != new->reconnect_max_ms)
		log_warnx("SIGHUP: max-line-bytes, queue-bytes, "
			  "queue-resume-percent, db-connections and "
			  "reconnect-* apply only after a restart");
}

/*
 * SIGHUP with a tls=on listener: a new context from the files, for new
 * connections (open ones keep theirs).  If the files do not load, the
 * running context and its settings stay.
 */
static void
reload_tls(struct daemon *d, struct config *n)
{
	struct tls_ctx *ctx;
	char err[1024], *t;

	if (!d->tls)
		return;
	if (n->tls_cert == NULL) {
		/* No tls=on listener left in the file: that is a listen
		 * change, which waits for a restart (reload_warn says so). */
		log_warnx("SIGHUP: tls-cert and tls-key are no longer set; the "
			  "TLS listeners keep the running certificate until a "
			  "restart");
		return;
	}
	if ((ctx = load_tls(n, err, sizeof(err))) == NULL) {
		log_errx("SIGHUP: TLS files not reloaded, new connections keep "
			 "the previous certificate: %s",
		    err);
		return;
	}
	listeners_set_tls(d->ls, ctx, n->tls_handshake_timeout_ms);
	/* The running config takes n's file names (n frees the old ones). */
	t = d->cfg.tls_cert, d->cfg.tls_cert = n->tls_cert, n->tls_cert = t;
	t = d->cfg.tls_key, d->cfg.tls_key = n->tls_key, n->tls_key = t;
	t = d->cfg.tls_ca, d->cfg.tls_ca = n->tls_ca, n->tls_ca = t;
	d->cfg.tls_verify_client = n->tls_verify_client;
	d->cfg.tls_min_version = n->tls_min_version;
	d->cfg.tls_handshake_timeout_ms = n->tls_handshake_timeout_ms;
	log_notice("SIGHUP: TLS files reloaded: %s", tls_ctx_describe(ctx));
}

/*
 * SIGHUP: re-read the file and the command line into a fresh config and
 * apply what can change at run time; a bad file keeps the old settings.
 */
static void
reload(struct daemon *d)
{
	struct timeval tv;
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
	reload_warn(&d->cfg, &n);
	log_level = d->cfg.log_level = n.log_level;
	d->cfg.batch_lines = n.batch_lines;
	d->cfg.batch_bytes = n.batch_bytes;
	queue_set_batch_limits(d->q, (uint32_t)n.batch_lines, n.batch_bytes);
	d->cfg.flush_interval_ms = n.flush_interval_ms;
	pgpool_set_flush_interval(d->pool, n.flush_interval_ms);
	d->cfg.shutdown_timeout_ms = n.shutdown_timeout_ms;
	if (d->cfg.partitions_ahead != n.partitions_ahead ||
	    d->cfg.retention_days != n.retention_days)
		pgpool_set_partitions(
		    d->pool, n.partitions_ahead, n.retention_days);
	d->cfg.partitions_ahead = n.partitions_ahead;
	d->cfg.retention_days = n.retention_days;
	d->cfg.stats_interval_ms = n.stats_interval_ms;
	event_del(d->ev_stats);
	if (n.stats_interval_ms > 0) {
		tv.tv_sec = n.stats_interval_ms / 1000;
		tv.tv_usec = (n.stats_interval_ms % 1000) * 1000;
		event_add(d->ev_stats, &tv);
	}
	reload_tls(d, &n);
	config_free(&n);
	log_notice("SIGHUP: configuration reloaded (log-level=%s "
		   "batch-lines=%d batch-bytes=%zu flush-interval-ms=%d "
		   "shutdown-timeout=%dms)",
	    log_level_name(log_level), d->cfg.batch_lines, d->cfg.batch_bytes,
	    d->cfg.flush_interval_ms, d->cfg.shutdown_timeout_ms);
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
	if (d->spool != NULL) {
		tv.tv_sec = d->cfg.spool_sync_interval_ms / 1000;
		tv.tv_usec = (d->cfg.spool_sync_interval_ms % 1000) * 1000;
		event_add(d->ev_spool, &tv);
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
	httpd_free(d->httpd);
	for (i = 0; i < 3; i++)
		event_free(d->ev_sig[i]);
	event_base_free(d->base);
	config_free(&d->cfg);
}

/*
 * The listen setting whose port matches a socket passed by systemd, parsed
 * into spec; false if none does.
 */
static bool
listen_for_fd(const struct config *cfg, int fd, struct listen_spec *spec)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char err[256], port[8];
	size_t i;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return false;
	snprintf(port, sizeof(port), "%u",
	    ntohs(ss.ss_family == AF_INET6
		    ? ((struct sockaddr_in6 *)&ss)->sin6_port
		    : ((struct sockaddr_in *)&ss)->sin_port));
	for (i = 0; i < cfg->nlisten; i++)
		if (config_parse_listen(
			cfg->listen[i], spec, err, sizeof(err)) == 0 &&
		    strcmp(spec->port, port) == 0)
			return true;
	return false;
}

/*
 * Sockets passed by systemd (logsinkd.socket) replace the listen setting;
 * a listen entry with the same port lends them its options.
 */
static void
open_listeners(struct daemon *d)
{
	struct listen_spec spec;
	char err[1024];
	int i, n, fd;
	size_t k;

	if ((n = sd_listen_fds(1)) < 0)
		fatalx("sd_listen_fds: %s", strerror(-n));
	for (i = 0; i < n; i++) {
		fd = SD_LISTEN_FDS_START + i;
		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			fatalx("socket %d from systemd is not a listening TCP "
			       "socket (ListenStream= in the .socket unit)",
			    fd);
		if (listeners_add_fd(d->ls, fd,
			listen_for_fd(&d->cfg, fd, &spec) ? &spec : NULL, err,
			sizeof(err)) == -1)
			fatalx("%s", err);
	}
	if (n > 0)
		return;
	for (k = 0; k < d->cfg.nlisten; k++)
		if (config_parse_listen(
			d->cfg.listen[k], &spec, err, sizeof(err)) == -1 ||
		    listeners_add(d->ls, &spec, err, sizeof(err)) == -1)
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
	struct listener_settings lset = { d->cfg.max_line_bytes,
		d->cfg.max_connections, d->cfg.max_connections_per_ip,
		d->cfg.idle_timeout_ms, d->cfg.partial_line_timeout_ms,
		d->cfg.tls_max_handshakes };
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
