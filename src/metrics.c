/*
 * metrics: global counters (see include/logsink/metrics.h).
 */
#include <inttypes.h>
#include <stdio.h>

#include "logsink/metrics.h"

struct metrics metrics;

void
metrics_format(char *out, size_t outlen, uint64_t queue_lines,
    size_t queue_bytes)
{
	snprintf(out, outlen,
	    "received=%" PRIu64 " committed=%" PRIu64 " queued=%" PRIu64
	    " queue_bytes=%zu truncated=%" PRIu64 " bad_frames=%" PRIu64
	    " sanitized=%" PRIu64
	    " dropped_oom=%" PRIu64 " conns_open=%" PRIu64
	    " conns_accepted=%" PRIu64 " batches=%" PRIu64
	    " copy_failures=%" PRIu64 " reconnects=%" PRIu64
	    " backpressure_ms=%" PRIu64,
	    metrics.lines_received, metrics.lines_committed, queue_lines,
	    queue_bytes, metrics.lines_truncated, metrics.bad_frames,
	    metrics.lines_sanitized,
	    metrics.lines_dropped_oom, metrics.connections_open,
	    metrics.connections_accepted, metrics.copy_batches,
	    metrics.copy_failures, metrics.db_reconnects,
	    metrics.backpressure_ms);
}
