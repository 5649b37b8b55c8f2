/*
 * pgpool: asynchronous libpq connections writing batches with COPY.
 *
 * Each connection runs this machine (libpq manual, "Asynchronous Command
 * Processing" and "Functions Associated with the COPY Command"):
 *
 *   BACKOFF --timer--> CONNECTING --PQconnectPoll OK--> CHECKING
 *   CHECKING --schema query OK--> IDLE --batch--> COPY_START
 *   COPY_START --PGRES_COPY_IN--> COPY_SEND --all queued--> COPY_END
 *   COPY_END --flushed--> AWAIT_RESULT --COMMAND_OK--> IDLE
 *   any failure: the batch goes back to the queue head, PQfinish, BACKOFF.
 *
 * A batch is released from the queue only after its COPY has committed,
 * so a failure anywhere means at-least-once delivery, never loss.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "logsink/clock.h"
#include "logsink/copyenc.h"
#include "logsink/dbconn.h"
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

static const char *const pg_state_names[] = {
	"BACKOFF",
	"CONNECTING",
	"CHECKING",
	"IDLE",
	"COPY_START",
	"COPY_SEND",
	"COPY_END",
	"AWAIT_RESULT",
	"MAINTAIN",
	"REJECT",
};

enum pg_event {
	PGE_TIMER,
	PGE_READABLE,
	PGE_WRITABLE,
	PGE_WORK,
};

static const char *const pg_event_names[] = {
	"TIMER",
	"READABLE",
	"WRITABLE",
	"WORK",
};

/* One pooled connection; owned by its pool, freed by pgpool_free(). */
struct pg_conn {
	struct pgpool *pool;
	int id;
	enum pg_state state;
	PGconn *conn;
	struct event *ev_io;
	int io_fd;
	short io_what;
	struct event *ev_timer;
	struct batch *batch;      /* taken from the queue, not yet committed */
	struct batch_range range; /* the rows of batch this COPY sends */
	size_t sent;              /* bytes of range queued in libpq */
	int64_t copy_start_us;
	int backoff_ms;
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
	bool draining;
	bool ever_ready;
	bool contacted; /* the first connection attempt has ended */
	bool maint_due; /* partition upkeep should run on an idle connection */
	bool maint_running;
	struct event *ev_maint;
	pgpool_cb on_contact;
	void *contact_arg;
};

static void pg_dispatch(struct pg_conn *pc, enum pg_event ev);
static void pg_maintain_start(struct pg_conn *pc);
static void pg_timer(struct pg_conn *pc, int ms);
static void pg_start_copy(struct pg_conn *pc);
static void pg_reject_start(struct pg_conn *pc, const char *sqlstate);

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
static void pg_fail(struct pg_conn *pc, const char *what, const char *msg);

static void
pg_set_state(struct pg_conn *pc, enum pg_state state)
{
	log_debug("pg%d: %s -> %s", pc->id, pg_state_names[pc->state],
	    pg_state_names[state]);
	pc->state = state;
}

/* A new command: forget the results of the last one. */
static void
pg_begin_command(struct pg_conn *pc)
{
	pc->res_status = PGRES_COMMAND_OK;
	pc->res_sqlstate[0] = '\0';
}

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

/* Waits (once) for the libpq socket to become ready for what. */
static void
pg_wait(struct pg_conn *pc, short what)
{
	int fd = PQsocket(pc->conn);

	if (pc->ev_io != NULL && (pc->io_fd != fd || pc->io_what != what)) {
		event_free(pc->ev_io);
		pc->ev_io = NULL;
	}
	if (pc->ev_io == NULL) {
		pc->ev_io = event_new(pc->pool->base, fd, what, io_cb, pc);
		if (pc->ev_io == NULL)
			fatalx("pg%d: event_new failed", pc->id);
		pc->io_fd = fd;
		pc->io_what = what;
	}
	if (event_add(pc->ev_io, NULL) == -1)
		fatalx("pg%d: event_add failed", pc->id);
	/* A command that makes no progress for db-timeout has failed (a
	 * frozen or unreachable server); partition upkeep may take longer. */
	if (pc->state == PG_CHECKING || pc->state > PG_IDLE)
		pg_timer(pc,
		    pc->state == PG_MAINTAIN
			? pc->pool->set.maintenance_timeout_ms
			: pc->pool->set.db_timeout_ms);
	else if (pc->state == PG_IDLE)
		evtimer_del(pc->ev_timer);
}

