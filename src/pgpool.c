/*
 * pgpool: asynchronous libpq connections writing batches with COPY.
 *
 * Each connection is a state machine (enum pg_state, below) after the
 * libpq manual's "Asynchronous Command Processing" and "Functions
 * Associated with the COPY Command".  pg_dispatch() is its one loop:
 * handlers return the next event, PGE_NONE once the connection waits for
 * libevent, and never call pg_dispatch() themselves.  pgpool_kick() and
 * the libevent callbacks are its only callers.
 *
 * A batch is released from the queue only after its COPY has committed.
 * A connection failure gives it back to the queue head (at-least-once
 * delivery, never loss); rows the database refuses are isolated on the
 * same connection by bisection (poison.c), the last one dead-lettered.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "logsink/clock.h"
#include "logsink/copyenc.h"
#include "logsink/dbconn.h"
#include "logsink/fault.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/pgpool.h"
#include "logsink/poison.h"
#include "logsink/schema.h"

/*
 * Bytes handed to PQputCopyData at a time; CopyData need not align rows.
 * libpq copies each into its output buffer: 64 KiB and 256 KiB cost the
 * same, 1 MiB makes that buffer grow (+18 % instructions per line, lower
 * rates; docs/performance.md).
 */
#define COPY_CHUNK_BYTES    (256 * 1024)
#define WARN_INTERVAL_MS    10000
#define MAINTAIN_INTERVAL_S 3600

/*
 * A connection's states and their exits.  Every failure, and every
 * timeout of a state with a deadline (pg_states[].timeout), leads to
 * BACKOFF through pg_fail(): PQfinish, a batch in hand back to the queue
 * head.  Rows the database refuses are not a failure (AWAIT_RESULT).
 *
 * BACKOFF      reconnect delay over (or start-up) -> CONNECTING
 * CONNECTING   PQconnectPoll OK, schema check sent -> CHECKING
 * CHECKING     schema fits -> IDLE (a table that never fitted, nothing
 *              queued: the daemon exits, see pg_schema_missing())
 * IDLE         upkeep due -> MAINTAIN (its SQL not built: stays IDLE,
 *              upkeep retried later); a batch due -> COPY_START; server
 *              closed -> BACKOFF
 * COPY_START   PGRES_COPY_IN, header queued -> COPY_SEND
 * COPY_SEND    the range and the trailer queued, CopyDone -> COPY_END
 * COPY_END     all flushed -> AWAIT_RESULT
 * AWAIT_RESULT committed: next range -> COPY_START, batch done -> IDLE;
 *              rows refused: range split -> COPY_START, one row -> REJECT
 * MAINTAIN     upkeep's result in, good or bad -> IDLE
 * REJECT       row stored in <table>_rejected: next range -> COPY_START,
 *              batch done -> IDLE
 */
enum pg_state {
	PG_BACKOFF,
	PG_CONNECTING,
	PG_CHECKING,
	PG_IDLE,
	PG_COPY_START,
	PG_COPY_SEND,
	PG_COPY_END,
	PG_AWAIT_RESULT,
	PG_MAINTAIN,
	PG_REJECT,
};

/* What a connection's timer means in a state. */
enum pg_timeout {
	PGT_NONE,    /* no timer */
	PGT_RETRY,   /* the reconnect delay (pc->retry_ms), then CONNECTING */
	PGT_CONNECT, /* db-timeout for the whole attempt, from entry */
	PGT_DB,      /* db-timeout without progress: restarted at each wait */
	PGT_MAINT,   /* maintenance-timeout without progress, likewise */
};

/* What a state implies; the enum's order means nothing. */
struct pg_state_info {
	const char *name;
	enum pg_timeout timeout;
	bool connected; /* can take a batch or is writing one */
};

static const struct pg_state_info pg_states[] = {
	[PG_BACKOFF] = { "BACKOFF", PGT_RETRY, false },
	[PG_CONNECTING] = { "CONNECTING", PGT_CONNECT, false },
	[PG_CHECKING] = { "CHECKING", PGT_DB, false },
	[PG_IDLE] = { "IDLE", PGT_NONE, true },
	[PG_COPY_START] = { "COPY_START", PGT_DB, true },
	[PG_COPY_SEND] = { "COPY_SEND", PGT_DB, true },
	[PG_COPY_END] = { "COPY_END", PGT_DB, true },
	[PG_AWAIT_RESULT] = { "AWAIT_RESULT", PGT_DB, true },
	[PG_MAINTAIN] = { "MAINTAIN", PGT_MAINT, true },
	[PG_REJECT] = { "REJECT", PGT_DB, true },
};

#define PG_NSTATES ((int)(sizeof(pg_states) / sizeof(pg_states[0])))
_Static_assert(PG_NSTATES == PG_REJECT + 1, "pg_states[] lacks a state");
_Static_assert(PG_NSTATES <= PGPOOL_MAX_STATES, "raise PGPOOL_MAX_STATES");

enum pg_event {
	PGE_NONE, /* wait for libevent: pg_dispatch() returns */
	PGE_TIMER,
	PGE_READABLE,
	PGE_WRITABLE,
	PGE_WORK, /* pgpool_kick(), or a connection that became IDLE */
};

static const char *const pg_event_names[] = {
	"NONE",
	"TIMER",
	"READABLE",
	"WRITABLE",
	"WORK",
};

/*
 * One pooled connection; owned by its pool, freed by pgpool_free().  Its
 * two events are made once, in pgpool_new(): ev_io is re-pointed at
 * PQsocket() by pg_wait(), ev_timer is set by pg_set_state().
 */
