/*
 * queue_spool: the queue's side of the disk spool (see
 * include/logsink/queue.h): a full queue spills its oldest batches to the
 * spool, batches of ack=spooled lines go there when sealed, writers take
 * spooled records back (oldest first) before the batches in memory, and
 * the acknowledgement runs of spilled batches wait in an ack_spill ledger
 * (charged against the queue limit) until their record is replayed or
 * synced.
 */
#include <errno.h>
#include <string.h>

#include "logsink/ack_spill.h"
#include "logsink/clock.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/queue.h"
#include "logsink/spool.h"
#include "queue_int.h"

/* After the spool refused a batch (full, or a write error), wait this long
 * before trying again; and log that at most this often. */
#define SPOOL_RETRY_MS 1000
#define SPOOL_WARN_MS  10000

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

/* Frees the retry list and the ledger; their senders get no credit. */
void
queue_spool_free(struct queue *q)
{
	struct batch *b;

	while ((b = q->retry) != NULL) {
		q->retry = b->next;
		batch_free(b, q->ack_drop);
	}
	ack_spill_free(q->sacks, q->ack_drop);
	q->sacks = NULL;
}

static bool
over_resume(const struct queue *q)
{
	return (uint64_t)q->bytes * 100 >=
	    (uint64_t)q->limit * (uint64_t)q->resume_percent;
}

/* The ledger's memory counts against the limit, as batches do. */
static void
charge_sacks(struct queue *q)
{
	size_t now = ack_spill_bytes(q->sacks);

	q->bytes += now - q->sacks_charged;
	q->sacks_charged = now;
}

/* The spool refused a batch: retry later, and say so now and then. */
static void
spool_refused(struct queue *q, int64_t now, int e)
{
	q->spool_retry_ms = now + SPOOL_RETRY_MS;
	metrics.spool_refused++;
	if (now - q->spool_warned_ms < SPOOL_WARN_MS && q->spool_warned_ms != 0)
		return;
	log_warnx("spool: cannot write to %s: %s; lines stay in memory "
		  "(reading stops when it is full) and the spool is retried "
		  "every %d ms",
	    spool_dir(q->spool),
	    e == ENOSPC ? "full (spool-max-bytes reached, or no space left "
			  "on the device)"
			: strerror(e),
	    SPOOL_RETRY_MS);
	q->spool_warned_ms = now;
}

/*
 * Writes a batch (not in any list) to the spool and frees its memory; its
 * acknowledgement runs wait in q->sacks.  False if the spool refused it:
 * the batch is untouched.
 */
bool
queue_spill_batch(struct queue *q, struct batch *b)
{
	struct spool_pos pos;
	int64_t now = clock_mono_ms();
	size_t i;

	if (now < q->spool_retry_ms)
		return false;
	if (q->sacks == NULL && (q->sacks = ack_spill_new()) == NULL)
		return false;
	if (ack_spill_reserve(q->sacks, b->nacks) == -1)
		return false;
	if (spool_append(q->spool, b->rows.data, b->rows.len, b->lines, &pos) ==
	    -1) {
		spool_refused(q, now, errno);
		return false;
	}
	for (i = 0; i < b->nacks; i++)
		ack_spill_push(q->sacks, &pos, &b->acks[i]);
	charge_sacks(q);
	b->nacks = 0;
	queue_src_release(q, b);
	q->bytes -= b->charged;
	q->lines -= b->lines;
	metrics.lines_spooled += b->lines;
	batch_free(b, q->ack_drop);
	return true;
}

/* Moves the oldest batches to the spool until below the resume level. */
void
queue_spill_while_full(struct queue *q)
{
	struct batch *b;

	while (over_resume(q)) {
		if ((b = queue_unlink_head(q)) != NULL) {
			if (!queue_spill_batch(q, b)) {
				queue_return(q, b);
				break;
			}
		} else if (q->open != NULL && q->open->lines > 0) {
			queue_src_flush(q);
			b = q->open;
			q->open = NULL;
			if (!queue_spill_batch(q, b)) {
				q->open = b;
				break;
			}
			q->src_mark = 0; /* the next open batch starts empty */
		} else {
			break;
		}
	}
	queue_maybe_resume(q);
}

/* ack_spill_give_cb: a kept run goes back into its replayed batch. */
static int
give_run(void *arg, const struct batch_ack *run)
{
	return batch_push_ack(arg, run);
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
	queue_charge(q, b);
	if (q->sacks != NULL) {
		ack_spill_attach(
		    q->sacks, &b->spool_pos, give_run, b, q->ack_drop);
		charge_sacks(q);
	}
	return b;
}

/* A replayed batch a writer gave back, else the next spooled record. */
struct batch *
queue_spool_take(struct queue *q)
{
	struct batch *b;

	if ((b = q->retry) != NULL) {
		q->retry = b->next;
		b->next = NULL;
		return b;
	}
	if (q->no_replay)
		return NULL;
	return replay(q);
}

/* A replayed batch is stored: the ack=spooled runs of its record that no
 * sync credited yet are credited now, and the record is done. */
void
queue_spool_done(struct queue *q, struct batch *b)
{
	if (q->sacks != NULL) {
		ack_spill_done(q->sacks, &b->spool_pos, q->ack_credit);
		charge_sacks(q);
	}
	spool_done(q->spool, &b->spool_pos);
}

/* A replayed batch failed: it is the next one taken. */
void
queue_spool_return(struct queue *q, struct batch *b)
{
	b->next = q->retry;
	q->retry = b;
}

bool
queue_spool_ready(const struct queue *q)
{
	return q->retry != NULL ||
	    (!q->no_replay && spool_has_unread(q->spool));
}

/* Credits the ack=spooled runs of records now durable. */
static void
credit_synced(struct queue *q, const struct spool_pos *synced)
{
	if (q->sacks == NULL)
		return;
	ack_spill_credit_synced(q->sacks, synced, q->ack_credit);
	charge_sacks(q);
}

void
queue_tick(struct queue *q)
{
	struct spool_pos synced;

	if (q->spool == NULL)
		return;
	if (q->open != NULL && q->open->spool_ack_lines > 0) {
		queue_seal(q);
		if (q->head != NULL && q->on_data != NULL)
			q->on_data(q->cb_arg);
	}
	if (q->full)
		queue_spill_while_full(q);
	if (spool_sync_start(q->spool, &synced) == 1)
		credit_synced(q, &synced);
	spool_save_progress(q->spool);
	queue_maybe_resume(q);
}

/* The sync thread finished: credit what it made durable. */
void
queue_sync_done(struct queue *q)
{
	struct spool_pos synced;

	if (q->spool == NULL)
		return;
	if (spool_sync_reap(q->spool, &synced) == 1) {
		credit_synced(q, &synced);
		queue_maybe_resume(q);
	}
}

uint64_t
queue_spill_all(struct queue *q)
{
	struct spool_pos synced;
	struct batch *b;
	uint64_t left = 0;

	if (q->open != NULL && q->open->lines > 0)
		queue_seal(q);
	if (q->spool != NULL) {
		q->spool_retry_ms = 0;
		while ((b = queue_unlink_head(q)) != NULL) {
			if (!queue_spill_batch(q, b)) {
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
