/*
 * looplag: lateness of the loop's periodic timer (see
 * include/logsink/looplag.h).
 */
#include <stdlib.h>
#include <string.h>

#include "logsink/looplag.h"

/* 1 ms to 5 s: below 1 ms is a healthy loop; a stall of seconds is a
 * blocked one. */
const double looplag_bounds[LOOPLAG_BUCKETS] = { 0.001, 0.002, 0.005, 0.01,
	0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5 };

void
looplag_observe(struct looplag *l, int64_t late_us)
{
	uint64_t us = late_us > 0 ? (uint64_t)late_us : 0;
	int i;

	for (i = 0; i < LOOPLAG_BUCKETS && (double)us > looplag_bounds[i] * 1e6;
	     i++)
		;
	l->counts[i]++;
	l->n++;
	l->sum_us += us;
	if (us > l->max_us)
		l->max_us = us;
	l->window[l->wnext] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	l->wnext = (l->wnext + 1) % LOOPLAG_WINDOW;
	if (l->wlen < LOOPLAG_WINDOW)
		l->wlen++;
}

uint64_t
looplag_window_max_us(const struct looplag *l)
{
	uint32_t m = 0;
	size_t i;

	for (i = 0; i < l->wlen; i++)
		if (l->window[i] > m)
			m = l->window[i];
	return m;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/*
 * Nearest rank: the smallest sample with at least 99 % of the window at
 * or below it.  The window is sorted in a copy (4 KiB, on the stack): at
 * most once per stats line or scrape.
 */
uint64_t
looplag_window_p99_us(const struct looplag *l)
{
	uint32_t v[LOOPLAG_WINDOW];
	size_t rank;

	if (l->wlen == 0)
		return 0;
	memcpy(v, l->window, l->wlen * sizeof(v[0]));
	qsort(v, l->wlen, sizeof(v[0]), cmp_u32);
	rank = (l->wlen * 99 + 99) / 100; /* ceil(0.99 n), 1-based */
	return v[rank - 1];
}
