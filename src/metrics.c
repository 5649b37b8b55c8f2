/*
 * metrics: global counters (see include/logsink/metrics.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "logsink/metrics.h"

struct metrics metrics;

static const double batch_bounds[METRICS_BATCH_BUCKETS] = { 1, 10, 100, 500,
	1000, 2000, 5000, 10000, 50000, 100000 };
static const double latency_bounds[METRICS_LATENCY_BUCKETS] = { 0.001, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

static const char *const udp_drop_names[METRICS_UDP_NDROPS] = {
	"queue_full",
	"denied",
	"empty",
};

static const char *const pause_names[METRICS_NPAUSES] = {
	"queue-full",
	"fair-share",
	"rate-limit",
};

const char *
metrics_pause_name(enum metrics_pause r)
{
	return (unsigned)r < METRICS_NPAUSES ? pause_names[r] : "?";
}

const char *
metrics_udp_drop_name(enum metrics_udp_drop r)
{
	return (unsigned)r < METRICS_UDP_NDROPS ? udp_drop_names[r] : "?";
}

static void
observe(struct histogram *h, const double *bounds, int nb, double v)
{
	int i;

	for (i = 0; i < nb && v > bounds[i]; i++)
		;
	h->counts[i]++;
	h->sum += v;
	h->n++;
}

void
metrics_observe_batch(uint32_t lines, double commit_seconds)
{
	observe(&metrics.batch_lines, batch_bounds, METRICS_BATCH_BUCKETS,
	    (double)lines);
	observe(&metrics.commit_seconds, latency_bounds,
	    METRICS_LATENCY_BUCKETS, commit_seconds);
}

void
metrics_count_sqlstate(const char *sqlstate)
{
	int i;

	for (i = 0; i < METRICS_SQLSTATES; i++) {
		if (metrics.sqlstates[i].code[0] == '\0')
			snprintf(metrics.sqlstates[i].code,
			    sizeof(metrics.sqlstates[i].code), "%s", sqlstate);
		if (strcmp(metrics.sqlstates[i].code, sqlstate) == 0) {
			metrics.sqlstates[i].n++;
			return;
		}
	}
	metrics.sqlstate_other++;
}

void
metrics_format(
    char *out, size_t outlen, uint64_t queue_lines, size_t queue_bytes)
{
	snprintf(out, outlen,
	    "received=%" PRIu64 " committed=%" PRIu64 " rejected=%" PRIu64
	    " queued=%" PRIu64 " queue_bytes=%zu truncated=%" PRIu64
	    " bad_frames=%" PRIu64 " sanitized=%" PRIu64 " dropped_oom=%" PRIu64
	    " conns_open=%" PRIu64 " conns_accepted=%" PRIu64
	    " batches=%" PRIu64 " copy_failures=%" PRIu64 " reconnects=%" PRIu64
	    " backpressure_ms=%" PRIu64 " spooled=%" PRIu64 " replayed=%" PRIu64
	    " udp=%" PRIu64 " udp_dropped=%" PRIu64 " udp_kernel_drops=%" PRIu64
	    " loop_lag_max_ms=%.1f"
	    " loop_lag_p99_ms=%.1f",
	    metrics.lines_received, metrics.lines_committed,
	    metrics.lines_rejected, queue_lines, queue_bytes,
	    metrics.lines_truncated, metrics.bad_frames,
	    metrics.lines_sanitized, metrics.lines_dropped_oom,
	    metrics.connections_open, metrics.connections_accepted,
	    metrics.copy_batches, metrics.copy_failures, metrics.db_reconnects,
	    metrics.backpressure_ms, metrics.lines_spooled,
	    metrics.lines_replayed, metrics.udp_datagrams,
	    metrics.udp_dropped[METRICS_UDP_QUEUE_FULL] +
		metrics.udp_dropped[METRICS_UDP_DENIED],
	    metrics.udp_kernel_drops,
	    (double)looplag_window_max_us(&metrics.loop_lag) / 1000,
	    (double)looplag_window_p99_us(&metrics.loop_lag) / 1000);
}

static int put(struct buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
put(struct buf *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(
		    out->data + out->len, out->cap - out->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < out->cap - out->len) {
			out->len += (size_t)n;
			return 0;
		}
		if (buf_reserve(out, (size_t)n + 1) == -1)
			return -1;
	}
}

static int
counter(struct buf *out, const char *name, const char *help, uint64_t v)
{
	return put(out,
	    "# HELP logsink_%s %s\n# TYPE logsink_%s counter\n"
	    "logsink_%s %" PRIu64 "\n",
	    name, help, name, name, v);
}

/* A name for label value i of a labelled counter. */
typedef const char *(*label_name_fn)(int i);

