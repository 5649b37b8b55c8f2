/*
 * Unit tests for ack_spill, the ledger of acknowledgement runs of spilled
 * batches: runs handed back in order when their record is replayed, runs
 * of records skipped as corrupt dropped, ack=spooled runs credited once
 * their record is synced, the consumed front compacted (the ledger does
 * not grow in a steady state), and the ENOMEM paths (a reservation that
 * cannot be met, a replayed batch that cannot take a run).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logsink/ack_spill.h"
#include "logsink/batch.h"
#include "logsink/spool.h"

#define MAXCALLS 256

/* One callback the ledger made. */
struct call {
	char kind; /* 'g' give, 'c' credit, 'd' drop */
	void *ref;
	uint64_t first;
	uint32_t n;
};

/* The callbacks have no argument of their own (batch_ack_cb), so they
 * record into this; setup clears it. */
static struct {
	struct call v[MAXCALLS];
	size_t n;
	int give_fail_at; /* give fails for the call with this index; -1 never
			   */
} calls;

/* Heap fixture: teardown frees the ledger (its runs are dropped). */
struct fx {
	struct ack_spill *as;
	char refs[4]; /* distinct handles: &refs[i] */
};

/* Counts every call; the first MAXCALLS are kept for assert_call(). */
static void
record(char kind, void *ref, uint64_t first, uint32_t n)
{
	if (calls.n < MAXCALLS) {
		calls.v[calls.n].kind = kind;
		calls.v[calls.n].ref = ref;
		calls.v[calls.n].first = first;
		calls.v[calls.n].n = n;
	}
	calls.n++;
}

static void
on_credit(void *ref, uint64_t first, uint32_t n)
{
	record('c', ref, first, n);
}

static void
on_drop(void *ref, uint64_t first, uint32_t n)
{
	record('d', ref, first, n);
}

static int
on_give(void *arg, const struct batch_ack *run)
{
	int *given = arg;

	if ((int)calls.n == calls.give_fail_at)
		return -1;
	record('g', run->ref, run->first, run->n);
	(*given)++;
	return 0;
}

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (x == NULL || (x->as = ack_spill_new()) == NULL) {
		free(x);
		return -1;
	}
	memset(&calls, 0, sizeof(calls));
	calls.give_fail_at = -1;
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;

	ack_spill_free(x->as, on_drop);
	free(x);
	return 0;
}

static struct spool_pos
pos(uint64_t seg, uint64_t off)
{
	struct spool_pos p = { seg, off };

	return p;
}

/* Keeps the run (ref i, first, n) under record p. */
static void
push(struct fx *x, struct spool_pos p, int i, uint64_t first, uint32_t n,
    bool at_spool)
{
	struct batch_ack a = { &x->refs[i], first, n, at_spool };

	assert_int_equal(ack_spill_reserve(x->as, 1), 0);
	ack_spill_push(x->as, &p, &a);
}

static void
assert_call(
    size_t k, char kind, struct fx *x, int i, uint64_t first, uint32_t n)
{
	assert_true(k < calls.n && k < MAXCALLS);
	assert_int_equal(calls.v[k].kind, kind);
	assert_ptr_equal(calls.v[k].ref, &x->refs[i]);
	assert_int_equal(calls.v[k].first, first);
	assert_int_equal(calls.v[k].n, n);
}

static int
attach(struct fx *x, struct spool_pos p)
{
	int given = 0;

	ack_spill_attach(x->as, &p, on_give, &given, on_drop);
	return given;
}

