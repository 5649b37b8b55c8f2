/*
 * ratelog: a warning at most once per interval for one kind of event;
 * the events in between are counted and the next line reports them.
 */
#ifndef LOGSINK_RATELOG_H
#define LOGSINK_RATELOG_H

#include <stdbool.h>
#include <stdint.h>

#define RATELOG_INTERVAL_MS 10000

struct ratelog {
	int64_t logged_ms; /* when the last line was written; 0: never */
	uint64_t unlogged; /* events since then */
};

/*
 * Counts n events at now (monotonic ms).  True when a line is due: *total
 * is then the events since the last line, these included, and the count
 * starts again.
 */
static inline bool
ratelog_due(struct ratelog *r, int64_t now, uint64_t n, uint64_t *total)
{
	r->unlogged += n;
	if (r->logged_ms != 0 && now - r->logged_ms < RATELOG_INTERVAL_MS)
		return false;
	*total = r->unlogged;
	r->unlogged = 0;
	r->logged_ms = now;
	return true;
}

#endif
