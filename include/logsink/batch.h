/*
 * batch: a run of encoded COPY rows on its way to the database, with the
 * acknowledgement runs of the senders whose lines it holds.
 *
 * The struct is opaque: the queue (queue.c, queue_spool.c) fills, seals,
 * spills and frees batches and poison.c bisects them, through
 * src/batch_int.h; a writer reads one through the accessors below,
 * between queue_take() and queue_done()/queue_return().
 */
#ifndef LOGSINK_BATCH_H
#define LOGSINK_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch;

/* Rows off..off+len of a batch's COPY rows, holding lines rows. */
struct batch_range {
	size_t off, len;
	uint32_t lines;
};

/* A run of one sender's lines in a batch (ack=commit): its lines first ..
 * first + n - 1, counted from 0 per sender. */
struct batch_ack {
	void *ref; /* the sender's acknowledgement handle */
	uint64_t first;
	uint32_t n;
	bool at_spool; /* ack=spooled: credit once the lines are on disk */
};

/* Takes, credits or drops a run of ref's lines (queue_ack_cb in queue.h). */
typedef void (*batch_ack_cb)(void *ref, uint64_t first, uint32_t n);

/* What a writer reads of a batch: its encoded rows and line count, and
 * whether poison isolation has split it (poison.h). */
const char *batch_rows(const struct batch *b);
size_t batch_rows_len(const struct batch *b);
uint32_t batch_lines(const struct batch *b);
bool batch_is_split(const struct batch *b);

#endif
