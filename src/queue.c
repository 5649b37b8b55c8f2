/*
 * queue: bounded queue of COPY batches (see include/logsink/queue.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "logsink/copyenc.h"
#include "logsink/queue.h"

/*
 * First allocation of a batch's row buffer; it doubles from there.  Small,
 * so that a small queue-bytes is not filled by empty buffers.  Under load
 * a new batch starts with the size the last sealed one grew to, which it
 * would reach anyway: the doublings' copies (4 % of the daemon's
 * instructions, docs/performance.md) are saved.
 */
#define BATCH_INITIAL_BYTES 4096

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
};

int64_t
queue_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Frees a batch; senders of runs still listed get no credit. */
static void
batch_free(struct queue *q, struct batch *b)
{
	size_t i;

	for (i = 0; i < b->nacks; i++)
		q->ack_drop(b->acks[i].ref, b->acks[i].first, b->acks[i].n);
	free(b->acks);
	free(b->pending);
	buf_free(&b->rows);
	free(b);
}

void
queue_free(struct queue *q)
{
	struct batch *b;

	if (q == NULL)
		return;
	while ((b = q->head) != NULL) {
		q->head = b->next;
		batch_free(q, b);
	}
	if (q->open != NULL)
		batch_free(q, q->open);
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

/* Counts one more line of ref in b: extends the last run or adds one. */
static int
note_ack(struct batch *b, void *ref, uint64_t seq)
{
	struct batch_ack *a;
	size_t cap;

	a = b->nacks > 0 ? &b->acks[b->nacks - 1] : NULL;
	if (a != NULL && a->ref == ref && a->first + a->n == seq) {
		a->n++;
		return 0;
	}
	if (b->nacks == b->capacks) {
		cap = b->capacks ? b->capacks * 2 : 8;
		if ((a = reallocarray(b->acks, cap, sizeof(*a))) == NULL)
			return -1;
		b->acks = a;
		b->capacks = cap;
	}
	b->acks[b->nacks].ref = ref;
	b->acks[b->nacks].first = seq;
	b->acks[b->nacks++].n = 1;
	return 1;
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

/* Seals the open batch: it becomes the newest of the waiting ones. */
static void
seal(struct queue *q)
{
	q->last_cap = q->open->rows.cap;
	push_tail(q, q->open);
	q->open = NULL;
}

/* Memory accounting follows the buffers' real size, not their fill. */
static void
charge(struct queue *q, struct batch *b)
{
	size_t now = b->rows.cap + sizeof(*b);

	q->bytes += now - b->charged;
	b->charged = now;
	if (q->bytes >= q->limit)
		q->full = true;
}

int
queue_append(struct queue *q, const struct record *rec, size_t *replaced)
{
	return queue_append_acked(q, rec, replaced, NULL, 0);
}

int
queue_append_acked(struct queue *q, const struct record *rec, size_t *replaced,
    void *ack_ref, uint64_t seq)
{
	struct batch *b = q->open;
	bool first = false;
	size_t len;
	int added = 0;

	if (b == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL)
			return -1;
		if (buf_reserve(&b->rows,
			q->last_cap > BATCH_INITIAL_BYTES
			    ? q->last_cap
			    : BATCH_INITIAL_BYTES) == -1) {
			free(b);
			return -1;
		}
		q->open = b;
		q->open_since_ms = queue_now_ms();
		first = true;
	}
	len = b->rows.len;
	if (copyenc_row(&b->rows, rec, replaced) == -1) {
		charge(q, b);
		return -1;
	}
	if (ack_ref != NULL && (added = note_ack(b, ack_ref, seq)) == -1) {
		b->rows.len = len; /* the row is not queued after all */
		return -1;
	}
	if (added == 1)
		q->ack_take(ack_ref, seq, 0);
	b->lines++;
	q->lines++;
	charge(q, b);
	if (b->lines >= q->batch_lines || b->rows.len >= q->batch_bytes) {
		seal(q);
		first = true;
	}
	if (first && q->on_data != NULL)
		q->on_data(q->cb_arg);
	return 0;
}

struct batch *
queue_take(struct queue *q, bool flush)
{
	struct batch *b;

	if (q->head == NULL && flush && q->open != NULL && q->open->lines > 0)
		seal(q);
	if ((b = q->head) == NULL)
		return NULL;
	q->head = b->next;
	if (q->head == NULL)
		q->tail = NULL;
	b->next = NULL;
	return b;
}

void
queue_return(struct queue *q, struct batch *b)
{
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
	for (i = 0; i < b->nacks; i++)
		q->ack_credit(b->acks[i].ref, b->acks[i].first, b->acks[i].n);
	b->nacks = 0;
	batch_free(q, b);
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
	return q->head != NULL;
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