/*
 * A counter family logsink_NAME{label="..."}: HELP and TYPE, then one
 * sample per value from first to n - 1 (zeros too, so every reason is
 * listed).
 */
static int
counters(struct buf *out, const char *name, const char *help, const char *label,
    label_name_fn label_name, const uint64_t *v, int first, int n)
{
	int i, rc;

	rc = put(out, "# HELP logsink_%s %s\n# TYPE logsink_%s counter\n", name,
	    help, name);
	for (i = first; rc == 0 && i < n; i++)
		rc = put(out, "logsink_%s{%s=\"%s\"} %" PRIu64 "\n", name,
		    label, label_name(i), v[i]);
	return rc;
}

static const char *
tls_label(int i)
{
	return tls_failure_name((enum tls_failure)i);
}

static const char *
proxy_label(int i)
{
	return proxy_failure_name((enum proxy_failure)i);
}

static const char *
proxy_version_label(int i)
{
	return i == 0 ? "1" : "2";
}

static const char *
udp_label(int i)
{
	return metrics_udp_drop_name((enum metrics_udp_drop)i);
}

static const char *
relp_label(int i)
{
	return relp_error_name((enum relp_error)i);
}

static int
gauge(struct buf *out, const char *name, const char *help, double v)
{
	return put(out,
	    "# HELP logsink_%s %s\n# TYPE logsink_%s gauge\n"
	    "logsink_%s %.17g\n",
	    name, help, name, name, v);
}

static int
histogram(struct buf *out, const char *name, const char *help,
    const struct histogram *h, const double *bounds, int nb)
{
	uint64_t cum = 0;
	int i, rc;

	rc = put(out, "# HELP logsink_%s %s\n# TYPE logsink_%s histogram\n",
	    name, help, name);
	for (i = 0; rc == 0 && i < nb; i++) {
		cum += h->counts[i];
		rc = put(out, "logsink_%s_bucket{le=\"%g\"} %" PRIu64 "\n",
		    name, bounds[i], cum);
	}
	if (rc == 0)
		rc = put(out,
		    "logsink_%s_bucket{le=\"+Inf\"} %" PRIu64 "\n"
		    "logsink_%s_sum %.17g\nlogsink_%s_count %" PRIu64 "\n",
		    name, h->n, name, h->sum, name, h->n);
	return rc;
}

/*
 * The loop's lateness: a histogram since start, the largest since start,
 * and the maximum and p99 of the last LOOPLAG_WINDOW timer runs.
 */
static int
render_loop_lag(struct buf *out)
{
	const struct looplag *l = &metrics.loop_lag;
	uint64_t cum = 0;
	int i, rc;

	rc = put(out,
	    "# HELP logsink_loop_lag_seconds How late the event loop ran its "
	    "%d ms timer.\n# TYPE logsink_loop_lag_seconds histogram\n",
	    LOOPLAG_INTERVAL_MS);
	for (i = 0; rc == 0 && i < LOOPLAG_BUCKETS; i++) {
		cum += l->counts[i];
		rc = put(out,
		    "logsink_loop_lag_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
		    looplag_bounds[i], cum);
	}
	if (rc == 0)
		rc = put(out,
		    "logsink_loop_lag_seconds_bucket{le=\"+Inf\"} %" PRIu64
		    "\nlogsink_loop_lag_seconds_sum %.17g\n"
		    "logsink_loop_lag_seconds_count %" PRIu64 "\n",
		    l->n, (double)l->sum_us / 1e6, l->n);
	return rc |
	    gauge(out, "loop_lag_max_seconds", "Largest loop lag since start.",
		(double)l->max_us / 1e6) |
	    gauge(out, "loop_lag_window_max_seconds",
		"Largest loop lag of the last 1024 timer runs.",
		(double)looplag_window_max_us(l) / 1e6) |
	    gauge(out, "loop_lag_window_p99_seconds",
		"99th percentile loop lag of the last 1024 timer runs.",
		(double)looplag_window_p99_us(l) / 1e6);
}

