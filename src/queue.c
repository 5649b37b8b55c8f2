/*
 * queue: bounded queue of COPY batches (see include/logsink/queue.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/clock.h"
#include "logsink/copyenc.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/queue.h"
#include "batch_int.h"

/*
 * First allocation of a batch's row buffer; it doubles from there.  Small,
 * so that a small queue-bytes is not filled by empty buffers.  Under load
 * a new batch starts with the size the last sealed one grew to, which it
 * would reach anyway: the doublings' copies (4 % of the daemon's
 * instructions, docs/performance.md) are saved.
 */
#define BATCH_INITIAL_BYTES 4096
/* After the spool refused a batch (full, or a write error), wait this long
 * before trying again; and log that at most this often. */
#define SPOOL_RETRY_MS      1000
#define SPOOL_WARN_MS       10000

/* An acknowledgement run of a batch that went to the spool. */
struct spilled_ack {
	struct spool_pos pos; /* the record holding the run */
	struct batch_ack a;
};

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
	/* Spool (optional). */
	struct spool *spool;
	struct batch *retry;       /* replayed batches a writer gave back */
	struct spilled_ack *sacks; /* by record position, oldest first */
	size_t sacks_head, nsacks, capsacks;
	int64_t spool_retry_ms; /* refused: not before this time */
	bool no_replay;
	int64_t spool_warned_ms;
};

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
	size_t i;

	if (q == NULL)
		return;
	while ((b = q->head) != NULL) {
		q->head = b->next;
		batch_free(b, q->ack_drop);
	}
	if (q->open != NULL)
		batch_free(q->open, q->ack_drop);
	while ((b = q->retry) != NULL) {
		q->retry = b->next;
		batch_free(b, q->ack_drop);
	}
	for (i = q->sacks_head; i < q->nsacks; i++)
		q->ack_drop(
		    q->sacks[i].a.ref, q->sacks[i].a.first, q->sacks[i].a.n);
	free(q->sacks);
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

static bool spill_batch(struct queue *q, struct batch *b);
static struct batch *replay(struct queue *q);
static void maybe_resume(struct queue *q);

/*
 * Seals the open batch: it becomes the newest of the waiting ones, or goes
 * to the spool at once if it holds ack=spooled lines.
 */
static void
seal(struct queue *q)
{
	struct batch *b = q->open;

	q->last_cap = b->rows.cap;
	q->open = NULL;
	if (b->spool_ack_lines > 0 && q->spool != NULL && spill_batch(q, b))
		return;
	push_tail(q, b);
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

static void spill_while_full(struct queue *q);

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
		charge(q, b);
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
	charge(q, b);
	if (b->lines >= q->batch_lines || b->rows.len >= q->batch_bytes) {
		seal(q);
		first = true;
	}
	if (q->full && q->spool != NULL)
		spill_while_full(q);
	if (first && q->on_data != NULL)
		q->on_data(q->cb_arg);
	return 0;
}

