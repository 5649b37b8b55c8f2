/*
 * Unit tests for looplag.h: bucket edges, the since-start maximum, the
 * window's maximum and nearest-rank 99th percentile before and after the
 * ring wraps, early timers, and huge lateness (capped, no overflow).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logsink/looplag.h"

/* Heap fixture: struct looplag is 4 KiB of window. */
static int
setup(void **state)
{
	*state = calloc(1, sizeof(struct looplag));
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

static void
test_empty(void **state)
{
	struct looplag *l = *state;

	assert_int_equal(looplag_window_max_us(l), 0);
	assert_int_equal(looplag_window_p99_us(l), 0);
	assert_int_equal(l->n, 0);
}

/* A value on a bound falls in that bucket (le="bound"), one above it in
 * the next; past the last bound: +Inf. */
static void
test_buckets(void **state)
{
	struct looplag *l = *state;

	looplag_observe(l, 0);
	looplag_observe(l, 1000);    /* le 0.001 */
	looplag_observe(l, 1001);    /* le 0.002 */
	looplag_observe(l, 150000);  /* le 0.2 */
	looplag_observe(l, 5000000); /* le 5 */
	looplag_observe(l, 5000001); /* +Inf */
	looplag_observe(l, -3000);   /* early: 0 */
	assert_int_equal(l->counts[0], 3);
	assert_int_equal(l->counts[1], 1);
	assert_int_equal(l->counts[7], 1);
	assert_int_equal(l->counts[LOOPLAG_BUCKETS - 1], 1);
	assert_int_equal(l->counts[LOOPLAG_BUCKETS], 1);
	assert_int_equal(l->n, 7);
	assert_int_equal(l->sum_us, 1000 + 1001 + 150000 + 5000000 + 5000001);
	assert_int_equal(l->max_us, 5000001);
	assert_int_equal(looplag_window_max_us(l), 5000001);
}

/* 100 samples 1..100 ms: p99 is the 99th (nearest rank), max the 100th. */
static void
test_p99_nearest_rank(void **state)
{
	struct looplag *l = *state;
	int i;

	for (i = 100; i >= 1; i--)
		looplag_observe(l, i * 1000);
	assert_int_equal(looplag_window_p99_us(l), 99000);
	assert_int_equal(looplag_window_max_us(l), 100000);
	/* One sample: it is its own p99. */
	memset(l, 0, sizeof(*l));
	looplag_observe(l, 42);
	assert_int_equal(looplag_window_p99_us(l), 42);
}

/* A stall leaves the window once LOOPLAG_WINDOW later samples came, but
 * stays the since-start maximum. */
static void
test_window_wraps(void **state)
{
	struct looplag *l = *state;
	int i;

	looplag_observe(l, 300000);
	for (i = 0; i < LOOPLAG_WINDOW - 1; i++)
		looplag_observe(l, 500);
	assert_int_equal(looplag_window_max_us(l), 300000);
	looplag_observe(l, 700);
	assert_int_equal(looplag_window_max_us(l), 700);
	assert_int_equal(looplag_window_p99_us(l), 500);
	assert_int_equal(l->max_us, 300000);
	assert_int_equal(l->wlen, LOOPLAG_WINDOW);
	/* 11 of 1024 at 9 ms: above the 1 % tail, so p99 is 9 ms. */
	for (i = 0; i < 11; i++)
		looplag_observe(l, 9000);
	assert_int_equal(looplag_window_p99_us(l), 9000);
}

/* An absurd lateness is capped in the window, exact in the maximum. */
static void
test_huge(void **state)
{
	struct looplag *l = *state;

	looplag_observe(l, INT64_MAX);
	assert_int_equal(l->max_us, (uint64_t)INT64_MAX);
	assert_int_equal(looplag_window_max_us(l), UINT32_MAX);
	assert_int_equal(l->counts[LOOPLAG_BUCKETS], 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_p99_nearest_rank, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_window_wraps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
