/*
 * metrics: the daemon's counters.  Plain integers updated on the event
 * loop (single-threaded); the periodic "stats:" log line and, later, the
 * metrics endpoint read them.
 */
#ifndef LOGSINK_METRICS_H
#define LOGSINK_METRICS_H

#include <stdint.h>
#include <stdio.h>

struct metrics {
	uint64_t lines_received;
	uint64_t bytes_received;
	uint64_t lines_committed;
	uint64_t lines_truncated;
	uint64_t bad_frames;
	uint64_t lines_sanitized; /* had bytes replaced by U+FFFD */
	uint64_t bytes_replaced;
	uint64_t lines_dropped_oom;
	uint64_t connections_accepted;
	uint64_t connections_open;
	uint64_t accept_errors;
	uint64_t copy_batches;
	uint64_t copy_failures;
	uint64_t db_reconnects;
	uint64_t backpressure_events;
	uint64_t backpressure_ms;
};

extern struct metrics metrics;

/* One line of key=value pairs, for the periodic stats log line. */
void metrics_format(char *out, size_t outlen, uint64_t queue_lines,
    size_t queue_bytes);

#endif
