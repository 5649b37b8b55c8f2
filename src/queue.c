/*
 * queue: bounded queue of COPY batches (see include/logsink/queue.h): the
 * FIFO, the encoder/sealer and the accounting.  The spool's side (spill,
 * replay, the retry list, the spilled acknowledgement runs) is in
 * queue_spool.c; what both share is in queue_int.h.
 */
#include <stdlib.h>

#include "logsink/clock.h"
#include "logsink/copyenc.h"
#include "logsink/queue.h"
#include "queue_int.h"

/*
 * First allocation of a batch's row buffer; it doubles from there.  Small,
 * so that a small queue-bytes is not filled by empty buffers.  Under load
 * a new batch starts with the size the last sealed one grew to, which it
 * would reach anyway: the doublings' copies (4 % of the daemon's
 * instructions, docs/performance.md) are saved.
 */
#define BATCH_INITIAL_BYTES 4096

struct queue *
queue_new(size_t limit_bytes, int resume_percent, uint32_t batch_lines,
    size_t batch_bytes)
{
	struct queue *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->limit = limit_bytes;
	q->resume_percent = resume_percent;
	q->batch_lines = batch_lines;
	q->batch_bytes = batch_bytes;
	return q;
}

void
queue_free(struct queue *q)
{
	struct batch *b;

	if (q == NULL)
		return;
	while ((b = q->head) != NULL) {
		q->head = b->next;
		batch_free(b, q->ack_drop);
	}
	if (q->open != NULL)
		batch_free(q->open, q->ack_drop);
	queue_spool_free(q);
	free(q);
}

void
queue_set_callbacks(
    struct queue *q, queue_cb on_data, queue_cb on_space, void *arg)
{
	q->on_data = on_data;
	q->on_space = on_space;
	q->cb_arg = arg;
}

void
queue_set_ack_callbacks(
    struct queue *q, queue_ack_cb take, queue_ack_cb credit, queue_ack_cb drop)
{
	q->ack_take = take;
	q->ack_credit = credit;
	q->ack_drop = drop;
}

void
queue_set_source_callback(struct queue *q, queue_src_cb release, void *arg)
{
	q->src_release = release;
	q->src_arg = arg;
}

void
queue_source_begin(struct queue *q, uint64_t src)
{
	q->src = src;
	q->src_mark = q->open != NULL ? q->open->rows.len : 0;
	q->src_round = 0;
}

/*
 * Attributes the open batch's rows since the mark to the round's source.
 * Called before the open batch leaves (sealed, spilled) and at the end of
 * a round.  Bytes that could not be recorded (ENOMEM) are not counted:
 * never attributed, never released.
 */
void
queue_src_flush(struct queue *q)
{
	struct batch *b = q->open;
	size_t n;

	if (q->src == 0 || b == NULL)
		return;
	n = b->rows.len - q->src_mark;
	q->src_mark = b->rows.len;
	if (n > 0 && batch_add_src(b, q->src, n) == 0)
		q->src_round += n;
}

size_t
queue_source_end(struct queue *q)
{
	size_t n;

	queue_src_flush(q);
	q->src = 0;
	n = q->src_round;
	q->src_round = 0;
	return n;
}

/* b's rows leave memory: their sources get their bytes back. */
void
queue_src_release(struct queue *q, struct batch *b)
{
	size_t i;

	for (i = 0; i < b->nsrcs && q->src_release != NULL; i++)
		q->src_release(q->src_arg, b->srcs[i].src, b->srcs[i].bytes);
	b->nsrcs = 0;
}

void
queue_set_batch_limits(
    struct queue *q, uint32_t batch_lines, size_t batch_bytes)
{
	q->batch_lines = batch_lines;
	q->batch_bytes = batch_bytes;
}

static void
push_tail(struct queue *q, struct batch *b)
{
	b->next = NULL;
	if (q->tail != NULL)
		q->tail->next = b;
	else
		q->head = b;
	q->tail = b;
}

/*
 * Seals the open batch: it becomes the newest of the waiting ones, or goes
 * to the spool at once if it holds ack=spooled lines.
 */