struct pg_conn {
	struct pgpool *pool;
	int id;
	enum pg_state state; /* written only by pg_set_state() */
	PGconn *conn;
	struct event *ev_io;
	int io_fd; /* what ev_io is assigned to; -1: nothing */
	short io_what;
	struct event *ev_timer;
	bool retry_lost;          /* BACKOFF without a timer: kick retries */
	struct batch *batch;      /* taken from the queue, not yet committed */
	struct batch_range range; /* the rows of batch this COPY sends */
	size_t sent;              /* bytes of range queued in libpq */
	int64_t copy_start_us;
	int backoff_ms; /* the next reconnect delay, before jitter */
	int retry_ms;   /* this BACKOFF's delay */
	int timer_ms;   /* what ev_timer was last armed with */
	int64_t last_warn_ms;
	/* The command in flight: its worst result so far.  Kept here, not on
	 * the stack: its results may arrive over several read events. */
	ExecStatusType res_status;
	char res_sqlstate[6];
	char last_error[256];
};

/* Owned by main; freed by pgpool_free(). */
struct pgpool {
	struct event_base *base;
	struct queue *q;
	struct pgpool_settings set;
	struct dbconn dc;
	char *copy_sql;
	char *reject_sql;
	struct buf reject_raw;
	struct buf reject_subject; /* its tls_subject, NUL-terminated */
	struct buf reject_row;
	int64_t reject_warned_ms;
	char *check_sql;
	struct pg_conn *conns;
	struct event *ev_flush;
	int64_t flush_warned_ms;
	struct event *ev_kick; /* pgpool_kick() from the loop (pg_fail) */
	bool draining;
	bool ever_ready;
	bool contacted; /* the first connection attempt has ended */
	bool maint_due; /* partition upkeep should run on an idle connection */
	bool maint_running; /* a connection is in MAINTAIN (pg_set_state) */
	int maint_retry_ms; /* delay before upkeep whose SQL failed reruns */
	struct event *ev_maint;       /* hourly */
	struct event *ev_maint_retry; /* after maint_retry_ms */
	pgpool_cb on_contact;
	void *contact_arg;
};

static enum pg_event pg_fail(
    struct pg_conn *pc, const char *what, const char *msg);

/* The first connection attempt has ended, well or not: report it once. */
static void
pg_contacted(struct pgpool *pool)
{
	if (pool->contacted)
		return;
	pool->contacted = true;
	if (pool->on_contact != NULL)
		pool->on_contact(pool->contact_arg);
}

/* The length of the state's deadline, or 0 when it has none. */
static int
pg_timeout_ms(const struct pg_conn *pc)
{
	switch (pg_states[pc->state].timeout) {
	case PGT_NONE:
		break;
	case PGT_RETRY:
		return pc->retry_ms;
	case PGT_CONNECT:
	case PGT_DB:
		return pc->pool->set.db_timeout_ms;
	case PGT_MAINT:
		return pc->pool->set.maintenance_timeout_ms;
	}
	return 0;
}

/*
 * (Re)arms the timer for the current state, as pg_states[] says.  When
 * libevent cannot (evtimer_add allocates on growth), a state with a
 * deadline times out at once rather than wait forever without one; a
 * BACKOFF waits for the next pgpool_kick() instead of retrying in a loop.
 */
static void
pg_timer_arm(struct pg_conn *pc)
{
	int ms = pg_timeout_ms(pc);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	pc->timer_ms = ms;
	if (pg_states[pc->state].timeout == PGT_NONE ||
	    evtimer_add(pc->ev_timer, &tv) == 0)
		return;
	log_warn("pg%d: evtimer_add (%s)", pc->id, pg_states[pc->state].name);
	if (pc->state == PG_BACKOFF)
		pc->retry_lost = true;
	else
		event_active(pc->ev_timer, EV_TIMEOUT, 1);
}

/*
 * The one writer of pc->state.  The timer follows the state: whatever the
 * old state armed is cancelled, the new state's deadline is armed, so no
 * timer outlives the state it was set for.
 */
static void
pg_set_state(struct pg_conn *pc, enum pg_state state)
{
	assert((unsigned)state < (unsigned)PG_NSTATES);
	log_debug("pg%d: %s -> %s", pc->id, pg_states[pc->state].name,
	    pg_states[state].name);
	if (pc->state == PG_MAINTAIN)
		pc->pool->maint_running = false;
	pc->state = state;
	if (state == PG_MAINTAIN)
		pc->pool->maint_running = true;
	evtimer_del(pc->ev_timer);
	pc->retry_lost = false;
	pg_timer_arm(pc);
}

/* A new command: forget the results of the last one. */
static void
pg_begin_command(struct pg_conn *pc)
{
	pc->res_status = PGRES_COMMAND_OK;
	pc->res_sqlstate[0] = '\0';
}

static void pg_dispatch(struct pg_conn *pc, enum pg_event ev);

static void
io_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	pg_dispatch(arg, (what & EV_WRITE) ? PGE_WRITABLE : PGE_READABLE);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pg_dispatch(arg, PGE_TIMER);
}

/*
 * Waits (once) for the libpq socket to become ready for what.  PQsocket()
 * is read every time: libpq may change it during PQconnectPoll() (another
 * host or address).  ev_io is re-pointed only when the socket or what
 * changed.  A state that limits the time without progress restarts its
 * deadline here.  Returns PGE_NONE (after pg_fail() if libevent failed).
 */
static enum pg_event
pg_wait(struct pg_conn *pc, short what)
{
	int fd = PQsocket(pc->conn);

	if (fd < 0)
		return pg_fail(pc, "PQsocket", "no socket");
	if (fd != pc->io_fd || what != pc->io_what) {
		event_del(pc->ev_io);
		pc->io_fd = -1;
		if (event_assign(
			pc->ev_io, pc->pool->base, fd, what, io_cb, pc) == -1)
			return pg_fail(pc, "event_assign", "invalid event");
		pc->io_fd = fd;
		pc->io_what = what;
	}
	if (event_add(pc->ev_io, NULL) == -1)
		return pg_fail(pc, "event_add", strerror(errno));
	if (pg_states[pc->state].timeout == PGT_DB ||
	    pg_states[pc->state].timeout == PGT_MAINT)
		pg_timer_arm(pc);
	return PGE_NONE;
}

