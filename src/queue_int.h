/*
 * queue internals shared by queue.c (the FIFO, the encoder/sealer and the
 * accounting) and queue_spool.c (spill to and replay from the spool, the
 * retry list of replayed batches, the spilled acknowledgement runs).  Not
 * part of the public API.
 */
#ifndef LOGSINK_QUEUE_INT_H
#define LOGSINK_QUEUE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/queue.h"
#include "batch_int.h"

struct ack_spill;

/* Owned by main; freed by queue_free(). */
struct queue {
	struct batch *head, *tail; /* sealed, oldest first */
	struct batch *open;        /* being filled, or NULL */
	int64_t open_since_ms;
	size_t last_cap; /* row buffer size of the last sealed batch */
	size_t bytes, limit;
	int resume_percent;
	uint64_t lines;
	uint32_t batch_lines;
	size_t batch_bytes;
	bool full;
	queue_ack_cb ack_take, ack_credit, ack_drop;
	queue_cb on_data, on_space;
	void *cb_arg;
	/* Per-source accounting (queue_source_begin()): the round's source
	 * (0: none), the open batch's rows.len already attributed, and the
	 * bytes attributed in this round. */
	uint64_t src;
	size_t src_mark, src_round;
	queue_src_cb src_release;
	void *src_arg;
	/* Spool (optional; queue_spool.c). */
	struct spool *spool;
	struct batch *retry; /* replayed batches a writer gave back */
	/* Runs of spilled batches: made by the first spill, freed by
	 * queue_spool_free(). */
	struct ack_spill *sacks;
	size_t sacks_charged;   /* ack_spill_bytes() counted in bytes */
	int64_t spool_retry_ms; /* refused: not before this time */
	bool no_replay;
	int64_t spool_warned_ms;
};

/*
 * Memory accounting follows the buffers' real size, not their fill.
 * Once per appended line, so inline.
 */
static inline void
queue_charge(struct queue *q, struct batch *b)
{
	size_t now = b->rows.cap + sizeof(*b);

	q->bytes += now - b->charged;
	b->charged = now;
	if (q->bytes >= q->limit)
		q->full = true;
}

/* queue.c */
void queue_seal(struct queue *q);
void queue_src_flush(struct queue *q);
void queue_src_release(struct queue *q, struct batch *b);
struct batch *queue_unlink_head(struct queue *q);
void queue_maybe_resume(struct queue *q);

/* queue_spool.c */
bool queue_spill_batch(struct queue *q, struct batch *b);
void queue_spill_while_full(struct queue *q);
struct batch *queue_spool_take(struct queue *q);
void queue_spool_return(struct queue *q, struct batch *b);
void queue_spool_done(struct queue *q, struct batch *b);
bool queue_spool_ready(const struct queue *q);
void queue_spool_free(struct queue *q);

#endif
