/*
 * ack_spill: acknowledgement runs of spilled batches, by spool record
 * (see include/logsink/ack_spill.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/ack_spill.h"

/* First allocation, in runs; it doubles from there. */
#define ACK_SPILL_INITIAL 64

/* A run and the record holding it. */
struct spilled_ack {
	struct spool_pos pos;
	struct batch_ack a;
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
	as->v[as->n++].a = *run;
}

void
ack_spill_attach(struct ack_spill *as, const struct spool_pos *pos,
    ack_spill_give_cb give, void *arg, batch_ack_cb drop)
{
	struct spilled_ack *e;
	int c;

	while (as->head < as->n) {
		e = &as->v[as->head];
		if ((c = pos_cmp(&e->pos, pos)) > 0)
			break;
		if (c == 0) {
			if (give(arg, &e->a) == -1)
				break; /* kept: dropped with a later record */
		} else {
			drop(e->a.ref, e->a.first, e->a.n);
		}
		as->head++;
	}
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