/* Drops the libpq connection; ev_io stays allocated for the next one. */
static void
pg_close(struct pg_conn *pc)
{
	event_del(pc->ev_io); /* before PQfinish closes its socket */
	pc->io_fd = -1;
	if (pc->conn != NULL) {
		PQfinish(pc->conn);
		pc->conn = NULL;
	}
}

static void
notice_cb(void *arg, const char *message)
{
	struct pg_conn *pc = arg;
	char msg[512];

	log_info(
	    "pg%d: server: %s", pc->id, dbconn_trim(msg, sizeof(msg), message));
}

/*
 * Starts a non-blocking connection attempt (PQconnectStartParams).  The
 * manual: before the first PQconnectPoll, behave as if it had returned
 * PGRES_POLLING_WRITING.
 */
static enum pg_event
pg_connect_start(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;

	pc->conn = PQconnectStartParams(pool->dc.keys, pool->dc.vals, 1);
	if (pc->conn == NULL)
		return pg_fail(pc, "connect", "out of memory");
	if (PQstatus(pc->conn) == CONNECTION_BAD)
		return pg_fail(pc, "connect", PQerrorMessage(pc->conn));
	PQsetNoticeProcessor(pc->conn, notice_cb, pc);
	pg_set_state(pc, PG_CONNECTING);
	return pg_wait(pc, EV_WRITE);
}

static enum pg_event
handle_connecting_io(struct pg_conn *pc)
{
	switch (PQconnectPoll(pc->conn)) {
	case PGRES_POLLING_READING:
		return pg_wait(pc, EV_READ);
	case PGRES_POLLING_WRITING:
		return pg_wait(pc, EV_WRITE);
	case PGRES_POLLING_OK:
		break;
	default:
		return pg_fail(pc, "connect", PQerrorMessage(pc->conn));
	}
	pg_begin_command(pc);
	if (PQsetnonblocking(pc->conn, 1) == -1 ||
	    !PQsendQuery(pc->conn, pc->pool->check_sql))
		return pg_fail(pc, "schema check", PQerrorMessage(pc->conn));
	pg_set_state(pc, PG_CHECKING);
	return pg_wait(pc, EV_READ | EV_WRITE);
}

/*
 * Sends what libpq has buffered, after reading what arrived if the socket
 * was readable (the libpq manual on non-blocking PQflush: while it returns
 * 1, wait for read or write readiness and consume input when readable).
 * Returns 1 while output remains, 0 when all is sent, -1 on failure.
 */
static int
pg_flush(struct pg_conn *pc, enum pg_event ev)
{
	if (ev == PGE_READABLE && !PQconsumeInput(pc->conn))
		return -1;
	return PQflush(pc->conn);
}

/*
 * Reads results until PQgetResult() returns NULL.  Returns 1 when done
 * (pc->res_status is the worst status seen, pc->res_sqlstate its code, and
 * its text is in pc->last_error), 0 when more input is needed (the caller
 * waits for EV_READ), -1 when the connection failed.
 */
static int
pg_collect(struct pg_conn *pc, char *first, size_t firstlen)
{
	PGresult *res;
	ExecStatusType st;
	const char *s;

	if (!PQconsumeInput(pc->conn))
		return -1;
	while (!PQisBusy(pc->conn)) {
		if ((res = PQgetResult(pc->conn)) == NULL)
			return 1;
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && first != NULL &&
		    PQntuples(res) > 0 && PQnfields(res) > 0)
			snprintf(first, firstlen, "%s", PQgetvalue(res, 0, 0));
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
		    pc->res_status != PGRES_FATAL_ERROR) {
			pc->res_status = st;
			s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			snprintf(pc->res_sqlstate, sizeof(pc->res_sqlstate),
			    "%s", s != NULL ? s : "?????");
			metrics_count_sqlstate(pc->res_sqlstate);
			s = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			dbconn_trim(pc->last_error, sizeof(pc->last_error),
			    s != NULL ? s : PQresultErrorMessage(res));
		}
		PQclear(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT)
			return 1; /* not expected here; treated as an error */
	}
	return 0;
}

/*
 * The I/O of a command that returns results (schema check, upkeep,
 * dead-letter insert): flush, then read.  Returns true once all results
 * are in (pc->res_status says how it went); false when the connection
 * waits for its socket or has failed (pg_fail() done): the caller's
 * handler then returns PGE_NONE.
 */
static bool
pg_command_io(struct pg_conn *pc, enum pg_event ev, const char *what,
    char *first, size_t firstlen)
{
	int r;

	if ((r = pg_flush(pc, ev)) == -1) {
		(void)pg_fail(pc, what, PQerrorMessage(pc->conn));
		return false;
	}
	if (r == 1) {
		(void)pg_wait(pc, EV_READ | EV_WRITE);
		return false;
	}
	if (PQisBusy(pc->conn) || (r = pg_collect(pc, first, firstlen)) == 0) {
		(void)pg_wait(pc, EV_READ);
		return false;
	}
	if (r == -1) {
		(void)pg_fail(pc, what, PQerrorMessage(pc->conn));
		return false;
	}
	return true;
}