static void
pg_timer(struct pg_conn *pc, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (evtimer_add(pc->ev_timer, &tv) == -1)
		fatalx("pg%d: evtimer_add failed", pc->id);
}

static void
pg_close(struct pg_conn *pc)
{
	if (pc->ev_io != NULL) {
		event_free(pc->ev_io);
		pc->ev_io = NULL;
	}
	evtimer_del(pc->ev_timer);
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

/* Starts a non-blocking connection attempt (PQconnectStartParams). */
static void
pg_connect_start(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;

	pc->conn = PQconnectStartParams(pool->dc.keys, pool->dc.vals, 1);
	if (pc->conn == NULL)
		fatalx("pg%d: PQconnectStartParams: out of memory", pc->id);
	if (PQstatus(pc->conn) == CONNECTION_BAD) {
		pg_fail(pc, "connect", PQerrorMessage(pc->conn));
		return;
	}
	PQsetNoticeProcessor(pc->conn, notice_cb, pc);
	pg_set_state(pc, PG_CONNECTING);
	pg_timer(pc, pc->pool->set.db_timeout_ms);
	pg_wait(pc, EV_WRITE);
}

static void
handle_connecting_io(struct pg_conn *pc)
{
	switch (PQconnectPoll(pc->conn)) {
	case PGRES_POLLING_READING:
		pg_wait(pc, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		pg_wait(pc, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		break;
	default:
		pg_fail(pc, "connect", PQerrorMessage(pc->conn));
		return;
	}
	evtimer_del(pc->ev_timer);
	pg_begin_command(pc);
	if (PQsetnonblocking(pc->conn, 1) == -1 ||
	    !PQsendQuery(pc->conn, pc->pool->check_sql)) {
		pg_fail(pc, "schema check", PQerrorMessage(pc->conn));
		return;
	}
	pg_set_state(pc, PG_CHECKING);
	pg_wait(pc, EV_READ | EV_WRITE);
}

/*
 * Sends what libpq has buffered.  Returns 1 while output remains (the
 * caller's state waits for read or write readiness, per the libpq manual's
 * advice for non-blocking PQflush), 0 when all is sent, -1 on failure.
 */
static int
pg_flush(struct pg_conn *pc, enum pg_event ev)
{
	int r;

	if (ev == PGE_READABLE && !PQconsumeInput(pc->conn))
		return -1;
	if ((r = PQflush(pc->conn)) == 1)
		pg_wait(pc, EV_READ | EV_WRITE);
	return r;
}

/*
 * Reads results until PQgetResult() returns NULL.  Returns 1 when done
 * (pc->res_status is the worst status seen, pc->res_sqlstate its code, and
 * its text is in pc->last_error),
 * 0 when more input is needed, -1 when the connection failed.
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
	pg_wait(pc, EV_READ);
	return 0;
}

/*
 * The I/O of a command that returns results (schema check, upkeep,
 * dead-letter insert): flush, then read.  Returns 1 once all results are
 * in (pc->res_status says how it went), 0 while waiting, -1 when the
 * connection failed (already handled: pg_fail()).
 */
static int
pg_command_io(struct pg_conn *pc, enum pg_event ev, const char *what,
    char *first, size_t firstlen)
{
	int r;

	if ((r = pg_flush(pc, ev)) == -1) {
		pg_fail(pc, what, PQerrorMessage(pc->conn));
		return -1;
	}
	if (PQisBusy(pc->conn)) {
		if (r == 0)
			pg_wait(pc, EV_READ);
		return 0;
	}
	if ((r = pg_collect(pc, first, firstlen)) == -1)
		pg_fail(pc, what, PQerrorMessage(pc->conn));
	return r;
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

static void
handle_checking_io(struct pg_conn *pc, enum pg_event ev)
{
	if (pg_command_io(pc, ev, "schema check", NULL, 0) != 1)
		return;
	if (pc->res_status != PGRES_COMMAND_OK) {
		if (strcmp(pc->res_sqlstate, "42P01") == 0 ||
		    strcmp(pc->res_sqlstate, "42703") == 0 ||
		    strcmp(pc->res_sqlstate, "3F000") == 0 ||
		    strcmp(pc->res_sqlstate, "LS001") == 0)
			pg_schema_missing(pc);
		pg_fail(pc, "schema check", pc->last_error);
		return;
	}
	log_info("pg%d: connected to %s (server %d)", pc->id,
	    pc->pool->dc.target, PQserverVersion(pc->conn));
	pc->pool->ever_ready = true;
	pg_contacted(pc->pool);
	pc->backoff_ms = pc->pool->set.reconnect_min_ms;
	pc->last_error[0] = '\0';
	pg_set_state(pc, PG_IDLE);
	pg_dispatch(pc, PGE_WORK);
}

static bool
flush_due(const struct pgpool *pool)
{
	return pool->draining || queue_full(pool->q) ||
	    (queue_open_lines(pool->q) > 0 &&
		clock_mono_ms() - queue_open_since_ms(pool->q) >=
		    pool->set.flush_interval_ms);
}

/* Arms the pool's flush timer for the open batch's deadline. */
static void
arm_flush_timer(struct pgpool *pool)
{
	int64_t wait;
	struct timeval tv;

	if (queue_open_lines(pool->q) == 0 ||
	    evtimer_pending(pool->ev_flush, NULL))
		return;
	wait = queue_open_since_ms(pool->q) + pool->set.flush_interval_ms -
	    clock_mono_ms();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	if (evtimer_add(pool->ev_flush, &tv) == -1)
		fatalx("flush timer: evtimer_add failed");
}

/* Partition upkeep (the schema's maintain function) on this connection. */
static void
pg_maintain_start(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;
	char *sql;

	pool->maint_due = false;
	pg_begin_command(pc);
	sql = schema_maintain_sql(pool->set.table, pool->set.partitions_ahead,
	    pool->set.retention_days);
	if (sql == NULL) {
		log_warnx("pg%d: partition upkeep: out of memory", pc->id);
		return;
	}
	if (!PQsendQuery(pc->conn, sql)) {
		free(sql);
		pg_fail(pc, "partition upkeep", PQerrorMessage(pc->conn));
		return;
	}
	free(sql);
	pool->maint_running = true;
	pg_set_state(pc, PG_MAINTAIN);
	pg_wait(pc, EV_READ | EV_WRITE);
}

/* Upkeep errors are logged, not retried at once: rows still land in the
 * DEFAULT partition, and the next hourly run tries again. */
static void
handle_maintain_io(struct pg_conn *pc, enum pg_event ev)
{
	char summary[512] = "";
	int r;

	r = pg_command_io(pc, ev, "partition upkeep", summary, sizeof(summary));
	if (r == 0)
		return;
	pc->pool->maint_running = false;
	if (r == -1)
		return;
	if (pc->res_status != PGRES_COMMAND_OK)
		log_errx("pg%d: partition upkeep failed: SQLSTATE %s: %s; rows "
			 "go to the DEFAULT partition meanwhile; retried "
			 "hourly",
		    pc->id, pc->res_sqlstate, pc->last_error);
	else
		log_info("pg%d: partition upkeep: %s", pc->id, summary);
	pc->last_error[0] = '\0';
	pg_set_state(pc, PG_IDLE);
	pg_dispatch(pc, PGE_WORK);
}

/* Idle: take the next batch, if one is due, and start its COPY. */
static void
handle_idle_work(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;

	if (pool->maint_due && !pool->maint_running) {
		pg_maintain_start(pc);
		return;
	}
	if ((pc->batch = queue_take(pool->q, flush_due(pool))) == NULL) {
		arm_flush_timer(pool);
		pg_wait(pc, EV_READ); /* notice a server-side close */
		return;
	}
	pg_start_copy(pc);
}

/* Starts the COPY of the batch's current range (all of it, normally). */
static void
pg_start_copy(struct pg_conn *pc)
{
	pg_begin_command(pc);
	poison_current(pc->batch, &pc->range);
	pc->sent = 0;
	pc->copy_start_us = clock_mono_us();
	if (!PQsendQuery(pc->conn, pc->pool->copy_sql)) {
		pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
		return;
	}
	pg_set_state(pc, PG_COPY_START);
	pg_wait(pc, EV_READ | EV_WRITE);
}

static void
handle_idle_read(struct pg_conn *pc)
{
	PGresult *res;

	if (!PQconsumeInput(pc->conn)) {
		pg_fail(pc, "idle", PQerrorMessage(pc->conn));
		return;
	}
	while (!PQisBusy(pc->conn) && (res = PQgetResult(pc->conn)) != NULL)
		PQclear(res);
	pg_wait(pc, EV_READ);
}

static void
handle_copy_start_io(struct pg_conn *pc, enum pg_event ev)
{
	PGresult *res;
	int r;

	if ((r = pg_flush(pc, ev)) == -1) {
		pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
		return;
	}
	if (PQisBusy(pc->conn)) {
		if (r == 0)
			pg_wait(pc, EV_READ);
		return;
	}
	res = PQgetResult(pc->conn);
	if (res != NULL && PQresultStatus(res) == PGRES_COPY_IN) {
		PQclear(res);
		/* Binary COPY: the header, then the range's rows. */
		if (PQputCopyData(
			pc->conn, COPYENC_HEADER, COPYENC_HEADER_LEN) != 1) {
			pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
			return;
		}
		pg_set_state(pc, PG_COPY_SEND);
		pg_dispatch(pc, PGE_WRITABLE);
		return;
	}
	if (res != NULL) {
		dbconn_trim(pc->last_error, sizeof(pc->last_error),
		    PQresultErrorMessage(res));
		PQclear(res);
	}
	(void)pg_collect(pc, NULL, 0);
	pg_fail(pc, "COPY",
	    pc->last_error[0] ? pc->last_error : PQerrorMessage(pc->conn));
}

/* Queues the batch in chunks, waiting for the socket when libpq's
 * buffer cannot be flushed. */
static void
handle_copy_send_write(struct pg_conn *pc)
{
	struct batch *b = pc->batch;
	size_t n;
	int r;

	for (;;) {
		if ((r = PQflush(pc->conn)) == 1) {
			pg_wait(pc, EV_WRITE);
			return;
		}
		if (r == -1)
			break;
		if (pc->sent == pc->range.len) {
			if (PQputCopyData(pc->conn, COPYENC_TRAILER,
				COPYENC_TRAILER_LEN) != 1 ||
			    PQputCopyEnd(pc->conn, NULL) != 1)
				break;
			pg_set_state(pc, PG_COPY_END);
			pg_dispatch(pc, PGE_WRITABLE);
			return;
		}
		n = pc->range.len - pc->sent;
		if (n > COPY_CHUNK_BYTES)
			n = COPY_CHUNK_BYTES;
		if (PQputCopyData(pc->conn,
			batch_rows(b) + pc->range.off + pc->sent, (int)n) != 1)
			break;
		pc->sent += n;
	}
	pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
}

static void
handle_copy_end_io(struct pg_conn *pc, enum pg_event ev)
{
	int r = pg_flush(pc, ev);

	if (r == -1) {
		pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
		return;
	}
	if (r == 0) {
		pg_set_state(pc, PG_AWAIT_RESULT);
		pg_dispatch(pc, PGE_READABLE);
	}
}

/* The current range is stored: the batch is done, or the next range goes. */
static void
pg_range_done(struct pg_conn *pc)
{
	struct pgpool *pool = pc->pool;

	if (!poison_pop(pc->batch)) {
		pg_start_copy(pc);
		return;
	}
	log_debug(
	    "pg%d: batch of %u lines done", pc->id, batch_lines(pc->batch));
	queue_done(pool->q, pc->batch);
	pc->batch = NULL;
	pg_set_state(pc, PG_IDLE);
	pg_dispatch(pc, PGE_WORK);
}

/*
 * The rows themselves were refused: split the range, or, for one row,
 * put it in the dead-letter table.  The connection stays up.
 */
static void
pg_data_error(struct pg_conn *pc, const char *sqlstate)
{
	if (pc->range.lines == batch_lines(pc->batch) &&
	    !batch_is_split(pc->batch))
		log_warnx("pg%d: COPY of %u lines refused (SQLSTATE %s: %s); "
			  "isolating the rejected rows",
		    pc->id, pc->range.lines, sqlstate, pc->last_error);
	if (pc->range.lines > 1) {
		if (poison_split(pc->batch) == -1) {
			pg_fail(pc, "COPY", "out of memory splitting a batch");
			return;
		}
		pg_start_copy(pc);
		return;
	}
	pg_reject_start(pc, sqlstate);
}

static void
handle_await_result_read(struct pg_conn *pc)
{
	int r;

	if ((r = pg_collect(pc, NULL, 0)) == 0)
		return;
	if (r == -1) {
		pg_fail(pc, "COPY", PQerrorMessage(pc->conn));
		return;
	}
	if (pc->res_status != PGRES_COMMAND_OK) {
		if (poison_is_data_error(pc->res_sqlstate)) {
			pg_data_error(pc, pc->res_sqlstate);
			return;
		}
		log_errx("pg%d: COPY of %u lines failed: SQLSTATE %s: %s",
		    pc->id, pc->range.lines, pc->res_sqlstate, pc->last_error);
		pg_fail(pc, "COPY", pc->last_error);
		return;
	}
	metrics.lines_committed += pc->range.lines;
	metrics.copy_batches++;
	metrics_observe_batch(pc->range.lines,
	    (double)(clock_mono_us() - pc->copy_start_us) / 1e6);
	log_debug("pg%d: committed %u lines", pc->id, pc->range.lines);
	pg_range_done(pc);
}

/* Sends the one-row range to the dead-letter table, with why it failed. */
static void
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
		&pool->reject_row, &pool->reject_subject, &has_subject) == -1) {
		pg_fail(pc, "dead-letter", "cannot decode the rejected row");
		return;
	}
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
		lengths, formats, 0)) {
		pg_fail(pc, "dead-letter", PQerrorMessage(pc->conn));
		return;
	}
	pg_set_state(pc, PG_REJECT);
	pg_wait(pc, EV_READ | EV_WRITE);
}