static int
render_counters(struct buf *out)
{
	const struct metrics *m = &metrics;

	return counter(out, "lines_received_total", "Lines received.",
		   m->lines_received) |
	    counter(out, "bytes_received_total", "Message bytes received.",
		m->bytes_received) |
	    counter(out, "lines_committed_total",
		"Lines committed to PostgreSQL.", m->lines_committed) |
	    counter(out, "lines_rejected_total",
		"Lines the database refused, stored in the dead-letter table.",
		m->lines_rejected) |
	    counter(out, "lines_truncated_total",
		"Lines cut to max-line-bytes.", m->lines_truncated) |
	    counter(out, "lines_sanitized_total",
		"Lines with bytes replaced by U+FFFD.", m->lines_sanitized) |
	    counter(out, "bytes_replaced_total",
		"Bytes replaced by U+FFFD (invalid UTF-8, NUL).",
		m->bytes_replaced) |
	    counter(out, "bad_frames_total", "Malformed octet-counting frames.",
		m->bad_frames) |
	    counter(out, "lines_dropped_oom_total",
		"Lines dropped because memory ran out.", m->lines_dropped_oom) |
	    counter(out, "lines_spooled_total",
		"Lines written to the disk spool.", m->lines_spooled) |
	    counter(out, "lines_replayed_total",
		"Lines read back from the disk spool for the database.",
		m->lines_replayed) |
	    counter(out, "spool_refused_total",
		"Batches the spool could not take (full or write error).",
		m->spool_refused) |
	    counter(out, "connections_accepted_total",
		"Client connections accepted.", m->connections_accepted) |
	    counter(out, "connections_refused_total",
		"Client connections refused by limits.",
		m->connections_refused) |
	    counter(out, "connections_timed_out_total",
		"Connections closed by idle-timeout, partial-line-timeout or "
		"tls-handshake-timeout or proxy-header-timeout.",
		m->connections_timed_out) |
	    counter(out, "accept_errors_total", "Failed accept() calls.",
		m->accept_errors) |
	    counter(out, "copy_batches_total", "COPY batches committed.",
		m->copy_batches) |
	    counter(out, "copy_failures_total",
		"COPY batches that failed and were requeued.",
		m->copy_failures) |
	    counter(out, "db_reconnects_total",
		"Database connections dropped and retried.", m->db_reconnects) |
	    counter(out, "backpressure_events_total",
		"Times reading from clients was paused (queue full).",
		m->backpressure_events);
}

/* Every reason is listed, zeros too, so that rate() sees each series. */
static int
render_tls(struct buf *out)
{
	return counter(out, "tls_handshakes_total",
		   "TLS handshakes completed on tls=on listeners.",
		   metrics.tls_handshakes) |
	    counters(out, "tls_handshake_failures_total",
		"TLS handshakes that failed, by reason.", "reason", tls_label,
		metrics.tls_handshake_failures, 0, TLS_NFAILURES);
}

/* PROXY headers taken by version, refused by reason (zeros too). */
static int
render_proxy(struct buf *out)
{
	return counters(out, "proxy_headers_total",
		   "PROXY protocol headers accepted on proxy= listeners, by "
		   "version.",
		   "version", proxy_version_label, metrics.proxy_headers, 0,
		   2) |
	    counters(out, "proxy_failures_total",
		"Connections on proxy= listeners closed for their PROXY "
		"header, by reason.",
		"reason", proxy_label, metrics.proxy_failures, 0,
		PROXY_NFAILURES);
}

/* proto=udp counters; every reason listed, zeros too. */
static int
render_udp(struct buf *out)
{
	return counter(out, "udp_datagrams_total",
		   "Datagrams read from proto=udp listeners.",
		   metrics.udp_datagrams) |
	    counter(out, "udp_kernel_drops_total",
		"Datagrams the kernel dropped, receive buffer full "
		"(udp-rcvbuf).",
		metrics.udp_kernel_drops) |
	    counter(out, "udp_truncated_total",
		"Datagrams longer than max-line-bytes, stored cut.",
		metrics.udp_truncated) |
	    counters(out, "udp_dropped_total",
		"Datagrams read and not queued, by reason.", "reason",
		udp_label, metrics.udp_dropped, 0, METRICS_UDP_NDROPS);
}