/* The table is missing or lacks a column: nothing can be written. */
static void
pg_schema_missing(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;
	/* The schema check's own messages (SQLSTATE LS001) say what to do;
	 * PostgreSQL's (a missing table or column) get the advice added. */
	const char *hint = strstr(pc->last_error, "logsinkd") != NULL
	    ? ""
	    : "; create or upgrade it with logsinkd --init-db (same --db and "
	      "--table)";

	if (!pool->ever_ready && queue_lines(pool->q) == 0)
		fatalx("table %s cannot take rows: %s%s", pool->set.table,
		    pc->last_error, hint);
	log_errx("pg%d: table %s cannot take rows: %s%s; lines stay queued "
		 "and are retried",
	    pc->id, pool->set.table, pc->last_error, hint);
}

static enum pg_event
handle_checking_io(struct pg_conn *pc, enum pg_event ev)
{
	if (!pg_command_io(pc, ev, "schema check", NULL, 0))
		return PGE_NONE;
	if (pc->res_status != PGRES_COMMAND_OK) {
		if (strcmp(pc->res_sqlstate, "42P01") == 0 ||
		    strcmp(pc->res_sqlstate, "42703") == 0 ||
		    strcmp(pc->res_sqlstate, "3F000") == 0 ||
		    strcmp(pc->res_sqlstate, "LS001") == 0)
			pg_schema_missing(pc);
		return pg_fail(pc, "schema check", pc->last_error);
	}
	log_info("pg%d: connected to %s (server %d)", pc->id,
	    pc->pool->dc.target, PQserverVersion(pc->conn));
	pc->pool->ever_ready = true;
	pg_contacted(pc->pool);
	pc->backoff_ms = pc->pool->set.reconnect_min_ms;
	pc->last_error[0] = '\0';
	pg_set_state(pc, PG_IDLE);
	return PGE_WORK;
}

static bool
flush_due(const struct pgpool *pool)
{
	return pool->draining || queue_full(pool->q) ||
	    (queue_open_lines(pool->q) > 0 &&
		clock_mono_ms() - queue_open_since_ms(pool->q) >=
		    pool->set.flush_interval_ms);
}

/* Work an idle connection could take now. */
static bool
work_waiting(const struct pgpool *pool)
{
	return queue_has_sealed(pool->q) || flush_due(pool) ||
	    (pool->maint_due && !pool->maint_running);
}

/*
 * Arms the pool's flush timer for the open batch's deadline.  If libevent
 * cannot, the batch waits for the next pgpool_kick() (new lines, a
 * connection that turns idle, the hourly upkeep), which tries again.
 */
static void
arm_flush_timer(struct pgpool *pool)
{
	int64_t wait, now = clock_mono_ms();
	struct timeval tv;

	if (queue_open_lines(pool->q) == 0 ||
	    evtimer_pending(pool->ev_flush, NULL))
		return;
	wait = queue_open_since_ms(pool->q) + pool->set.flush_interval_ms - now;
	if (wait < 0)
		wait = 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	if (evtimer_add(pool->ev_flush, &tv) == 0)
		return;
	if (now - pool->flush_warned_ms >= WARN_INTERVAL_MS) {
		log_warn("flush timer: evtimer_add");
		pool->flush_warned_ms = now;
	}
}

/*
 * The upkeep SQL could not be built (out of memory): the upkeep is run
 * again after a delay that doubles from reconnect-min-ms up to
 * reconnect-max-ms, or at the next hourly run if even that timer fails.
 */
static void
pg_maintain_later(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;
	int ms = pool->maint_retry_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (evtimer_add(pool->ev_maint_retry, &tv) == -1) {
		log_warn("pg%d: partition upkeep: out of memory; evtimer_add; "
			 "retried within the hour",
		    pc->id);
		return;
	}
	log_warnx("pg%d: partition upkeep: out of memory; retried in %d ms",
	    pc->id, ms);
	pool->maint_retry_ms = ms > pool->set.reconnect_max_ms / 2
	    ? pool->set.reconnect_max_ms
	    : ms * 2;
}

/*
 * Partition upkeep (the schema's maintain function) on this connection,
 * which is IDLE.  If its SQL cannot be built the connection stays IDLE and
 * goes on with normal work (PGE_WORK); the upkeep is retried later.
 */
static enum pg_event
pg_maintain_start(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;
	char *sql;

	pool->maint_due = false;
	pg_begin_command(pc);
	if (fault_hit("maintain-sql-oom"))
		sql = NULL;
	else
		sql = schema_maintain_sql(pool->set.table,
		    pool->set.partitions_ahead, pool->set.retention_days);
	if (sql == NULL) {
		pg_maintain_later(pc);
		return PGE_WORK;
	}
	pool->maint_retry_ms = pool->set.reconnect_min_ms;
	if (!PQsendQuery(pc->conn, sql)) {
		free(sql);
		return pg_fail(
		    pc, "partition upkeep", PQerrorMessage(pc->conn));
	}
	free(sql);
	pg_set_state(pc, PG_MAINTAIN);
	return pg_wait(pc, EV_READ | EV_WRITE);
}

/* Upkeep errors are logged, not retried at once: rows still land in the
 * DEFAULT partition, and the next hourly run tries again. */
static enum pg_event
handle_maintain_io(struct pg_conn *pc, enum pg_event ev)
{
	char summary[512] = "";

	if (!pg_command_io(
		pc, ev, "partition upkeep", summary, sizeof(summary)))
		return PGE_NONE;
	if (pc->res_status != PGRES_COMMAND_OK)
		log_errx("pg%d: partition upkeep failed: SQLSTATE %s: %s; rows "
			 "go to the DEFAULT partition meanwhile; retried "
			 "hourly",
		    pc->id, pc->res_sqlstate, pc->last_error);
	else
		log_info("pg%d: partition upkeep: %s", pc->id, summary);
	pc->last_error[0] = '\0';
	pg_set_state(pc, PG_IDLE);
	return PGE_WORK;
}