/* Runs come back with their record, oldest first, and only with it. */
static void
test_push_attach_in_order(void **state)
{
	struct fx *x = *state;
	size_t per;

	assert_int_equal(ack_spill_runs(x->as), 0);
	assert_int_equal(ack_spill_bytes(x->as), 0);
	push(x, pos(1, 32), 0, 0, 3, false);
	push(x, pos(1, 32), 1, 10, 2, false);
	push(x, pos(1, 32), 0, 3, 1, true);
	push(x, pos(1, 90), 1, 12, 5, false);
	push(x, pos(2, 32), 2, 0, 7, false);
	assert_int_equal(ack_spill_runs(x->as), 5);
	per = ack_spill_bytes(x->as) / 5;
	assert_true(per >= sizeof(struct batch_ack) + sizeof(struct spool_pos));
	assert_int_equal(ack_spill_bytes(x->as), 5 * per);

	/* The ack=spooled run stays, for its sync or its commit. */
	assert_int_equal(attach(x, pos(1, 32)), 2);
	assert_int_equal(calls.n, 2);
	assert_call(0, 'g', x, 0, 0, 3);
	assert_call(1, 'g', x, 1, 10, 2);
	assert_int_equal(ack_spill_runs(x->as), 3);
	assert_int_equal(ack_spill_bytes(x->as), 3 * per);
	/* A record with no runs of its own changes nothing later. */
	assert_int_equal(attach(x, pos(1, 60)), 0);
	assert_int_equal(calls.n, 2);
	assert_int_equal(attach(x, pos(1, 90)), 1);
	assert_call(2, 'g', x, 1, 12, 5);
	assert_int_equal(attach(x, pos(2, 32)), 1);
	assert_call(3, 'g', x, 2, 0, 7);
	assert_int_equal(calls.n, 4);
	assert_int_equal(ack_spill_runs(x->as), 1);
	/* Replayed again (it cannot happen): nothing left to give. */
	assert_int_equal(attach(x, pos(2, 32)), 0);
	/* (1, 32) is committed: its ack=spooled run is credited. */
	ack_spill_done(x->as, &(struct spool_pos){ 1, 32 }, on_credit);
	assert_int_equal(calls.n, 5);
	assert_call(4, 'c', x, 0, 3, 1);
	assert_int_equal(ack_spill_runs(x->as), 0);
	assert_int_equal(ack_spill_bytes(x->as), 0);
}

/*
 * The fault soak's defect (test_faults.py::
 * test_spooled_ack_not_held_by_a_stuck_replay): an ack=spooled run whose
 * record was replayed before the spool was synced stays in the ledger and
 * is credited exactly once, by the sync or by the commit, whichever comes
 * first; a writer stuck on a frozen database no longer holds it back.
 * Later replays skip it; ack_spill_free() drops one never credited.
 */
static void
test_replayed_spooled_run_credited_once(void **state)
{
	struct fx *x = *state;

	push(x, pos(1, 32), 0, 0, 4, true);
	push(x, pos(1, 64), 1, 0, 2, false);
	push(x, pos(1, 64), 0, 4, 1, true);
	push(x, pos(1, 96), 0, 5, 3, true);
	push(x, pos(1, 128), 0, 8, 2, true);
	assert_int_equal(attach(x, pos(1, 32)), 0);
	assert_int_equal(attach(x, pos(1, 64)), 1);
	assert_int_equal(calls.n, 1);
	assert_call(0, 'g', x, 1, 0, 2);
	assert_int_equal(ack_spill_runs(x->as), 4);
	/* Synced up to (1, 64): the stuck replay's run is credited ... */
	ack_spill_credit_synced(x->as, &(struct spool_pos){ 1, 64 }, on_credit);
	assert_int_equal(calls.n, 2);
	assert_call(1, 'c', x, 0, 0, 4);
	/* ... and its commit later credits nothing more. */
	ack_spill_done(x->as, &(struct spool_pos){ 1, 32 }, on_credit);
	assert_int_equal(calls.n, 2);
	/* Committed before the sync: credited at the commit, once. */
	ack_spill_done(x->as, &(struct spool_pos){ 1, 64 }, on_credit);
	assert_int_equal(calls.n, 3);
	assert_call(2, 'c', x, 0, 4, 1);
	ack_spill_credit_synced(x->as, &(struct spool_pos){ 1, 96 }, on_credit);
	assert_int_equal(calls.n, 3);
	assert_int_equal(ack_spill_runs(x->as), 2);
	/* Replayed, neither synced nor committed: freed, it is dropped. */
	assert_int_equal(attach(x, pos(1, 96)), 0);
	assert_int_equal(calls.n, 3);
	assert_int_equal(ack_spill_runs(x->as), 2);
}

/*
 * A record the spool skipped as corrupt is never replayed: when a later
 * one is, the skipped record's runs are dropped (never given, never
 * credited), in order, and the later record gets its own.
 */