static void
handle_reject_io(struct pg_conn *pc, enum pg_event ev)
{
	struct pgpool *pool = pc->pool;
	int64_t now;

	if (pg_command_io(pc, ev, "dead-letter", NULL, 0) != 1)
		return;
	if (pc->res_status != PGRES_COMMAND_OK) {
		log_errx("pg%d: could not store a rejected row in %s_rejected "
			 "(%s); its batch is retried later (run logsinkd "
			 "--init-db if the table is missing)",
		    pc->id, pool->set.table, pc->last_error);
		pg_fail(pc, "dead-letter", pc->last_error);
		return;
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
	pg_range_done(pc);
}

/* Full jitter on the upper half: delay in [backoff/2, backoff]. */
static int
jitter(int ms)
{
	return ms / 2 + (int)(arc4random_uniform((uint32_t)(ms / 2 + 1)));
}

/*
 * Something failed: give the batch back (at the head of the queue, so
 * order is kept as far as possible), drop the connection and retry later.
 */
static void
pg_fail(struct pg_conn *pc, const char *what, const char *msg)
{
	struct pgpool *pool = pc->pool;
	int64_t now = clock_mono_ms();
	char text[256];
	int delay;

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
	}
	pg_close(pc);
	pg_contacted(pool);
	metrics.db_reconnects++;
	delay = jitter(pc->backoff_ms);
	pc->backoff_ms = pc->backoff_ms * 2 > pool->set.reconnect_max_ms
	    ? pool->set.reconnect_max_ms
	    : pc->backoff_ms * 2;
	pg_set_state(pc, PG_BACKOFF);
	pg_timer(pc, delay);
	pgpool_kick(pool); /* another connection may take the batch */
}

