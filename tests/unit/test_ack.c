/*
 * Unit tests for the acknowledgement module (ack.c): span bookkeeping
 * (in order, out of order, gaps closing, duplicates), reference lifetime,
 * and the completion list the listener drains.
 *
 * The fixture owns a list and up to NREFS senders, and remembers how many
 * batch references each one has outstanding, so that teardown can release
 * every one of them even after a failed assert (ASan then reports a leak
 * or a use after free only if ack.c has one).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "logsink/ack.h"

#define NREFS 4

/*
 * ack.c grows its spans with reallocarray(); this definition takes the
 * place of the C library's in the test binary, so that a test can make
 * it fail (ENOMEM).
 */
static bool fail_alloc;

void *
reallocarray(void *p, size_t n, size_t size)
{
	if (fail_alloc || (size != 0 && n > SIZE_MAX / size)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n * size);
}

struct fx {
	struct ack_list *l;
	int notified;            /* notify calls */
	struct ackref *a[NREFS]; /* NULL once freed or not made */
	bool owned[NREFS];       /* not disowned yet */
	int batch_refs[NREFS];   /* taken, not yet credited or dropped */
	char owners[NREFS];      /* the owner pointers: &owners[i] */
};

static void
on_notify(void *arg)
{
	((struct fx *)arg)->notified++;
}

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	int i;

	if (x == NULL || (x->l = ack_list_new(on_notify, x)) == NULL) {
		free(x);
		return -1;
	}
	for (i = 0; i < NREFS; i++) {
		if ((x->a[i] = ack_new(x->l, &x->owners[i])) == NULL)
			return -1;
		x->owned[i] = true;
	}
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	int i;

	for (i = 0; i < NREFS; i++) {
		if (x->a[i] == NULL)
			continue;
		if (x->owned[i]) {
			while (x->batch_refs[i]-- > 0)
				ack_drop(x->a[i], 0, 0);
			ack_disown(x->a[i]);
		} else {
			while (x->batch_refs[i]-- > 0)
				ack_drop(x->a[i], 0, 0);
		}
	}
	ack_list_free(x->l);
	free(x);
	return 0;
}

/* A batch takes a run of sender i's lines. */
static void
take(struct fx *x, int i, uint64_t first, uint32_t n)
{
	ack_take(x->a[i], first, n);
	x->batch_refs[i]++;
}

/* That batch commits. */
static void
credit(struct fx *x, int i, uint64_t first, uint32_t n)
{
	assert_true(x->batch_refs[i] > 0);
	x->batch_refs[i]--;
	ack_credit(x->a[i], first, n);
	if (!x->owned[i] && x->batch_refs[i] == 0)
		x->a[i] = NULL; /* the last reference: freed */
}

/* Takes and credits at once (a run stored right after it was queued). */
static void
store(struct fx *x, int i, uint64_t first, uint32_t n)
{
	take(x, i, first, n);
	credit(x, i, first, n);
}

static void
disown(struct fx *x, int i)
{
	ack_disown(x->a[i]);
	x->owned[i] = false;
	if (x->batch_refs[i] == 0)
		x->a[i] = NULL;
}

static void
test_in_order(void **state)
{
	struct fx *x = *state;

	assert_int_equal(ack_committed(x->a[0]), 0);
	assert_null(ack_list_next(x->l));
	store(x, 0, 0, 10);
	assert_int_equal(ack_committed(x->a[0]), 10);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_null(ack_list_next(x->l));
	store(x, 0, 10, 5);
	assert_int_equal(ack_committed(x->a[0]), 15);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_null(ack_list_next(x->l));
	assert_int_equal(ack_list_nomem(x->l), 0);
}

/* A run stored ahead of a gap is no completion until the gap closes. */
static void
test_out_of_order(void **state)
{
	struct fx *x = *state;

	take(x, 0, 0, 10);
	take(x, 0, 10, 10);
	credit(x, 0, 10, 10);
	assert_int_equal(ack_committed(x->a[0]), 0);
	assert_null(ack_list_next(x->l));
	assert_int_equal(x->notified, 0);
	credit(x, 0, 0, 10);
	assert_int_equal(ack_committed(x->a[0]), 20);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_null(ack_list_next(x->l));
}

