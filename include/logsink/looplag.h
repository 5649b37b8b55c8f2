/*
 * looplag: how late the event loop runs a periodic timer.  main arms a
 * timer every LOOPLAG_INTERVAL_MS and passes each lateness (now minus the
 * time it was due) to looplag_observe(); anything that blocks the loop (a
 * slow fdatasync, a long callback) shows up as lateness, because the
 * timer cannot fire while another callback runs.
 *
 * Kept: a cumulative histogram (Prometheus logsink_loop_lag_seconds), the
 * largest lateness since start, and the last LOOPLAG_WINDOW samples, from
 * which the window's maximum and 99th percentile are computed on demand
 * (the stats: line, /metrics).  A pure leaf: no clock, no I/O.
 */
#ifndef LOGSINK_LOOPLAG_H
#define LOGSINK_LOOPLAG_H

#include <stddef.h>
#include <stdint.h>

/*
 * 20 ms: 50 samples a second resolve a stall of a few milliseconds and
 * cost one timer callback and one clock read each (nothing measurable
 * beside the per-line work); the 1024-sample window then spans about 20 s,
 * long enough for a stats line or a scrape every 15 s to see every stall.
 */
#define LOOPLAG_INTERVAL_MS 20
#define LOOPLAG_WINDOW      1024
#define LOOPLAG_BUCKETS     12

struct looplag {
	uint64_t counts[LOOPLAG_BUCKETS + 1]; /* per bucket; last: +Inf */
	uint64_t n;
	uint64_t sum_us;
	uint64_t max_us;                 /* since start */
	uint32_t window[LOOPLAG_WINDOW]; /* microseconds, capped */
	size_t wnext, wlen;
};

/* The buckets' upper bounds in seconds (LOOPLAG_BUCKETS of them). */
extern const double looplag_bounds[LOOPLAG_BUCKETS];

/* One timer run, late_us microseconds after it was due (negative: early,
 * counted as 0). */
void looplag_observe(struct looplag *l, int64_t late_us);
/* Over the last LOOPLAG_WINDOW samples (0 if none yet). */
uint64_t looplag_window_max_us(const struct looplag *l);
/* The 99th percentile (nearest rank) of the window, in microseconds. */
uint64_t looplag_window_p99_us(const struct looplag *l);

#endif