/* Starts the COPY of the batch's current range (all of it, normally). */
static enum pg_event
pg_start_copy(struct pg_conn *pc)
{
	pg_begin_command(pc);
	poison_current(pc->batch, &pc->range);
	pc->sent = 0;
	pc->copy_start_us = clock_mono_us();
	if (!PQsendQuery(pc->conn, pc->pool->copy_sql))
		return pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
	pg_set_state(pc, PG_COPY_START);
	return pg_wait(pc, EV_READ | EV_WRITE);
}

/* Idle: run the upkeep if due, else take the next batch, if one is due,
 * and start its COPY. */
static enum pg_event
handle_idle_work(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;

	if (pool->maint_due && !pool->maint_running)
		return pg_maintain_start(pc);
	if ((pc->batch = queue_take(pool->q, flush_due(pool))) == NULL) {
		arm_flush_timer(pool);
		return pg_wait(pc, EV_READ); /* notice a server-side close */
	}
	return pg_start_copy(pc);
}

static enum pg_event
handle_idle_read(struct pg_conn *pc)
{
	PGresult *res;

	if (!PQconsumeInput(pc->conn))
		return pg_fail(pc, "idle", PQerrorMessage(pc->conn));
	while (!PQisBusy(pc->conn) && (res = PQgetResult(pc->conn)) != NULL)
		PQclear(res);
	return pg_wait(pc, EV_READ);
}

static enum pg_event
handle_copy_start_io(struct pg_conn *pc, enum pg_event ev)
{
	PGresult *res;
	int r;

	if ((r = pg_flush(pc, ev)) == -1)
		return pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
	if (r == 1)
		return pg_wait(pc, EV_READ | EV_WRITE);
	if (PQisBusy(pc->conn))
		return pg_wait(pc, EV_READ);
	res = PQgetResult(pc->conn);
	if (res != NULL && PQresultStatus(res) == PGRES_COPY_IN) {
		PQclear(res);
		/* Binary COPY: the header, then the range's rows. */
		if (PQputCopyData(
			pc->conn, COPYENC_HEADER, COPYENC_HEADER_LEN) != 1)
			return pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
		pg_set_state(pc, PG_COPY_SEND);
		return PGE_WRITABLE;
	}
	if (res != NULL) {
		dbconn_trim(pc->last_error, sizeof(pc->last_error),
		    PQresultErrorMessage(res));
		PQclear(res);
	}
	(void)pg_collect(pc, NULL, 0);
	return pg_fail(pc, "COPY",
	    pc->last_error[0] ? pc->last_error : PQerrorMessage(pc->conn));
}

/* Queues the batch in chunks, waiting for the socket when libpq's
 * buffer cannot be flushed. */
static enum pg_event
handle_copy_send_write(struct pg_conn *pc)
{
	struct batch *b = pc->batch;
	size_t n;
	int r;

	for (;;) {
		if ((r = PQflush(pc->conn)) == 1)
			return pg_wait(pc, EV_WRITE);
		if (r == -1)
			break;
		if (pc->sent == pc->range.len) {
			if (PQputCopyData(pc->conn, COPYENC_TRAILER,
				COPYENC_TRAILER_LEN) != 1 ||
			    PQputCopyEnd(pc->conn, NULL) != 1)
				break;
			pg_set_state(pc, PG_COPY_END);
			return PGE_WRITABLE;
		}
		n = pc->range.len - pc->sent;
		if (n > COPY_CHUNK_BYTES)
			n = COPY_CHUNK_BYTES;
		if (PQputCopyData(pc->conn,
			batch_rows(b) + pc->range.off + pc->sent, (int)n) != 1)
			break;
		pc->sent += n;
	}
	return pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
}

static enum pg_event
handle_copy_end_io(struct pg_conn *pc, enum pg_event ev)
{
	int r = pg_flush(pc, ev);

	if (r == -1)
		return pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
	if (r == 1)
		return pg_wait(pc, EV_READ | EV_WRITE);
	pg_set_state(pc, PG_AWAIT_RESULT);
	return PGE_READABLE;
}

/* The current range is stored: the batch is done, or the next range goes. */
static enum pg_event
pg_range_done(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;

	if (!poison_pop(pc->batch))
		return pg_start_copy(pc);
	log_debug(
	    "pg%d: batch of %u lines done", pc->id, batch_lines(pc->batch));
	queue_done(pool->q, pc->batch);
	pc->batch = NULL;
	pg_set_state(pc, PG_IDLE);
	return PGE_WORK;
}

static enum pg_event pg_reject_start(struct pg_conn *pc, const char *sqlstate);

/*
 * The rows themselves were refused: split the range, or, for one row,
 * put it in the dead-letter table.  The connection stays up.
 */
static enum pg_event
pg_data_error(struct pg_conn *pc, const char *sqlstate)
{
	if (pc->range.lines == batch_lines(pc->batch) &&
	    !batch_is_split(pc->batch))
		log_warnx("pg%d: COPY of %u lines refused (SQLSTATE %s: %s); "
			  "isolating the rejected rows",
		    pc->id, pc->range.lines, sqlstate, pc->last_error);
	if (pc->range.lines > 1) {
		if (poison_split(pc->batch) == -1)
			return pg_fail(
			    pc, "COPY", "out of memory splitting a batch");
		return pg_start_copy(pc);
	}
	return pg_reject_start(pc, sqlstate);
}