static void
test_corrupt_record_drops_its_runs(void **state)
{
	struct fx *x = *state;

	push(x, pos(1, 32), 0, 0, 4, false);
	push(x, pos(1, 32), 1, 0, 1, true);
	push(x, pos(1, 80), 0, 4, 4, false);
	push(x, pos(2, 32), 2, 0, 2, false);
	push(x, pos(2, 32), 0, 8, 1, false);
	push(x, pos(3, 32), 3, 0, 9, false);
	/* Records (1,32) and (1,80) were skipped; (2,32) is replayed. */
	assert_int_equal(attach(x, pos(2, 32)), 2);
	assert_int_equal(calls.n, 5);
	assert_call(0, 'd', x, 0, 0, 4);
	assert_call(1, 'd', x, 1, 0, 1);
	assert_call(2, 'd', x, 0, 4, 4);
	assert_call(3, 'g', x, 2, 0, 2);
	assert_call(4, 'g', x, 0, 8, 1);
	assert_int_equal(ack_spill_runs(x->as), 1);
	/* The rest of segment 2 and segment 3's first record skipped too. */
	assert_int_equal(attach(x, pos(3, 100)), 0);
	assert_call(5, 'd', x, 3, 0, 9);
	assert_int_equal(ack_spill_runs(x->as), 0);
}

/*
 * Synced up to a position: the ack=spooled runs of the records before it
 * are credited and leave; ack=commit runs, and ack=spooled runs at or
 * after the position, stay for their replay.
 */
static void
test_credit_synced(void **state)
{
	struct fx *x = *state;

	push(x, pos(1, 32), 0, 0, 2, true);
	push(x, pos(1, 32), 1, 0, 3, false);
	push(x, pos(1, 32), 0, 2, 1, true);
	push(x, pos(1, 100), 0, 3, 5, true);
	push(x, pos(1, 100), 1, 3, 1, false);
	push(x, pos(2, 32), 2, 0, 6, true);

	ack_spill_credit_synced(
	    x->as, &(struct spool_pos){ 1, 100 }, on_credit);
	assert_int_equal(calls.n, 2);
	assert_call(0, 'c', x, 0, 0, 2);
	assert_call(1, 'c', x, 0, 2, 1);
	assert_int_equal(ack_spill_runs(x->as), 4);
	/* The same position again: nothing more. */
	ack_spill_credit_synced(
	    x->as, &(struct spool_pos){ 1, 100 }, on_credit);
	assert_int_equal(calls.n, 2);

	/* Record (1,32) replayed: only its ack=commit run is left. */
	assert_int_equal(attach(x, pos(1, 32)), 1);
	assert_call(2, 'g', x, 1, 0, 3);

	/* Everything up to segment 3 is durable. */
	ack_spill_credit_synced(x->as, &(struct spool_pos){ 3, 0 }, on_credit);
	assert_int_equal(calls.n, 5);
	assert_call(3, 'c', x, 0, 3, 5);
	assert_call(4, 'c', x, 2, 0, 6);
	assert_int_equal(ack_spill_runs(x->as), 1);
	/* The ack=commit run of (1,100) still comes back with its record. */
	assert_int_equal(attach(x, pos(1, 100)), 1);
	assert_call(5, 'g', x, 1, 3, 1);
	assert_int_equal(attach(x, pos(2, 32)), 0);
	assert_int_equal(calls.n, 6);
	assert_int_equal(ack_spill_runs(x->as), 0);
	assert_int_equal(ack_spill_bytes(x->as), 0);
}

/*
 * The consumed front is compacted: a ledger that keeps about the same
 * number of runs does not grow, however many pass through it; it grows
 * only when the runs kept need the room.
 */
