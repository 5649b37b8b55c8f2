/*
 * metrics: the daemon's counters and histograms.  Plain integers updated
 * on the event loop's thread only (the spool's sync thread touches none);
 * read by the periodic "stats:" log line and rendered in Prometheus text
 * format for /metrics.  Leaf module.
 */
#ifndef LOGSINK_METRICS_H
#define LOGSINK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/buf.h"
#include "logsink/forward.h"
#include "logsink/looplag.h"
#include "logsink/http.h"
#include "logsink/proxy.h"
#include "logsink/relp.h"
#include "logsink/tls_types.h"

#define METRICS_BATCH_BUCKETS   10
#define METRICS_LATENCY_BUCKETS 13
#define METRICS_SQLSTATES       32
/* proto=http endpoints: 0 is "none" (no route), then the route table's */
#define METRICS_HTTP_ENDPOINTS  8

/* Why a proto=udp datagram was read and not queued. */
enum metrics_udp_drop {
	METRICS_UDP_QUEUE_FULL, /* the queue was full (no back-pressure) */
	METRICS_UDP_DENIED,     /* sender not in the listener's allow= */
	METRICS_UDP_EMPTY,      /* nothing left after the trailing LF/NUL */
	METRICS_UDP_NDROPS,
};

/* Why a client connection was paused (listener_fair.c). */
enum metrics_pause {
	METRICS_PAUSE_QUEUE_FULL, /* the queue was full: everyone */
	METRICS_PAUSE_FAIR_SHARE, /* it held more than its share */
	METRICS_PAUSE_RATE_LIMIT, /* its source ran out of tokens */
	METRICS_NPAUSES,
};

struct histogram {
	uint64_t counts[METRICS_LATENCY_BUCKETS + 1]; /* last: +Inf */
	double sum;
	uint64_t n;
};

struct metrics {
	uint64_t lines_received;
	uint64_t bytes_received;
	uint64_t lines_committed;
	uint64_t lines_rejected; /* refused by the database: dead-lettered */
	uint64_t lines_truncated;
	uint64_t bad_frames;
	uint64_t lines_sanitized; /* had bytes replaced by U+FFFD */
	uint64_t bytes_replaced;
	uint64_t lines_dropped_oom;
	uint64_t lines_spooled;  /* written to the disk spool */
	uint64_t lines_replayed; /* read back from it */
	uint64_t spool_refused;  /* batches the spool could not take */
	uint64_t connections_accepted;
	uint64_t connections_open;
	uint64_t connections_refused;
	uint64_t connections_timed_out;
	uint64_t accept_errors;
	uint64_t tls_handshakes;                        /* completed */
	uint64_t tls_handshake_failures[TLS_NFAILURES]; /* per reason */
	uint64_t proxy_headers[2];                      /* accepted: v1, v2 */
	uint64_t proxy_failures[PROXY_NFAILURES];       /* per reason */
	uint64_t relp_sessions;             /* RELP opens answered */
	uint64_t relp_errors[RELP_NERRORS]; /* sessions ended, per reason */
	uint64_t forward_messages[FORWARD_NMODES]; /* decoded, per mode */
	uint64_t forward_errors[FORWARD_NERRORS];  /* connections closed */
	uint64_t forward_odd_entries; /* not [time, map]: stored whole */
	uint64_t copy_batches;
	uint64_t copy_failures;
	uint64_t db_reconnects;
	uint64_t backpressure_events;
	uint64_t backpressure_ms;      /* finished pauses */
	int64_t backpressure_since_ms; /* monotonic start of the current pause,
					  or 0 */
	uint64_t udp_datagrams;        /* read from UDP sockets */
	uint64_t udp_dropped[METRICS_UDP_NDROPS]; /* read, not queued */
	uint64_t udp_kernel_drops; /* the sockets' receive-buffer drops */
	uint64_t udp_truncated;    /* longer than the datagram buffer */
	struct looplag loop_lag;   /* main's timer (looplag.h) */
	/* proto=http: answers by endpoint and status (http_status_index()),
	 * refusals by reason (enum http_error, enum http_refusal); the
	 * endpoint names are set by listener_http.c (NULL: unused) */
	uint64_t http_requests[METRICS_HTTP_ENDPOINTS][HTTP_NSTATUS];
	uint64_t http_errors[HTTP_NREASONS];
	uint64_t http_records;         /* records the bodies carried */
	uint64_t http_records_refused; /* refused alone in a good body
					  (OTLP partial success) */
	const char *http_endpoints[METRICS_HTTP_ENDPOINTS];
	uint64_t clients_paused[METRICS_NPAUSES]; /* pauses, per reason */
	uint64_t rate_dropped;   /* lines over the rate limit, dropped */
	uint64_t rate_paused_ms; /* finished rate-limit pauses */
	uint64_t rate_sources;   /* sources in the rate-limit table */
	uint64_t rate_evictions; /* sources forgotten, the table full */
	struct histogram batch_lines;
	struct histogram commit_seconds;
	struct {
		char code[6];
		uint64_t n;
	} sqlstates[METRICS_SQLSTATES];
	uint64_t sqlstate_other;
};

extern struct metrics metrics;

/* What other modules know at render time. */
struct metrics_gauges {
	uint64_t queue_lines;
	size_t queue_bytes;
	size_t queue_limit_bytes;
	int64_t now_ms; /* monotonic */
	int db_writable;
	int ndb_states;
	const char *const *db_state_names;
	int *db_state_counts; /* filled by the gauges callback */
	bool spool;           /* a spool-dir is configured: */
	uint64_t spool_bytes, spool_segments, spool_unread_bytes;
	uint64_t spool_corrupt_records, spool_corrupt_bytes;
	uint64_t spool_write_errors;
	uint64_t spool_syncs, spool_sync_errors; /* on the sync thread */
};

/* "queue_full", "denied", "empty": the reason label. */
const char *metrics_udp_drop_name(enum metrics_udp_drop r);
/* "queue-full", "fair-share", "rate-limit": the reason label. */
const char *metrics_pause_name(enum metrics_pause r);
void metrics_observe_batch(uint32_t lines, double commit_seconds);
void metrics_count_sqlstate(const char *sqlstate);

/* One line of key=value pairs, for the periodic stats log line. */
void metrics_format(
    char *out, size_t outlen, uint64_t queue_lines, size_t queue_bytes);

/* Prometheus text exposition format 0.0.4; -1 if out could not grow. */
int metrics_render(struct buf *out, const struct metrics_gauges *g)
    __attribute__((warn_unused_result));

#endif