static enum pg_event
handle_await_result_read(struct pg_conn *pc)
{
	int r;

	if ((r = pg_collect(pc, NULL, 0)) == 0)
		return pg_wait(pc, EV_READ);
	if (r == -1)
		return pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
	if (pc->res_status != PGRES_COMMAND_OK) {
		if (poison_is_data_error(pc->res_sqlstate))
			return pg_data_error(pc, pc->res_sqlstate);
		log_errx("pg%d: COPY of %u lines failed: SQLSTATE %s: %s",
		    pc->id, pc->range.lines, pc->res_sqlstate, pc->last_error);
		return pg_fail(pc, "COPY", pc->last_error);
	}
	metrics.lines_committed += pc->range.lines;
	metrics.copy_batches++;
	metrics_observe_batch(pc->range.lines,
	    (double)(clock_mono_us() - pc->copy_start_us) / 1e6);
	log_debug("pg%d: committed %u lines", pc->id, pc->range.lines);
	return pg_range_done(pc);
}

/* Sends the one-row range to the dead-letter table, with why it failed. */
static enum pg_event
pg_reject_start(struct pg_conn *pc, const char *sqlstate)
{
	struct pgpool *pool = pc->pool;
	const char *row = batch_rows(pc->batch) + pc->range.off;
	char received_at[64], peer[128], state[6], error[256];
	const char *values[7];
	int lengths[7] = { 0 }, formats[7] = { 0 };
	bool has_subject;

	snprintf(state, sizeof(state), "%s", sqlstate);
	snprintf(error, sizeof(error), "%s", pc->last_error);
	if (poison_row_fields(row, pc->range.len, received_at,
		sizeof(received_at), peer, sizeof(peer), &pool->reject_raw,
		&pool->reject_row, &pool->reject_subject, &has_subject) == -1)
		return pg_fail(
		    pc, "dead-letter", "cannot decode the rejected row");
	values[0] = received_at;
	values[1] = peer[0] != '\0' ? peer : NULL;
	values[2] = pool->reject_raw.data;
	lengths[2] = (int)pool->reject_raw.len;
	formats[2] = 1;                    /* bytea, binary */
	values[3] = pool->reject_row.data; /* COPY text, NUL-terminated */
	values[4] = state;
	values[5] = error;
	values[6] = has_subject ? pool->reject_subject.data : NULL;
	pg_begin_command(pc);
	/* The row text is valid UTF-8 without NUL: copyenc made it so. */
	pool->reject_raw.data[pool->reject_raw.len] = '\0';
	if (!PQsendQueryParams(pc->conn, pool->reject_sql, 7, NULL, values,
		lengths, formats, 0))
		return pg_fail(pc, "dead-letter", PQerrorMessage(pc->conn));
	pg_set_state(pc, PG_REJECT);
	return pg_wait(pc, EV_READ | EV_WRITE);
}

static enum pg_event
handle_reject_io(struct pg_conn *pc, enum pg_event ev)
{
	struct pgpool *pool = pc->pool;
	int64_t now;

	if (!pg_command_io(pc, ev, "dead-letter", NULL, 0))
		return PGE_NONE;
	if (pc->res_status != PGRES_COMMAND_OK) {
		log_errx("pg%d: could not store a rejected row in %s_rejected "
			 "(%s); its batch is retried later (run logsinkd "
			 "--init-db if the table is missing)",
		    pc->id, pool->set.table, pc->last_error);
		return pg_fail(pc, "dead-letter", pc->last_error);
	}
	metrics.lines_rejected++;
	now = clock_mono_ms();
	if (now - pool->reject_warned_ms >= WARN_INTERVAL_MS) {
		log_warnx("pg%d: a row the database refused is in %s_rejected "
			  "(%llu so far; later ones within 10 s are only "
			  "counted)",
		    pc->id, pool->set.table,
		    (unsigned long long)metrics.lines_rejected);
		pool->reject_warned_ms = now;
	}
	return pg_range_done(pc);
}

/* Full jitter on the upper half: delay in [backoff/2, backoff]. */
static int
jitter(int ms)
{
	return ms / 2 + (int)(arc4random_uniform((uint32_t)(ms / 2 + 1)));
}

/*
 * Something failed: give the batch back (at the head of the queue, so
 * order is kept as far as possible), drop the connection and retry after
 * a doubling delay.  Another connection may take the batch: the pool is
 * kicked from the loop, not from here (no dispatch inside a dispatch).
 */
static enum pg_event
pg_fail(struct pg_conn *pc, const char *what, const char *msg)
{
	struct pgpool *pool = pc->pool;
	int64_t now = clock_mono_ms();
	char text[256];

	dbconn_trim(text, sizeof(text), msg);
	if (strcmp(text, pc->last_error) != 0 ||
	    now - pc->last_warn_ms >= WARN_INTERVAL_MS) {
		log_warnx("pg%d: %s failed (%s): %s; retrying", pc->id, what,
		    pool->dc.target, text);
		pc->last_warn_ms = now;
	}
	snprintf(pc->last_error, sizeof(pc->last_error), "%s", text);
	if (pc->batch != NULL) {
		metrics.copy_failures++;
		queue_return(pool->q, pc->batch);
		pc->batch = NULL;
		event_active(pool->ev_kick, EV_TIMEOUT, 0);
	}
	pg_close(pc);
	pg_contacted(pool);
	metrics.db_reconnects++;
	pc->retry_ms = jitter(pc->backoff_ms);
	pc->backoff_ms = pc->backoff_ms > pool->set.reconnect_max_ms / 2
	    ? pool->set.reconnect_max_ms
	    : pc->backoff_ms * 2;
	pg_set_state(pc, PG_BACKOFF);
	return PGE_NONE;
}

/* A timer fired in a state with a deadline: the same for every state. */
static enum pg_event
pg_timed_out(struct pg_conn *pc)
{
	const struct pg_state_info *si = &pg_states[pc->state];
	const char *key =
	    si->timeout == PGT_MAINT ? "maintenance-timeout" : "db-timeout";

	log_warnx("pg%d: no progress in %s for %d ms (%s): dropping the "
		  "connection",
	    pc->id, si->name, pc->timer_ms, key);
	return pg_fail(pc,
	    si->timeout == PGT_CONNECT ? "connect" : "database command", key);
}

