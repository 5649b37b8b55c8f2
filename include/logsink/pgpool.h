/*
 * pgpool: N asynchronous libpq connections that move batches from the
 * queue into PostgreSQL with COPY.  Each connection is an explicit state
 * machine driven by libevent on its PQsocket(); nothing here ever blocks
 * the event loop.  A failure on the data path, running out of memory
 * included, drops that connection and retries later; it never ends the
 * daemon.  Test hook: fault point "maintain-sql-oom" (logsink/fault.h).
 */
#ifndef LOGSINK_PGPOOL_H
#define LOGSINK_PGPOOL_H

#include <stdint.h>

#include <event2/event.h>

#include "logsink/queue.h"

struct pgpool_settings {
	const char *conninfo; /* NULL: libpq's PG* environment */
	const char *table;    /* "schema.name" */
	int connections;
	int flush_interval_ms;
	int reconnect_min_ms;
	int reconnect_max_ms;
	int db_timeout_ms; /* no progress this long: the connection is dead */
	int maintenance_timeout_ms; /* the same for partition upkeep */
	int partitions_ahead;       /* partition upkeep: start-up, hourly */
	int retention_days;
};

struct pgpool;

typedef void (*pgpool_cb)(void *arg);

/* Validates the settings (conninfo syntax included); NULL with err set. */
struct pgpool *pgpool_new(struct event_base *base, struct queue *q,
    const struct pgpool_settings *set, char *err, size_t errlen);
void pgpool_free(struct pgpool *pool);

/*
 * cb runs once, when the first connection attempt has ended: connected
 * with the schema checked, or failed (the pool keeps retrying).
 */
void pgpool_on_contact(struct pgpool *pool, pgpool_cb cb, void *arg);
/* Starts connecting. */
void pgpool_start(struct pgpool *pool);
/* New work may be waiting in the queue: wake idle connections. */
void pgpool_kick(struct pgpool *pool);
/* Shutting down: send partial batches at once, no flush interval. */
void pgpool_drain(struct pgpool *pool);
/* Run-time tunables (SIGHUP); new partition settings run the upkeep. */
void pgpool_set_partitions(
    struct pgpool *pool, int days_ahead, int retention_days);
void pgpool_set_flush_interval(struct pgpool *pool, int ms);
/* db-timeout and maintenance-timeout: from the next timer a connection
 * arms (every wait for the server re-arms it; a connection attempt's
 * deadline is set when it starts), and tcp_user_timeout of the next
 * connection attempt. */
void pgpool_set_timeouts(
    struct pgpool *pool, int db_timeout_ms, int maintenance_timeout_ms);
/* reconnect-min-ms and reconnect-max-ms: from the next failure on (they
 * also bound the delay before upkeep whose SQL could not be built reruns). */
void pgpool_set_reconnect(struct pgpool *pool, int min_ms, int max_ms);

/* Names of the connection states, for metrics; counts[] per state. */
const char *const *pgpool_state_names(int *nstates);
void pgpool_state_counts(const struct pgpool *pool, int *counts);
#define PGPOOL_MAX_STATES 16

/* Connections currently able to take a batch or writing one. */
int pgpool_connected(const struct pgpool *pool);
/* Text like "host=db port=5432 dbname=logs user=logsink" (no password). */
const char *pgpool_target(const struct pgpool *pool);

#endif