/* RELP sessions, and those ended by a protocol error, by reason (0 is
 * RELP_OK, not an error). */
static int
render_relp(struct buf *out)
{
	return counter(out, "relp_sessions_total",
		   "RELP sessions opened on proto=relp listeners.",
		   metrics.relp_sessions) |
	    counters(out, "relp_errors_total",
		"RELP sessions closed for a protocol error, by reason.",
		"reason", relp_label, metrics.relp_errors, 1, RELP_NERRORS);
}

static const char *
forward_err_label(int i)
{
	return forward_error_name((enum forward_error)i);
}

static const char *
forward_mode_label(int i)
{
	return forward_mode_name((enum forward_mode)i);
}

/* Fluent forward messages by mode, connections closed for an error by
 * reason (0 is FORWARD_OK, not an error), odd entries. */
static int
render_forward(struct buf *out)
{
	return counters(out, "forward_messages_total",
		   "Fluent forward messages decoded on proto=forward "
		   "listeners, by mode.",
		   "mode", forward_mode_label, metrics.forward_messages, 0,
		   FORWARD_NMODES) |
	    counters(out, "forward_errors_total",
		"Fluent forward connections closed for a protocol error, by "
		"reason.",
		"reason", forward_err_label, metrics.forward_errors, 1,
		FORWARD_NERRORS) |
	    counter(out, "forward_odd_entries_total",
		"Fluent forward entries not [time, record], stored whole as "
		"the message.",
		metrics.forward_odd_entries);
}

static const char *
http_reason_label(int i)
{
	return http_reason_name(i);
}

/* proto=http answers by endpoint and code (the endpoints in use, every
 * code), refusals by reason (zeros too; 0 is HTTP_ERR_NONE, not an error). */
static int
render_http(struct buf *out)
{
	int e, i, rc;

	rc = counter(out, "http_records_total",
		 "Records taken from proto=http request bodies.",
		 metrics.http_records) |
	    counter(out, "http_records_refused_total",
		"Records refused alone inside an accepted body (OTLP partial "
		"success).",
		metrics.http_records_refused) |
	    counters(out, "http_errors_total",
		"proto=http requests refused or cut short, by reason.",
		"reason", http_reason_label, metrics.http_errors, 1,
		HTTP_NREASONS) |
	    put(out,
		"# HELP logsink_http_requests_total proto=http requests "
		"answered, by endpoint and status code.\n"
		"# TYPE logsink_http_requests_total counter\n");
	for (e = 0; rc == 0 && e < METRICS_HTTP_ENDPOINTS; e++) {
		if (metrics.http_endpoints[e] == NULL)
			continue;
		for (i = 0; rc == 0 && i < HTTP_NSTATUS; i++)
			rc = put(out,
			    "logsink_http_requests_total{endpoint=\"%s\","
			    "code=\"%d\"} %" PRIu64 "\n",
			    metrics.http_endpoints[e], http_status_code(i),
			    metrics.http_requests[e][i]);
	}
	return rc;
}

static const char *
pause_label(int i)
{
	return metrics_pause_name((enum metrics_pause)i);
}

static const char *
drop_label(int i)
{
	(void)i;
	return "rate-limit";
}

/* Fair back-pressure and rate limits (listener_fair.c). */
static int
render_fair(struct buf *out)
{
	return counters(out, "clients_paused_total",
		   "Times a client connection was paused, by reason.", "reason",
		   pause_label, metrics.clients_paused, 0, METRICS_NPAUSES) |
	    counters(out, "lines_dropped_total",
		"Lines read and dropped on purpose, by reason.", "reason",
		drop_label, &metrics.rate_dropped, 0, 1) |
	    put(out,
		"# HELP logsink_rate_limit_paused_seconds_total Seconds "
		"connections spent paused by the rate limit (finished "
		"pauses).\n# TYPE logsink_rate_limit_paused_seconds_total "
		"counter\nlogsink_rate_limit_paused_seconds_total %.3f\n",
		(double)metrics.rate_paused_ms / 1000) |
	    gauge(out, "rate_limit_sources", "Sources in the rate-limit table.",
		(double)metrics.rate_sources) |
	    counter(out, "rate_limit_evictions_total",
		"Sources forgotten to make room (rate-limit-sources).",
		metrics.rate_evictions);
}