/* Several spans, credited in scrambled order, merge as gaps close; one
 * past a remaining gap stays apart. */
static void
test_gap_closing_merges_spans(void **state)
{
	struct fx *x = *state;

	take(x, 0, 0, 10);
	take(x, 0, 10, 10);
	take(x, 0, 20, 10);
	take(x, 0, 30, 10);
	take(x, 0, 40, 10);
	take(x, 0, 50, 10);
	credit(x, 0, 30, 10);
	credit(x, 0, 50, 10);
	credit(x, 0, 10, 10);
	assert_int_equal(ack_committed(x->a[0]), 0);
	credit(x, 0, 20, 10);
	assert_int_equal(ack_committed(x->a[0]), 0);
	assert_null(ack_list_next(x->l));
	credit(x, 0, 0, 10); /* 0..40 now, 50..59 still apart */
	assert_int_equal(ack_committed(x->a[0]), 40);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	credit(x, 0, 40, 10); /* closes the last gap */
	assert_int_equal(ack_committed(x->a[0]), 60);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_null(ack_list_next(x->l));
}

/* More spans than the first allocation holds (it starts at 4). */
static void
test_many_spans(void **state)
{
	struct fx *x = *state;
	uint64_t i;

	for (i = 0; i < 100; i++)
		take(x, 0, i * 3, 3);
	for (i = 99; i > 0; i--)
		credit(x, 0, i * 3, 3);
	assert_int_equal(ack_committed(x->a[0]), 0);
	credit(x, 0, 0, 3);
	assert_int_equal(ack_committed(x->a[0]), 300);
}

/* Runs credited twice or overlapping what is stored change nothing
 * twice, and are no new completion when committed does not move. */
static void
test_duplicates(void **state)
{
	struct fx *x = *state;

	store(x, 0, 0, 10);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	store(x, 0, 0, 10);
	assert_int_equal(ack_committed(x->a[0]), 10);
	assert_null(ack_list_next(x->l));
	store(x, 0, 5, 3); /* inside what is stored */
	assert_int_equal(ack_committed(x->a[0]), 10);
	assert_null(ack_list_next(x->l));
	store(x, 0, 5, 10); /* overlaps and extends */
	assert_int_equal(ack_committed(x->a[0]), 15);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	/* the same span twice ahead of a gap, then the gap */
	store(x, 0, 20, 5);
	store(x, 0, 20, 5);
	assert_int_equal(ack_committed(x->a[0]), 15);
	store(x, 0, 15, 5);
	assert_int_equal(ack_committed(x->a[0]), 25);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_null(ack_list_next(x->l));
}

/* Credits arriving after the owner went away only release. */
static void
test_credit_after_owner_gone(void **state)
{
	struct fx *x = *state;

	take(x, 0, 0, 10);
	take(x, 0, 10, 10);
	disown(x, 0);
	assert_non_null(x->a[0]); /* the batches still hold it */
	credit(x, 0, 0, 10);
	assert_null(ack_list_next(x->l));
	assert_int_equal(x->notified, 0);
	credit(x, 0, 10, 10); /* the last reference: freed (ASan checks) */
	assert_null(x->a[0]);
	assert_null(ack_list_next(x->l));
	assert_int_equal(x->notified, 0);
}

/* The ref lives while any of owner and batches holds it, in any order. */
static void
test_refs_lifetime(void **state)
{
	struct fx *x = *state;

	take(x, 0, 0, 0); /* the queue takes with n = 0, then grows it */
	take(x, 0, 5, 0);
	take(x, 0, 10, 0);
	ack_drop(x->a[0], 5, 5); /* freed without committing (shutdown) */
	x->batch_refs[0]--;
	credit(x, 0, 0, 5);
	assert_int_equal(ack_committed(x->a[0]), 5);
	disown(x, 0);
	assert_non_null(x->a[0]);
	assert_int_equal(ack_committed(x->a[0]), 5);
	credit(x, 0, 10, 5);
	assert_null(x->a[0]);
	/* the owner last */
	take(x, 1, 0, 3);
	credit(x, 1, 0, 3);
	assert_int_equal(ack_committed(x->a[1]), 3);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[1]);
	disown(x, 1);
	assert_null(x->a[1]);
}

