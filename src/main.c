/*
 * logsinkd: command line, signals and the event loop; everything else
 * lives in the modules this file wires together.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "logsink/config.h"
#include "logsink/dbconn.h"
#include "logsink/listener.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/pgpool.h"
#include "logsink/queue.h"
#include "logsink/schema.h"

#define EXIT_USAGE 2
#define DRAIN_POLL_MS 20

enum action { RUN, INIT_DB, CHECK_CONFIG };

struct options {
	enum action action;
	const char *config_file;
	int argc;
	char **argv;
};

/* Owned by main(); the loop's callbacks reach it through their arg. */
struct daemon {
	struct config cfg;
	struct event_base *base;
	struct queue *q;
	struct pgpool *pool;
	struct listeners *ls;
	struct event *ev_kick, *ev_resume, *ev_stats, *ev_drain, *ev_deadline;
	struct event *ev_sig[3];
	bool stopping;
	int exit_code;
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
				fprintf(stderr, "logsinkd: %s needs a file\n",
				    a);
				return -1;
			}
			o->config_file = argv[i];
		} else if (strncmp(a, "--", 2) == 0) {
			/* A setting, checked by apply_args(); skip its value. */
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
apply_args(struct config *cfg, const struct options *o, char *err,
    size_t errlen)
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
load_config(struct config *cfg, const struct options *o)
{
	char err[1024];

	config_init(cfg);
	if ((o->config_file != NULL &&
		config_load_file(cfg, o->config_file, err, sizeof(err)) ==
		    -1) ||
	    apply_args(cfg, o, err, sizeof(err)) == -1 ||
	    config_finish(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "logsinkd: %s\n", err);
		return -1;
	}
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
		log_notice("schema for %s is in place on %s", cfg->table,
		    dc.target);
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

static void
stats_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	char line[1024];

	(void)fd;
	(void)what;
	metrics_format(line, sizeof(line), queue_lines(d->q),
	    queue_bytes(d->q));
	log_info("stats: %s db_connected=%d", line,
	    pgpool_connected(d->pool));
}

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (queue_lines(d->q) == 0) {
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
	log_errx("shutdown: shutdown-timeout (%d ms) reached with %llu lines "
		 "(%zu bytes) not stored in the database; they are lost",
	    d->cfg.shutdown_timeout_ms, (unsigned long long)queue_lines(d->q),
	    queue_bytes(d->q));
	d->exit_code = 1;
	event_base_loopexit(d->base, NULL);
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
		log_notice("SIGHUP: configuration reload is not supported "
			   "yet; restart to apply changes");
		return;
	}
	if (d->stopping) {
		log_notice("%s again: still flushing %llu lines",
		    strsignal((int)sig), (unsigned long long)queue_lines(d->q));
		return;
	}
	d->stopping = true;
	n = listeners_shutdown(d->ls);
	log_notice("%s: stopped listening, closed %zu connections; flushing "
		   "%llu queued lines (shutdown-timeout %d ms)",
	    strsignal((int)sig), n, (unsigned long long)queue_lines(d->q),
	    d->cfg.shutdown_timeout_ms);
	pgpool_drain(d->pool);
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
	d->ev_resume = must_event(event_new(d->base, -1, 0, resume_cb, d),
	    "resume");
	d->ev_stats = must_event(event_new(d->base, -1, EV_PERSIST, stats_cb,
				     d),
	    "stats");
	d->ev_drain = must_event(event_new(d->base, -1, EV_PERSIST, drain_cb,
				     d),
	    "drain");
	d->ev_deadline = must_event(evtimer_new(d->base, deadline_cb, d),
	    "deadline");
	if (d->cfg.stats_interval_ms > 0)
		event_add(d->ev_stats, &tv);
	for (i = 0; i < 3; i++) {
		d->ev_sig[i] = must_event(evsignal_new(d->base, sigs[i],
					      signal_cb, d),
		    "signal");
		event_add(d->ev_sig[i], NULL);
	}
	signal(SIGPIPE, SIG_IGN);
}

static void
teardown(struct daemon *d)
{
	int i;

	listeners_free(d->ls);
	pgpool_free(d->pool);
	queue_free(d->q);
	event_free(d->ev_kick);
	event_free(d->ev_resume);
	event_free(d->ev_stats);
	event_free(d->ev_drain);
	event_free(d->ev_deadline);
	for (i = 0; i < 3; i++)
		event_free(d->ev_sig[i]);
	event_base_free(d->base);
	config_free(&d->cfg);
}

static int
run(struct daemon *d)
{
	struct listener_settings lset = { d->cfg.max_line_bytes };
	struct pgpool_settings pset = { d->cfg.db, d->cfg.table,
		d->cfg.db_connections, d->cfg.flush_interval_ms,
		d->cfg.reconnect_min_ms, d->cfg.reconnect_max_ms };
	char err[1024];
	size_t i;

	if ((d->base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	d->q = queue_new(d->cfg.queue_bytes, d->cfg.queue_resume_percent,
	    (uint32_t)d->cfg.batch_lines, d->cfg.batch_bytes);
	if (d->q == NULL)
		fatalx("out of memory");
	queue_set_callbacks(d->q, on_queue_data, on_queue_space, d);
	if ((d->pool = pgpool_new(d->base, d->q, &pset, err, sizeof(err))) ==
	    NULL)
		fatalx("%s", err);
	if ((d->ls = listeners_new(d->base, d->q, &lset)) == NULL)
		fatalx("out of memory");
	for (i = 0; i < d->cfg.nlisten; i++)
		if (listeners_add(d->ls, d->cfg.listen[i], err, sizeof(err)) ==
		    -1)
			fatalx("%s", err);
	setup_events(d);
	log_notice("logsinkd %s started", LOGSINK_VERSION);
	pgpool_start(d->pool);
	if (event_base_dispatch(d->base) == -1)
		fatalx("event_base_dispatch failed");
	teardown(d);
	return d->exit_code;
}

int
main(int argc, char **argv)
{
	struct daemon d;
	struct options o;
	int rc;

	setvbuf(stderr, NULL, _IOLBF, 0);
	log_init();
	memset(&d, 0, sizeof(d));
	if (parse_args(argc, argv, &o) == -1 || load_config(&d.cfg, &o) == -1)
		return EXIT_USAGE;
	log_level = d.cfg.log_level;
	switch (o.action) {
	case CHECK_CONFIG:
		config_dump(&d.cfg, stdout);
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