struct batch *
queue_take(struct queue *q, bool flush)
{
	struct batch *b;

	if ((b = q->retry) != NULL) {
		q->retry = b->next;
		b->next = NULL;
		return b;
	}
	if (q->spool != NULL && !q->no_replay && (b = replay(q)) != NULL)
		return b;
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
	if (b->from_spool) {
		b->next = q->retry;
		q->retry = b;
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
	for (i = 0; i < b->nacks; i++)
		q->ack_credit(b->acks[i].ref, b->acks[i].first, b->acks[i].n);
	b->nacks = 0;
	if (b->from_spool)
		spool_done(q->spool, &b->spool_pos);
	batch_free(b, q->ack_drop);
	maybe_resume(q);
}

/* Below the resume level after having been full: tell the owner. */
static void
maybe_resume(struct queue *q)
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
	return q->head != NULL || q->retry != NULL ||
	    (q->spool != NULL && !q->no_replay && spool_has_unread(q->spool));
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

/* --- the spool ---------------------------------------------------------- */

void
queue_set_spool(struct queue *q, struct spool *sp)
{
	q->spool = sp;
}

void
queue_stop_replay(struct queue *q)
{
	q->no_replay = true;
}

static int
pos_cmp(const struct spool_pos *a, const struct spool_pos *b)
{
	if (a->seg != b->seg)
		return a->seg < b->seg ? -1 : 1;
	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return 0;
}

static bool
over_resume(const struct queue *q)
{
	return (uint64_t)q->bytes * 100 >=
	    (uint64_t)q->limit * (uint64_t)q->resume_percent;
}

/* Room for n more spilled acks; compacts the consumed front first. */
static int
sacks_reserve(struct queue *q, size_t n)
{
	struct spilled_ack *p;
	size_t cap;

	if (q->sacks_head > 0 && q->sacks_head * 2 >= q->nsacks) {
		memmove(q->sacks, q->sacks + q->sacks_head,
		    (q->nsacks - q->sacks_head) * sizeof(*q->sacks));
		q->nsacks -= q->sacks_head;
		q->sacks_head = 0;
	}
	if (q->capsacks - q->nsacks >= n)
		return 0;
	cap = q->capsacks ? q->capsacks : 64;
	while (cap - q->nsacks < n)
		cap *= 2;
	if ((p = reallocarray(q->sacks, cap, sizeof(*p))) == NULL)
		return -1;
	q->sacks = p;
	q->capsacks = cap;
	return 0;
}

/*
 * Writes a batch (not in any list) to the spool and frees its memory; its
 * acknowledgement runs wait in q->sacks.  False if the spool refused it:
 * the batch is untouched.
 */
static bool
spill_batch(struct queue *q, struct batch *b)
{
	struct spool_pos pos;
	int64_t now = clock_mono_ms();
	size_t i;
	int e;

	if (now < q->spool_retry_ms || sacks_reserve(q, b->nacks) == -1)
		return false;
	if (spool_append(q->spool, b->rows.data, b->rows.len, b->lines, &pos) ==
	    -1) {
		e = errno;
		q->spool_retry_ms = now + SPOOL_RETRY_MS;
		metrics.spool_refused++;
		if (now - q->spool_warned_ms >= SPOOL_WARN_MS ||
		    q->spool_warned_ms == 0) {
			log_warnx("spool: cannot write to %s: %s; lines stay "
				  "in memory (reading stops when it is full) "
				  "and the spool is retried every %d ms",
			    spool_dir(q->spool),
			    e == ENOSPC ? "full (spool-max-bytes reached, "
					  "or no space left on the device)"
					: strerror(e),
			    SPOOL_RETRY_MS);
			q->spool_warned_ms = now;
		}
		return false;
	}
	for (i = 0; i < b->nacks; i++) {
		q->sacks[q->nsacks].pos = pos;
		q->sacks[q->nsacks++].a = b->acks[i];
	}
	q->bytes += b->nacks * sizeof(struct spilled_ack);
	b->nacks = 0;
	q->bytes -= b->charged;
	q->lines -= b->lines;
	metrics.lines_spooled += b->lines;
	batch_free(b, q->ack_drop);
	return true;
}

static struct batch *
unlink_head(struct queue *q)
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

/* Moves the oldest batches to the spool until below the resume level. */
static void
spill_while_full(struct queue *q)
{
	struct batch *b;

	while (over_resume(q)) {
		if ((b = unlink_head(q)) != NULL) {
			if (!spill_batch(q, b)) {
				queue_return(q, b);
				break;
			}
		} else if (q->open != NULL && q->open->lines > 0) {
			b = q->open;
			q->open = NULL;
			if (!spill_batch(q, b)) {
				q->open = b;
				break;
			}
		} else {
			break;
		}
	}
	maybe_resume(q);
}

/* Gives b the acknowledgement runs kept for its record. */
static void
attach_sacks(struct queue *q, struct batch *b)
{
	struct spilled_ack *e;
	int c;

	while (q->sacks_head < q->nsacks) {
		e = &q->sacks[q->sacks_head];
		c = pos_cmp(&e->pos, &b->spool_pos);
		if (c > 0)
			break;
		if (c == 0) {
			if (batch_push_ack(b, &e->a) == -1)
				break; /* kept: dropped with a later record */
		} else {
			/* Its record was skipped as corrupt. */
			q->ack_drop(e->a.ref, e->a.first, e->a.n);
		}
		q->sacks_head++;
		q->bytes -= sizeof(*e);
	}
}

/* The next spooled record as a batch, charged to memory. */
static struct batch *
replay(struct queue *q)
{
	struct batch *b;
	uint32_t lines;
	int r;

	if (!spool_has_unread(q->spool))
		return NULL;
	if ((b = batch_new(0)) == NULL)
		return NULL;
	if ((r = spool_read(q->spool, &b->rows, &lines, &b->spool_pos)) != 1) {
		if (r == -1)
			log_warnx("spool: out of memory reading a record");
		batch_free(b, q->ack_drop);
		return NULL;
	}
	b->from_spool = true;
	b->lines = lines;
	q->lines += lines;
	metrics.lines_replayed += lines;
	charge(q, b);
	attach_sacks(q, b);
	return b;
}

/* Credits the ack=spooled runs of records now durable. */
static void
credit_synced(struct queue *q, const struct spool_pos *synced)
{
	struct spilled_ack *e;
	size_t i, j;

	for (i = j = q->sacks_head; i < q->nsacks; i++) {
		e = &q->sacks[i];
		if (e->a.at_spool && pos_cmp(&e->pos, synced) < 0) {
			q->ack_credit(e->a.ref, e->a.first, e->a.n);
			q->bytes -= sizeof(*e);
			continue;
		}
		q->sacks[j++] = *e;
	}
	q->nsacks = j;
}

void
queue_tick(struct queue *q)
{
	struct spool_pos synced;

	if (q->spool == NULL)
		return;
	if (q->open != NULL && q->open->spool_ack_lines > 0) {
		seal(q);
		if (q->head != NULL && q->on_data != NULL)
			q->on_data(q->cb_arg);
	}
	if (q->full)
		spill_while_full(q);
	if (spool_sync(q->spool, &synced) == 0)
		credit_synced(q, &synced);
	spool_save_progress(q->spool);
	maybe_resume(q);
}

uint64_t
queue_spill_all(struct queue *q)
{
	struct spool_pos synced;
	struct batch *b;
	uint64_t left = 0;

	if (q->open != NULL && q->open->lines > 0)
		seal(q);
	if (q->spool != NULL) {
		q->spool_retry_ms = 0;
		while ((b = unlink_head(q)) != NULL) {
			if (!spill_batch(q, b)) {
				queue_return(q, b);
				break;
			}
		}
		if (spool_sync(q->spool, &synced) == 0)
			credit_synced(q, &synced);
	}
	for (b = q->head; b != NULL; b = b->next)
		left += b->lines;
	return left;
}
