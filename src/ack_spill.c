/*
 * ack_spill: acknowledgement runs of spilled batches, by spool record
 * (see include/logsink/ack_spill.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/ack_spill.h"

/* First allocation, in runs; it doubles from there. */
#define ACK_SPILL_INITIAL 64

/* A run and the record holding it.  replayed: an ack=spooled run whose
 * record was replayed before it was synced; it stays here rather than
 * going into the replayed batch, and is credited by whichever comes first:
 * the sync (ack_spill_credit_synced) or the batch's commit (ack_spill_done)
 * — a writer stuck on a frozen database must not hold back an ack=spooled
 * acknowledgement.  gone: consumed by ack_spill_attach() or
 * ack_spill_done(); the gaps are closed there. */
struct spilled_ack {
	struct spool_pos pos;
	struct batch_ack a;
	bool replayed;
	bool gone;
};

/* Owned by the queue; freed by ack_spill_free().  Runs head..n-1 are
 * kept, by record position (oldest first); those before head are
 * consumed. */
struct ack_spill {
	struct spilled_ack *v;
	size_t head, n, cap;
};

static int
pos_cmp(const struct spool_pos *a, const struct spool_pos *b)
{
	if (a->seg != b->seg)
		return a->seg < b->seg ? -1 : 1;
	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return 0;
}

struct ack_spill *
ack_spill_new(void)
{
	return calloc(1, sizeof(struct ack_spill));
}

void
ack_spill_free(struct ack_spill *as, batch_ack_cb drop)
{
	size_t i;

	if (as == NULL)
		return;
	for (i = as->head; i < as->n; i++)
		drop(as->v[i].a.ref, as->v[i].a.first, as->v[i].a.n);
	free(as->v);
	free(as);
}

/* Moves the kept runs to the start once the consumed front is at least
 * as long as they are (each run is moved O(1) times on average). */
static void
compact(struct ack_spill *as)
{
	if (as->head == 0 || as->head * 2 < as->n)
		return;
	memmove(as->v, as->v + as->head, (as->n - as->head) * sizeof(*as->v));
	as->n -= as->head;
	as->head = 0;
}

int
ack_spill_reserve(struct ack_spill *as, size_t n)
{
	struct spilled_ack *p;
	size_t cap;

	compact(as);
	if (as->cap - as->n >= n)
		return 0;
	/* More than half of what can be addressed cannot be had: say so
	 * before the doubling below could overflow. */
	if (n > SIZE_MAX / 2 / sizeof(*p) - as->n) {
		errno = ENOMEM;
		return -1;
	}
	cap = as->cap ? as->cap : ACK_SPILL_INITIAL;
	while (cap - as->n < n)
		cap *= 2;
	if ((p = reallocarray(as->v, cap, sizeof(*p))) == NULL)
		return -1;
	as->v = p;
	as->cap = cap;
	return 0;
}

void
ack_spill_push(struct ack_spill *as, const struct spool_pos *pos,
    const struct batch_ack *run)
{
	assert(as->n < as->cap);
	assert(as->n == as->head || pos_cmp(&as->v[as->n - 1].pos, pos) <= 0);
	as->v[as->n].pos = *pos;
	as->v[as->n].replayed = as->v[as->n].gone = false;
	as->v[as->n++].a = *run;
}

/* Closes the gaps left in head..end - 1: the entries kept there move, in
 * order, to the end of that range, and head follows. */
static void
close_gaps(struct ack_spill *as, size_t end)
{
	size_t k = end, j = end;

	while (k-- > as->head)
		if (!as->v[k].gone)
			as->v[--j] = as->v[k];
	as->head = j;
}

/*
 * Entries before pos are consumed (dropped: their record was skipped) but
 * for the replayed ack=spooled runs of earlier replays, skipped; those at
 * pos are given, or marked replayed.  So everything before the newest
 * replayed record is a replayed run awaiting its sync or commit, and the
 * work here stays proportional to what is consumed plus those.
 */
void
ack_spill_attach(struct ack_spill *as, const struct spool_pos *pos,
    ack_spill_give_cb give, void *arg, batch_ack_cb drop)
{
	struct spilled_ack *e;
	size_t i;
	int c;

	for (i = as->head; i < as->n; i++) {
		e = &as->v[i];
		if (e->replayed)
			continue;
		if ((c = pos_cmp(&e->pos, pos)) > 0)
			break;
		if (c == 0 && e->a.at_spool) {
			e->replayed = true;
			continue;
		}
		if (c == 0) {
			if (give(arg, &e->a) == -1)
				break; /* kept: dropped with a later record */
		} else {
			drop(e->a.ref, e->a.first, e->a.n);
		}
		e->gone = true;
	}
	close_gaps(as, i);
}

void
ack_spill_done(
    struct ack_spill *as, const struct spool_pos *pos, batch_ack_cb credit)
{
	struct spilled_ack *e;
	size_t i;

	/* Only replayed runs come before the newest replayed record. */
	for (i = as->head; i < as->n; i++) {
		e = &as->v[i];
		if (!e->replayed)
			break;
		if (pos_cmp(&e->pos, pos) == 0) {
			credit(e->a.ref, e->a.first, e->a.n);
			e->gone = true;
		}
	}
	close_gaps(as, i);
}

void
ack_spill_credit_synced(
    struct ack_spill *as, const struct spool_pos *synced, batch_ack_cb credit)
{
	struct spilled_ack *e;
	size_t i, j;

	for (i = j = as->head; i < as->n; i++) {
		e = &as->v[i];
		if (e->a.at_spool && pos_cmp(&e->pos, synced) < 0) {
			credit(e->a.ref, e->a.first, e->a.n);
			continue;
		}
		as->v[j++] = *e;
	}
	as->n = j;
}

size_t
ack_spill_bytes(const struct ack_spill *as)
{
	return ack_spill_runs(as) * sizeof(struct spilled_ack);
}

size_t
ack_spill_runs(const struct ack_spill *as)
{
	return as->n - as->head;
}

size_t
ack_spill_slots(const struct ack_spill *as)
{
	return as->cap;
}