static void
pg_bad_event(struct pg_conn *pc, enum pg_event ev)
{
	fatalx("pg%d: event %s in state %s", pc->id, pg_event_names[ev],
	    pg_state_names[pc->state]);
}

static void
pg_dispatch(struct pg_conn *pc, enum pg_event ev)
{
	if (ev == PGE_TIMER &&
	    (pc->state == PG_CHECKING || pc->state > PG_IDLE)) {
		log_warnx("pg%d: no progress in %s for %d ms (db-timeout): "
			  "dropping the connection",
		    pc->id, pg_state_names[pc->state],
		    pc->state == PG_MAINTAIN
			? pc->pool->set.maintenance_timeout_ms
			: pc->pool->set.db_timeout_ms);
		if (pc->state == PG_MAINTAIN)
			pc->pool->maint_running = false;
		pg_fail(pc, "database command", "db-timeout");
		return;
	}
	switch (pc->state) {
	case PG_BACKOFF:
		if (ev == PGE_TIMER)
			pg_connect_start(pc);
		else if (ev != PGE_WORK)
			pg_bad_event(pc, ev);
		break;
	case PG_CONNECTING:
		if (ev == PGE_TIMER)
			pg_fail(pc, "connect", "timed out");
		else if (ev != PGE_WORK)
			handle_connecting_io(pc);
		break;
	case PG_CHECKING:
		if (ev == PGE_READABLE || ev == PGE_WRITABLE)
			handle_checking_io(pc, ev);
		else if (ev == PGE_TIMER)
			pg_bad_event(pc, ev);
		break;
	case PG_IDLE:
		if (ev == PGE_WORK)
			handle_idle_work(pc);
		else if (ev == PGE_READABLE)
			handle_idle_read(pc);
		else
			pg_bad_event(pc, ev);
		break;
	case PG_COPY_START:
		if (ev != PGE_WORK)
			handle_copy_start_io(pc, ev);
		break;
	case PG_COPY_SEND:
		if (ev == PGE_WRITABLE)
			handle_copy_send_write(pc);
		else if (ev == PGE_TIMER)
			pg_bad_event(pc, ev);
		break;
	case PG_COPY_END:
		if (ev == PGE_READABLE || ev == PGE_WRITABLE)
			handle_copy_end_io(pc, ev);
		break;
	case PG_REJECT:
		if (ev == PGE_READABLE || ev == PGE_WRITABLE)
			handle_reject_io(pc, ev);
		else if (ev == PGE_TIMER)
			pg_bad_event(pc, ev);
		break;
	case PG_MAINTAIN:
		if (ev == PGE_READABLE || ev == PGE_WRITABLE)
			handle_maintain_io(pc, ev);
		else if (ev == PGE_TIMER)
			pg_bad_event(pc, ev);
		break;
	case PG_AWAIT_RESULT:
		if (ev == PGE_READABLE)
			handle_await_result_read(pc);
		else if (ev == PGE_TIMER)
			pg_bad_event(pc, ev);
		break;
	default:
		pg_bad_event(pc, ev);
	}
}