/* However many credits arrive before the drain, a ref is drained once;
 * refs come out in the order they first advanced. */
static void
test_completion_once(void **state)
{
	struct fx *x = *state;

	store(x, 1, 0, 1);
	store(x, 0, 0, 1);
	store(x, 1, 1, 1);
	store(x, 0, 1, 1);
	store(x, 1, 2, 1);
	store(x, 2, 0, 7);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[1]);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[2]);
	assert_null(ack_list_next(x->l));
	assert_int_equal(ack_committed(x->a[0]), 2);
	assert_int_equal(ack_committed(x->a[1]), 3);
	assert_int_equal(ack_committed(x->a[2]), 7);
	/* once drained, the next credit links it again */
	store(x, 1, 3, 1);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[1]);
	assert_null(ack_list_next(x->l));
}

/* notify is called once per empty -> non-empty transition. */
static void
test_notify_once_per_transition(void **state)
{
	struct fx *x = *state;

	store(x, 0, 0, 1);
	assert_int_equal(x->notified, 1);
	store(x, 0, 1, 1);
	store(x, 1, 0, 1);
	store(x, 2, 0, 1);
	assert_int_equal(x->notified, 1);
	assert_non_null(ack_list_next(x->l));
	assert_non_null(ack_list_next(x->l));
	store(x, 0, 2, 1); /* the list was not empty yet */
	assert_int_equal(x->notified, 1);
	while (ack_list_next(x->l) != NULL)
		;
	store(x, 3, 0, 1);
	assert_int_equal(x->notified, 2);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[3]);
	/* credits that do not advance committed do not notify */
	take(x, 3, 5, 1);
	credit(x, 3, 5, 1);
	store(x, 3, 0, 1);
	assert_int_equal(x->notified, 2);
	assert_null(ack_list_next(x->l));
}

/* An owner that goes while its ref is pending takes it off the list. */
static void
test_disown_pending(void **state)
{
	struct fx *x = *state;

	store(x, 0, 0, 1);
	store(x, 1, 0, 1);
	store(x, 2, 0, 1);
	disown(x, 1); /* middle */
	disown(x, 2); /* tail */
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_null(ack_list_next(x->l));
	store(x, 3, 0, 1);
	disown(x, 3); /* the only one */
	assert_null(ack_list_next(x->l));
	store(x, 0, 1, 1); /* the list is usable and notifies again */
	assert_int_equal(x->notified, 3);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
}

/*
 * A span that cannot be kept (ENOMEM): the acks stop short of it for
 * good, which is safe (the client resends), and the drain is told how
 * many runs were lost.
 */
static void
test_span_nomem(void **state)
{
	struct fx *x = *state;

	take(x, 0, 0, 10);
	take(x, 0, 10, 10);
	take(x, 0, 20, 10);
	fail_alloc = true;
	credit(x, 0, 10, 10);
	fail_alloc = false;
	assert_int_equal(x->notified, 1); /* the drain has news */
	assert_null(ack_list_next(x->l));
	assert_int_equal(ack_list_nomem(x->l), 1);
	assert_int_equal(ack_list_nomem(x->l), 0);
	credit(x, 0, 20, 10); /* kept, but after the lost run */
	credit(x, 0, 0, 10);
	assert_int_equal(ack_committed(x->a[0]), 10);
	assert_ptr_equal(ack_list_next(x->l), &x->owners[0]);
	assert_int_equal(x->notified, 2);
	/* a disowned sender's lost run is nobody's news */
	take(x, 1, 5, 5);
	disown(x, 1);
	fail_alloc = true;
	credit(x, 1, 5, 5);
	fail_alloc = false;
	assert_int_equal(ack_list_nomem(x->l), 0);
	assert_int_equal(x->notified, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_gap_closing_merges_spans, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_many_spans, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_credit_after_owner_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_refs_lifetime, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_completion_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_notify_once_per_transition, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_disown_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_span_nomem, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
