/*
 * batch internals (include/logsink/batch.h is the public side), shared by
 * batch.c (life cycle, ack runs, accessors), queue.c and queue_spool.c
 * (filling, sealing, spilling, replay) and poison.c (the pending-range
 * stack).  Not part of the public API.
 */
#ifndef LOGSINK_BATCH_INT_H
#define LOGSINK_BATCH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/batch.h"
#include "logsink/buf.h"
#include "logsink/spool.h"

/*
 * Owned by the queue, or by a writer in between queue_take() and
 * queue_done()/queue_return(); made by batch_new(), freed by batch_free().
 */
struct batch {
	struct batch *next; /* the queue's lists */
	struct buf rows; /* COPY rows (copyenc binary format), one per line */
	uint32_t lines;
	size_t charged; /* bytes counted against the queue limit (queue.c) */
	struct batch_ack *acks;
	size_t nacks, capacks;
	/* Which source (queue_source_begin()) appended how many row bytes,
	 * in runs; released when the rows leave memory. */
	struct batch_src *srcs;
	size_t nsrcs, capsrcs;
	/* Poison-row isolation (poison.c): rows still to send, as a stack of
	 * ranges; empty while the batch is sent whole. */
	struct batch_range *pending;
	size_t npending, cappending;
	uint32_t spool_ack_lines; /* lines of ack=spooled senders */
	bool from_spool;          /* replayed: the record at spool_pos */
	struct spool_pos spool_pos;
};

/* A run of rows one source appended (queue.h, queue_src_cb). */
struct batch_src {
	uint64_t src;
	size_t bytes;
};

/* An empty batch whose row buffer has room for rows_bytes (0: none yet);
 * NULL if memory ran out. */
struct batch *batch_new(size_t rows_bytes);
/* Frees b; the senders of runs still listed get drop (no credit). */
void batch_free(struct batch *b, batch_ack_cb drop);
/* Appends a run to b's acknowledgement runs; -1 if memory ran out. */
int batch_push_ack(struct batch *b, const struct batch_ack *run)
    __attribute__((warn_unused_result));

/* Adds bytes of src's rows to b (extending its last run); -1 if memory
 * ran out (the bytes are then not attributed). */
int batch_add_src(struct batch *b, uint64_t src, size_t bytes)
    __attribute__((warn_unused_result));

/*
 * Counts one more line of ref in b (once per acknowledged line, so
 * inline): extends the last run (0) or adds one (1); -1 if memory ran
 * out.
 */
static inline int
batch_note_ack(struct batch *b, void *ref, uint64_t seq, bool at_spool)
{
	struct batch_ack *a, run = { ref, seq, 1, at_spool };

	a = b->nacks > 0 ? &b->acks[b->nacks - 1] : NULL;
	if (a != NULL && a->ref == ref && a->first + a->n == seq) {
		a->n++;
		return 0;
	}
	return batch_push_ack(b, &run) == -1 ? -1 : 1;
}

#endif