static void
maint_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgpool *pool = arg;

	(void)fd;
	(void)what;
	pool->maint_due = true;
	pgpool_kick(pool);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pgpool_kick(arg);
}

/*
 * Offers waiting batches to idle connections.  The flush timer is armed
 * only while a connection is idle: with every connection busy or down, a
 * due batch simply waits for the next one to become idle.
 */
void
pgpool_kick(struct pgpool *pool)
{
	bool idle = false;
	int i;

	for (i = 0; i < pool->set.connections; i++) {
		if (pool->conns[i].state != PG_IDLE)
			continue;
		idle = true;
		if (!queue_has_sealed(pool->q) && !flush_due(pool) &&
		    !(pool->maint_due && !pool->maint_running))
			break;
		pg_dispatch(&pool->conns[i], PGE_WORK);
	}
	if (idle)
		arm_flush_timer(pool);
}

struct pgpool *
pgpool_new(struct event_base *base, struct queue *q,
    const struct pgpool_settings *set, char *err, size_t errlen)
{
	struct pgpool *pool;
	struct pg_conn *pc;
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
	pool->ev_flush = evtimer_new(base, flush_cb, pool);
	pool->ev_maint = event_new(base, -1, EV_PERSIST, maint_cb, pool);
	pool->maint_due = true;
	if (pool->copy_sql == NULL || pool->check_sql == NULL ||
	    pool->reject_sql == NULL || pool->ev_flush == NULL ||
	    pool->ev_maint == NULL) {
		pgpool_free(pool);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < set->connections; i++) {
		pc = &pool->conns[i];
		pc->pool = pool;
		pc->id = i + 1;
		pc->state = PG_BACKOFF;
		pc->backoff_ms = set->reconnect_min_ms;
		if ((pc->ev_timer = evtimer_new(base, timer_cb, pc)) == NULL) {
			pgpool_free(pool);
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
	}
	return pool;
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
		if (pc->ev_timer == NULL)
			continue;
		pg_close(pc);
		event_free(pc->ev_timer);
		if (pc->batch != NULL)
			queue_return(pool->q, pc->batch);
	}
	if (pool->ev_flush != NULL)
		event_free(pool->ev_flush);
	if (pool->ev_maint != NULL)
		event_free(pool->ev_maint);
	free(pool->conns);
	free(pool->copy_sql);
	free(pool->reject_sql);
	buf_free(&pool->reject_raw);
	buf_free(&pool->reject_subject);
	buf_free(&pool->reject_row);
	free(pool->check_sql);
	free(pool);
}

void
pgpool_start(struct pgpool *pool)
{
	int i;

	struct timeval hour = { MAINTAIN_INTERVAL_S, 0 };

	log_info("writing to %s, table %s, %d connection(s)", pool->dc.target,
	    pool->set.table, pool->set.connections);
	event_add(pool->ev_maint, &hour);
	for (i = 0; i < pool->set.connections; i++)
		pg_connect_start(&pool->conns[i]);
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
	*nstates = (int)(sizeof(pg_state_names) / sizeof(pg_state_names[0]));
	return pg_state_names;
}

void
pgpool_state_counts(const struct pgpool *pool, int *counts)
{
	int i;

	memset(counts, 0,
	    sizeof(pg_state_names) / sizeof(pg_state_names[0]) *
		sizeof(*counts));
	for (i = 0; i < pool->set.connections; i++)
		counts[pool->conns[i].state]++;
}

int
pgpool_connected(const struct pgpool *pool)
{
	int i, n = 0;

	for (i = 0; i < pool->set.connections; i++)
		if (pool->conns[i].state >= PG_IDLE)
			n++;
	return n;
}

const char *
pgpool_target(const struct pgpool *pool)
{
	return pool->dc.target;
}