/* Only for pairs no code path can produce. */
static void __attribute__((noreturn))
pg_bad_event(struct pg_conn *pc, enum pg_event ev)
{
	fatalx("pg%d: event %s in state %s", pc->id, pg_event_names[ev],
	    pg_states[pc->state].name);
}

/*
 * One step of the machine: the handler for this event in this state,
 * which returns the next event.  The timer is set by pg_set_state() for
 * the state it fires in (never an earlier one), and ev_io waits only for
 * what the current state asked: READABLE in COPY_SEND (EV_WRITE only),
 * WRITABLE in IDLE or AWAIT_RESULT (EV_READ only), TIMER in IDLE and
 * WORK outside IDLE and BACKOFF cannot happen.
 */
static enum pg_event
pg_step(struct pg_conn *pc, enum pg_event ev)
{
	bool io = ev == PGE_READABLE || ev == PGE_WRITABLE;
	enum pg_timeout t = pg_states[pc->state].timeout;

	if (ev == PGE_TIMER && t != PGT_NONE && t != PGT_RETRY)
		return pg_timed_out(pc);
	switch (pc->state) {
	case PG_BACKOFF:
		/* WORK: pgpool_kick(), when the retry timer was lost. */
		if (ev == PGE_TIMER || ev == PGE_WORK)
			return pg_connect_start(pc);
		break;
	case PG_CONNECTING:
		if (io)
			return handle_connecting_io(pc);
		break;
	case PG_CHECKING:
		if (io)
			return handle_checking_io(pc, ev);
		break;
	case PG_IDLE:
		if (ev == PGE_WORK)
			return handle_idle_work(pc);
		if (ev == PGE_READABLE)
			return handle_idle_read(pc);
		break;
	case PG_COPY_START:
		if (io)
			return handle_copy_start_io(pc, ev);
		break;
	case PG_COPY_SEND:
		if (ev == PGE_WRITABLE)
			return handle_copy_send_write(pc);
		break;
	case PG_COPY_END:
		if (io)
			return handle_copy_end_io(pc, ev);
		break;
	case PG_AWAIT_RESULT:
		if (ev == PGE_READABLE)
			return handle_await_result_read(pc);
		break;
	case PG_MAINTAIN:
		if (io)
			return handle_maintain_io(pc, ev);
		break;
	case PG_REJECT:
		if (io)
			return handle_reject_io(pc, ev);
		break;
	}
	pg_bad_event(pc, ev);
}

/*
 * The connection's machine (memcached's drive_machine): steps until a
 * handler says the connection waits for libevent.  Entered only from the
 * libevent callbacks and pgpool_kick(); never from a handler.
 */
static void
pg_dispatch(struct pg_conn *pc, enum pg_event ev)
{
	while (ev != PGE_NONE) {
		log_debug("pg%d: %s in %s", pc->id, pg_event_names[ev],
		    pg_states[pc->state].name);
		ev = pg_step(pc, ev);
	}
}

/* The hourly upkeep, and its retry after its SQL could not be built. */
static void
maint_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgpool *pool = arg;

	(void)fd;
	(void)what;
	pool->maint_due = true;
	pgpool_kick(pool);
}

/* The flush deadline, or a connection failed with a batch (pg_fail). */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pgpool_kick(arg);
}

/*
 * Offers waiting work to idle connections, and a reconnect to those whose
 * retry timer could not be armed.  The flush timer is armed only while a
 * connection is idle: with every connection busy or down, a due batch
 * simply waits for the next one to become idle.
 */
void
pgpool_kick(struct pgpool *pool)
{
	struct pg_conn *pc;
	bool idle = false;
	int i;

	for (i = 0; i < pool->set.connections; i++) {
		pc = &pool->conns[i];
		if (pc->retry_lost) {
			pg_dispatch(pc, PGE_WORK);
		} else if (pc->state == PG_IDLE) {
			idle = true;
			if (work_waiting(pool))
				pg_dispatch(pc, PGE_WORK);
		}
	}
	if (idle)
		arm_flush_timer(pool);
}

/* One connection, at start-up: -1 when its events cannot be made. */
static int
pg_conn_init(struct pgpool *pool, struct pg_conn *pc, int id)
{
	pc->pool = pool;
	pc->id = id;
	pc->state = PG_BACKOFF;
	pc->io_fd = -1;
	pc->backoff_ms = pool->set.reconnect_min_ms;
	pc->ev_timer = evtimer_new(pool->base, timer_cb, pc);
	pc->ev_io = event_new(pool->base, -1, 0, io_cb, pc);
	return pc->ev_timer != NULL && pc->ev_io != NULL ? 0 : -1;
}