static void
test_compaction(void **state)
{
	struct fx *x = *state;
	size_t slots, i;

	push(x, pos(1, 0), 0, 0, 1, false);
	slots = ack_spill_slots(x->as);
	assert_true(slots >= 2);
	/* Steady state: one record in, one replayed, many times over. */
	for (i = 1; i < 100 * slots; i++) {
		push(x, pos(1, i), 0, i, 1, false);
		assert_int_equal(attach(x, pos(1, i - 1)), 1);
		assert_int_equal(ack_spill_runs(x->as), 1);
	}
	assert_int_equal(ack_spill_slots(x->as), slots);
	assert_int_equal(calls.n, 100 * slots - 1);

	/* Fill every slot, replay half (the steady state's last run is
	 * dropped on the way): the kept half moves to the front, so the
	 * other half is free without growing. */
	for (i = 0; i < slots - 1; i++)
		push(x, pos(2, i), 1, i, 1, false);
	assert_int_equal(ack_spill_runs(x->as), slots);
	assert_int_equal(ack_spill_slots(x->as), slots);
	for (i = 0; i < slots / 2 - 1; i++)
		assert_int_equal(attach(x, pos(2, i)), 1);
	assert_int_equal(ack_spill_runs(x->as), slots / 2);
	for (i = 0; i < slots / 2; i++)
		push(x, pos(3, i), 2, i, 1, false);
	assert_int_equal(ack_spill_slots(x->as), slots);
	assert_int_equal(ack_spill_runs(x->as), slots);
	/* Full with nothing consumed: now it grows, and keeps every run. */
	push(x, pos(4, 0), 3, 0, 1, false);
	assert_true(ack_spill_slots(x->as) > slots);
	calls.n = 0;
	assert_int_equal(attach(x, pos(4, 0)), 1);
	assert_int_equal(calls.n, slots + 1);
	assert_call(0, 'd', x, 1, slots / 2 - 1, 1);
	assert_call(slots / 2, 'd', x, 2, 0, 1);
	assert_call(slots, 'g', x, 3, 0, 1);
}

/*
 * A reservation that cannot be met fails with ENOMEM and changes nothing
 * (the queue then keeps the batch in memory); the ledger stays usable.
 */
static void
test_reserve_enomem(void **state)
{
	struct fx *x = *state;
	size_t slots;

	push(x, pos(1, 32), 0, 0, 1, false);
	slots = ack_spill_slots(x->as);
	errno = 0;
	assert_int_equal(ack_spill_reserve(x->as, SIZE_MAX), -1);
	assert_int_equal(errno, ENOMEM);
	errno = 0;
	assert_int_equal(ack_spill_reserve(x->as, SIZE_MAX / 64), -1);
	assert_int_equal(errno, ENOMEM);
	assert_int_equal(ack_spill_slots(x->as), slots);
	assert_int_equal(ack_spill_runs(x->as), 1);
	push(x, pos(1, 64), 1, 0, 1, false);
	assert_int_equal(attach(x, pos(1, 32)), 1);
	assert_int_equal(attach(x, pos(1, 64)), 1);
	assert_int_equal(calls.n, 2);
}

/*
 * A replayed batch that cannot take a run (ENOMEM): the runs it did take
 * are its own; that run and the rest stay in the ledger and are dropped
 * with the next record replayed, never given twice.
 */
static void
test_give_enomem(void **state)
{
	struct fx *x = *state;

	push(x, pos(1, 32), 0, 0, 1, false);
	push(x, pos(1, 32), 1, 0, 2, false);
	push(x, pos(1, 32), 2, 0, 3, false);
	push(x, pos(1, 90), 3, 0, 4, false);
	calls.give_fail_at = 1;
	assert_int_equal(attach(x, pos(1, 32)), 1);
	assert_int_equal(calls.n, 1);
	assert_call(0, 'g', x, 0, 0, 1);
	assert_int_equal(ack_spill_runs(x->as), 3);
	calls.give_fail_at = -1;
	assert_int_equal(attach(x, pos(1, 90)), 1);
	assert_int_equal(calls.n, 4);
	assert_call(1, 'd', x, 1, 0, 2);
	assert_call(2, 'd', x, 2, 0, 3);
	assert_call(3, 'g', x, 3, 0, 4);
	assert_int_equal(ack_spill_runs(x->as), 0);
}

/* Freed with runs in it (shutdown): each is dropped once. */
static void
test_free_drops(void **state)
{
	struct fx *x = *state;

	push(x, pos(1, 32), 0, 0, 1, false);
	push(x, pos(1, 90), 1, 5, 2, true);
	assert_int_equal(attach(x, pos(1, 32)), 1);
	ack_spill_free(x->as, on_drop);
	x->as = NULL;
	assert_int_equal(calls.n, 2);
	assert_call(1, 'd', x, 1, 5, 2);
	ack_spill_free(NULL, on_drop);
	assert_int_equal(calls.n, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_push_attach_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_corrupt_record_drops_its_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_credit_synced, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_replayed_spooled_run_credited_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reserve_enomem, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_give_enomem, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_free_drops, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