static int
render_sqlstates(struct buf *out)
{
	int i, rc;

	rc = put(out,
	    "# HELP logsink_db_errors_total Database errors by "
	    "SQLSTATE.\n# TYPE logsink_db_errors_total counter\n");
	for (i = 0; rc == 0 && i < METRICS_SQLSTATES; i++)
		if (metrics.sqlstates[i].code[0] != '\0')
			rc = put(out,
			    "logsink_db_errors_total{sqlstate=\"%s\"} %" PRIu64
			    "\n",
			    metrics.sqlstates[i].code, metrics.sqlstates[i].n);
	if (rc == 0 && metrics.sqlstate_other > 0)
		rc = put(out,
		    "logsink_db_errors_total{sqlstate=\"other\"} %" PRIu64 "\n",
		    metrics.sqlstate_other);
	return rc;
}

int
metrics_render(struct buf *out, const struct metrics_gauges *g)
{
	uint64_t bp_ms = metrics.backpressure_ms;
	int i, rc;

	if (buf_reserve(out, 8192) == -1)
		return -1;
	if (metrics.backpressure_since_ms != 0)
		bp_ms += (uint64_t)(g->now_ms - metrics.backpressure_since_ms);
	rc = render_counters(out) | render_sqlstates(out) | render_tls(out) |
	    render_proxy(out) | render_udp(out) | render_relp(out) |
	    render_forward(out) | render_loop_lag(out) | render_http(out) |
	    render_fair(out) |
	    counter(out, "backpressure_seconds_total",
		"Seconds spent with reading paused.", bp_ms / 1000) |
	    gauge(out, "connections_open", "Client connections open.",
		(double)metrics.connections_open) |
	    gauge(out, "queue_lines", "Lines queued, not yet committed.",
		(double)g->queue_lines) |
	    gauge(out, "queue_bytes", "Bytes held by the queue.",
		(double)g->queue_bytes) |
	    gauge(out, "queue_limit_bytes", "queue-bytes setting.",
		(double)g->queue_limit_bytes) |
	    gauge(out, "db_writable",
		"Database connections ready to write (0: none).",
		g->db_writable) |
	    histogram(out, "batch_lines", "Lines per committed COPY batch.",
		&metrics.batch_lines, batch_bounds, METRICS_BATCH_BUCKETS) |
	    histogram(out, "commit_seconds",
		"Seconds from COPY start to commit.", &metrics.commit_seconds,
		latency_bounds, METRICS_LATENCY_BUCKETS);
	if (rc == 0 && g->spool)
		rc = gauge(out, "spool_bytes", "Bytes in spool segments.",
			 (double)g->spool_bytes) |
		    gauge(out, "spool_segments", "Spool segment files.",
			(double)g->spool_segments) |
		    gauge(out, "spool_unread_bytes",
			"Spooled bytes not yet read back for the database.",
			(double)g->spool_unread_bytes) |
		    counter(out, "spool_corrupt_records_total",
			"Corrupt or torn spool data skipped (each range).",
			g->spool_corrupt_records) |
		    counter(out, "spool_corrupt_bytes_total",
			"Bytes of corrupt or torn spool data skipped.",
			g->spool_corrupt_bytes) |
		    counter(out, "spool_write_errors_total",
			"Failed spool writes (full disk, I/O errors).",
			g->spool_write_errors) |
		    counter(out, "spool_syncs_total",
			"Spool segment fdatasync()s done (on the sync thread).",
			g->spool_syncs) |
		    counter(out, "spool_sync_errors_total",
			"Failed spool fsync()/fdatasync()s: ack=spooled lines "
			"then wait for their commit until restart.",
			g->spool_sync_errors);
	if (rc == 0)
		rc = put(out,
		    "# HELP logsink_db_connections Database "
		    "connections by state.\n# TYPE "
		    "logsink_db_connections gauge\n");
	for (i = 0; rc == 0 && i < g->ndb_states; i++)
		rc = put(out, "logsink_db_connections{state=\"%s\"} %d\n",
		    g->db_state_names[i], g->db_state_counts[i]);
	return rc == 0 ? 0 : -1;
}