struct pgpool *
pgpool_new(struct event_base *base, struct queue *q,
    const struct pgpool_settings *set, char *err, size_t errlen)
{
	struct pgpool *pool;
	int i;

	if ((pool = calloc(1, sizeof(*pool))) == NULL ||
	    (pool->conns = calloc(
		 (size_t)set->connections, sizeof(*pool->conns))) == NULL) {
		free(pool);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pool->base = base;
	pool->q = q;
	pool->set = *set;
	if (dbconn_init(&pool->dc, set->conninfo, err, errlen) == -1) {
		pgpool_free(pool);
		return NULL;
	}
	dbconn_set_timeouts(&pool->dc, set->db_timeout_ms);
	pool->copy_sql = schema_copy_sql(set->table);
	if (asprintf(&pool->reject_sql,
		"INSERT INTO %s_rejected (received_at, peer, raw, copy_row, "
		"sqlstate, error, tls_subject) VALUES ($1, $2, $3, $4, $5, "
		"$6, $7)",
		set->table) == -1)
		pool->reject_sql = NULL;
	pool->check_sql = schema_check_sql(set->table);
	pool->ev_flush = evtimer_new(base, kick_cb, pool);
	pool->ev_kick = event_new(base, -1, 0, kick_cb, pool);
	pool->ev_maint = event_new(base, -1, EV_PERSIST, maint_cb, pool);
	pool->ev_maint_retry = evtimer_new(base, maint_cb, pool);
	pool->maint_due = true;
	pool->maint_retry_ms = set->reconnect_min_ms;
	if (pool->copy_sql == NULL || pool->check_sql == NULL ||
	    pool->reject_sql == NULL || pool->ev_flush == NULL ||
	    pool->ev_kick == NULL || pool->ev_maint == NULL ||
	    pool->ev_maint_retry == NULL)
		goto fail;
	for (i = 0; i < set->connections; i++)
		if (pg_conn_init(pool, &pool->conns[i], i + 1) == -1)
			goto fail;
	return pool;
fail:
	pgpool_free(pool);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

static void
event_free_opt(struct event *ev)
{
	if (ev != NULL)
		event_free(ev);
}

void
pgpool_free(struct pgpool *pool)
{
	struct pg_conn *pc;
	int i;

	if (pool == NULL)
		return;
	for (i = 0; pool->conns != NULL && i < pool->set.connections; i++) {
		pc = &pool->conns[i];
		if (pc->ev_io != NULL)
			pg_close(pc);
		event_free_opt(pc->ev_io);
		event_free_opt(pc->ev_timer);
		if (pc->batch != NULL)
			queue_return(pool->q, pc->batch);
	}
	event_free_opt(pool->ev_flush);
	event_free_opt(pool->ev_kick);
	event_free_opt(pool->ev_maint);
	event_free_opt(pool->ev_maint_retry);
	free(pool->conns);
	free(pool->copy_sql);
	free(pool->reject_sql);
	buf_free(&pool->reject_raw);
	buf_free(&pool->reject_subject);
	buf_free(&pool->reject_row);
	free(pool->check_sql);
	free(pool);
}

/*
 * Start-up: each connection leaves BACKOFF at once (a delay of 0 ms), so
 * the first attempts start from the loop like every later one.
 */
void
pgpool_start(struct pgpool *pool)
{
	struct timeval hour = { MAINTAIN_INTERVAL_S, 0 };
	struct pg_conn *pc;
	int i;

	log_info("writing to %s, table %s, %d connection(s)", pool->dc.target,
	    pool->set.table, pool->set.connections);
	if (event_add(pool->ev_maint, &hour) == -1)
		fatalx("hourly partition upkeep: event_add failed");
	for (i = 0; i < pool->set.connections; i++) {
		pc = &pool->conns[i];
		pc->retry_ms = 0;
		pg_set_state(pc, PG_BACKOFF);
	}
}

void
pgpool_on_contact(struct pgpool *pool, pgpool_cb cb, void *arg)
{
	pool->on_contact = cb;
	pool->contact_arg = arg;
}

void
pgpool_drain(struct pgpool *pool)
{
	pool->draining = true;
	pgpool_kick(pool);
}

void
pgpool_set_flush_interval(struct pgpool *pool, int ms)
{
	pool->set.flush_interval_ms = ms;
}

void
pgpool_set_timeouts(
    struct pgpool *pool, int db_timeout_ms, int maintenance_timeout_ms)
{
	pool->set.db_timeout_ms = db_timeout_ms;
	pool->set.maintenance_timeout_ms = maintenance_timeout_ms;
	/* dc.vals points at this text: the next PQconnectStartParams uses
	 * it, unless the conninfo set its own tcp_user_timeout. */
	snprintf(pool->dc.user_timeout, sizeof(pool->dc.user_timeout), "%d",
	    db_timeout_ms);
}

void
pgpool_set_reconnect(struct pgpool *pool, int min_ms, int max_ms)
{
	int i;

	pool->set.reconnect_min_ms = min_ms;
	pool->set.reconnect_max_ms = max_ms;
	for (i = 0; i < pool->set.connections; i++) {
		if (pool->conns[i].backoff_ms < min_ms)
			pool->conns[i].backoff_ms = min_ms;
		if (pool->conns[i].backoff_ms > max_ms)
			pool->conns[i].backoff_ms = max_ms;
	}
	if (pool->maint_retry_ms < min_ms)
		pool->maint_retry_ms = min_ms;
	if (pool->maint_retry_ms > max_ms)
		pool->maint_retry_ms = max_ms;
}

void
pgpool_set_partitions(struct pgpool *pool, int days_ahead, int retention_days)
{
	pool->set.partitions_ahead = days_ahead;
	pool->set.retention_days = retention_days;
	pool->maint_due = true;
	pgpool_kick(pool);
}

const char *const *
pgpool_state_names(int *nstates)
{
	static const char *names[PG_NSTATES];
	int i;

	for (i = 0; i < PG_NSTATES; i++)
		names[i] = pg_states[i].name;
	*nstates = PG_NSTATES;
	return names;
}

void
pgpool_state_counts(const struct pgpool *pool, int *counts)
{
	int i;

	memset(counts, 0, (size_t)PG_NSTATES * sizeof(*counts));
	for (i = 0; i < pool->set.connections; i++)
		counts[pool->conns[i].state]++;
}

int
pgpool_connected(const struct pgpool *pool)
{
	int i, n = 0;

	for (i = 0; i < pool->set.connections; i++)
		if (pg_states[pool->conns[i].state].connected)
			n++;
	return n;
}

const char *
pgpool_target(const struct pgpool *pool)
{
	return pool->dc.target;
}