void
queue_seal(struct queue *q)
{
	struct batch *b = q->open;

	queue_src_flush(q);
	q->src_mark = 0; /* the next open batch starts empty */
	q->last_cap = b->rows.cap;
	q->open = NULL;
	if (b->spool_ack_lines > 0 && q->spool != NULL &&
	    queue_spill_batch(q, b))
		return;
	push_tail(q, b);
}

int
queue_append(struct queue *q, const struct record *rec, size_t *replaced)
{
	return queue_append_acked(q, rec, replaced, NULL, 0, false);
}

int
queue_append_acked(struct queue *q, const struct record *rec, size_t *replaced,
    void *ack_ref, uint64_t seq, bool at_spool)
{
	struct batch *b = q->open;
	bool first = false;
	size_t len;
	int added = 0;

	if (b == NULL) {
		if ((b = batch_new(q->last_cap > BATCH_INITIAL_BYTES
			     ? q->last_cap
			     : BATCH_INITIAL_BYTES)) == NULL)
			return -1;
		q->open = b;
		q->open_since_ms = clock_mono_ms();
		first = true;
	}
	len = b->rows.len;
	if (copyenc_row(&b->rows, rec, replaced) == -1) {
		queue_charge(q, b);
		return -1;
	}
	if (ack_ref != NULL &&
	    (added = batch_note_ack(b, ack_ref, seq, at_spool)) == -1) {
		b->rows.len = len; /* the row is not queued after all */
		return -1;
	}
	if (added == 1)
		q->ack_take(ack_ref, seq, 0);
	if (ack_ref != NULL && at_spool)
		b->spool_ack_lines++;
	b->lines++;
	q->lines++;
	queue_charge(q, b);
	if (b->lines >= q->batch_lines || b->rows.len >= q->batch_bytes) {
		queue_seal(q);
		first = true;
	}
	if (q->full && q->spool != NULL)
		queue_spill_while_full(q);
	if (first && q->on_data != NULL)
		q->on_data(q->cb_arg);
	return 0;
}

struct batch *
queue_unlink_head(struct queue *q)
{
	struct batch *b = q->head;

	if (b != NULL) {
		q->head = b->next;
		if (q->head == NULL)
			q->tail = NULL;
		b->next = NULL;
	}
	return b;
}

struct batch *
queue_take(struct queue *q, bool flush)
{
	struct batch *b;

	if (q->spool != NULL && (b = queue_spool_take(q)) != NULL)
		return b;
	if (q->head == NULL && flush && q->open != NULL && q->open->lines > 0)
		queue_seal(q);
	return queue_unlink_head(q);
}

void
queue_return(struct queue *q, struct batch *b)
{
	if (b->from_spool) {
		queue_spool_return(q, b);
		return;
	}
	b->next = q->head;
	q->head = b;
	if (q->tail == NULL)
		q->tail = b;
}

void
queue_done(struct queue *q, struct batch *b)
{
	size_t i;

	q->bytes -= b->charged;
	q->lines -= b->lines;
	queue_src_release(q, b);
	for (i = 0; i < b->nacks; i++)
		q->ack_credit(b->acks[i].ref, b->acks[i].first, b->acks[i].n);
	b->nacks = 0;
	if (b->from_spool)
		queue_spool_done(q, b);
	batch_free(b, q->ack_drop);
	queue_maybe_resume(q);
}

/* Below the resume level after having been full: tell the owner. */
void
queue_maybe_resume(struct queue *q)
{
	if (q->full &&
	    (uint64_t)q->bytes * 100 <
		(uint64_t)q->limit * (uint64_t)q->resume_percent) {
		q->full = false;
		if (q->on_space != NULL)
			q->on_space(q->cb_arg);
	}
}

bool
queue_full(const struct queue *q)
{
	return q->full;
}

bool
queue_has_sealed(const struct queue *q)
{
	return q->head != NULL || (q->spool != NULL && queue_spool_ready(q));
}

uint32_t
queue_open_lines(const struct queue *q)
{
	return q->open != NULL ? q->open->lines : 0;
}

int64_t
queue_open_since_ms(const struct queue *q)
{
	return q->open_since_ms;
}

size_t
queue_bytes(const struct queue *q)
{
	return q->bytes;
}

uint64_t
queue_lines(const struct queue *q)
{
	return q->lines;
}

size_t
queue_limit(const struct queue *q)
{
	return q->limit;
}
