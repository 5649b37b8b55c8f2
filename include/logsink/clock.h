/*
 * clock: the daemon's two clocks.  Monotonic time measures intervals
 * (timeouts, flush deadlines, rate-limited warnings); real time stamps
 * received lines (the received_at column).  Leaf module.
 */
#ifndef LOGSINK_CLOCK_H
#define LOGSINK_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds and in microseconds. */
int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
/* CLOCK_REALTIME in microseconds since the Unix epoch (UTC). */
int64_t clock_real_us(void);

#endif
