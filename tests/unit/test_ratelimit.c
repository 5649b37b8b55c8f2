/*
 * Unit tests for the per-source token buckets (ratelimit.c): a new source
 * starts full, spending and refilling by the clock, the burst cap, the
 * wait until the next token, debts, least-recently-used eviction when the table
 * is full, and the extremes (years between calls, the largest rate and
 * burst) that must not overflow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logsink/ratelimit.h"

static int
setup(void **state)
{
	struct ratelimit *rl = ratelimit_new(3);

	if (rl == NULL)
		return -1;
	ratelimit_set(rl, 10, 5); /* 10 lines/s, burst 5 */
	*state = rl;
	return 0;
}

static int
teardown(void **state)
{
	ratelimit_free(*state);
	return 0;
}

static uint64_t
tokens(struct ratelimit *rl, const char *key, int64_t now)
{
	int nomem = 1;
	uint64_t n = ratelimit_tokens(rl, key, strlen(key), now, &nomem);

	assert_int_equal(nomem, 0);
	return n;
}

static void
spend(struct ratelimit *rl, const char *key, uint64_t n)
{
	ratelimit_spend(rl, key, strlen(key), n);
}

static void
test_new_source_full(void **state)
{
	struct ratelimit *rl = *state;

	assert_int_equal(tokens(rl, "a", 1000), 5);
	assert_int_equal(ratelimit_sources(rl), 1);
	/* Time alone does not go past the burst. */
	assert_int_equal(tokens(rl, "a", 100000), 5);
}

static void
test_spend_and_refill(void **state)
{
	struct ratelimit *rl = *state;

	assert_int_equal(tokens(rl, "a", 1000), 5);
	spend(rl, "a", 5);
	assert_int_equal(tokens(rl, "a", 1000), 0);
	/* 10/s: one token per 100 ms, not before. */
	assert_int_equal(tokens(rl, "a", 1099), 0);
	assert_int_equal(tokens(rl, "a", 1100), 1);
	assert_int_equal(tokens(rl, "a", 1350), 3);
	spend(rl, "a", 2);
	/* The half token of 1300..1350 is kept. */
	assert_int_equal(tokens(rl, "a", 1400), 2);
	/* Spending more than there is is a debt, paid by the refill. */
	spend(rl, "a", 12);
	assert_int_equal(tokens(rl, "a", 1400), 0);
	assert_int_equal(ratelimit_wait_ms(rl, "a", 1, 1400), 1100);
	assert_int_equal(tokens(rl, "a", 2499), 0);
	assert_int_equal(tokens(rl, "a", 2500), 1);
	/* The debt is bounded. */
	spend(rl, "a", UINT64_MAX);
	assert_int_equal(ratelimit_wait_ms(rl, "a", 1, 2500),
	    (int64_t)(RATELIMIT_MAX_DEBT * 100));
}

static void
test_sources_apart(void **state)
{
	struct ratelimit *rl = *state;

	spend(rl, "a", 0); /* unknown: nothing */
	assert_int_equal(ratelimit_sources(rl), 0);
	assert_int_equal(tokens(rl, "a", 0), 5);
	spend(rl, "a", 5);
	assert_int_equal(tokens(rl, "b", 0), 5);
	assert_int_equal(tokens(rl, "a", 0), 0);
	/* Keys are bytes: "a" and "a\0" differ. */
	assert_int_equal(ratelimit_tokens(rl, "a", 2, 0, NULL), 5);
}

static void
test_wait_ms(void **state)
{
	struct ratelimit *rl = *state;

	assert_int_equal(tokens(rl, "a", 0), 5);
	assert_int_equal(ratelimit_wait_ms(rl, "a", 1, 0), 1);
	spend(rl, "a", 5);
	assert_int_equal(ratelimit_wait_ms(rl, "a", 1, 0), 100);
	assert_int_equal(ratelimit_wait_ms(rl, "a", 1, 30), 70);
	assert_int_equal(ratelimit_wait_ms(rl, "a", 1, 100), 1);
	/* An unknown source does not wait (and is not made). */
	assert_int_equal(ratelimit_wait_ms(rl, "zz", 2, 0), 1);
	assert_int_equal(ratelimit_sources(rl), 1);
}

static void
test_evicts_least_recent(void **state)
{
	struct ratelimit *rl = *state;

	tokens(rl, "a", 0);
	tokens(rl, "b", 0);
	tokens(rl, "c", 0);
	spend(rl, "a", 5);
	spend(rl, "b", 5);
	spend(rl, "c", 5);
	tokens(rl, "a", 0); /* a is now the most recent; b the least */
	assert_int_equal(tokens(rl, "d", 0), 5);
	assert_int_equal(ratelimit_sources(rl), 3);
	assert_int_equal(ratelimit_evictions(rl), 1);
	assert_int_equal(tokens(rl, "a", 0), 0); /* kept */
	assert_int_equal(tokens(rl, "c", 0), 0); /* kept */
	/* b was forgotten: it comes back full (evicting d, now the LRU). */
	assert_int_equal(tokens(rl, "b", 0), 5);
	assert_int_equal(ratelimit_evictions(rl), 2);
	assert_int_equal(ratelimit_sources(rl), 3);
}

static void
test_lowered_burst(void **state)
{
	struct ratelimit *rl = *state;

	assert_int_equal(tokens(rl, "a", 0), 5);
	ratelimit_set(rl, 10, 2);
	assert_int_equal(tokens(rl, "a", 0), 2);
	ratelimit_set(rl, 10, 50);
	assert_int_equal(tokens(rl, "a", 0), 2); /* raised: refills */
	assert_int_equal(tokens(rl, "a", 4800), 50);
}

static void
test_extremes(void **state)
{
	struct ratelimit *rl = *state;
	char key[RATELIMIT_MAX_KEY + 10];

	ratelimit_set(rl, UINT32_MAX, UINT32_MAX);
	assert_int_equal(tokens(rl, "a", 0), UINT32_MAX);
	spend(rl, "a", UINT32_MAX);
	/* 1 ms refills a thousandth of the burst; a second all of it. */
	assert_int_equal(tokens(rl, "a", 1), UINT32_MAX / 1000);
	assert_int_equal(tokens(rl, "a", 1001), UINT32_MAX);
	ratelimit_set(rl, 1, UINT32_MAX);
	spend(rl, "a", UINT32_MAX);
	/* A century later, at 1/s: a token a second, no overflow. */
	assert_int_equal(tokens(rl, "a", INT64_C(3155760000000)),
	    (INT64_C(3155760000000) - 1001) / 1000);
	assert_int_equal(tokens(rl, "a", INT64_MAX), UINT32_MAX);
	/* Rate and burst 0 mean 1. */
	ratelimit_set(rl, 0, 0);
	assert_int_equal(tokens(rl, "b", 0), 1);
	spend(rl, "b", 1);
	assert_int_equal(ratelimit_wait_ms(rl, "b", 1, 0), 1000);
	/* Keys past RATELIMIT_MAX_KEY share the first part's bucket. */
	memset(key, 'k', sizeof(key));
	assert_int_equal(ratelimit_tokens(rl, key, sizeof(key), 0, NULL), 1);
	ratelimit_spend(rl, key, sizeof(key), 1);
	assert_int_equal(
	    ratelimit_tokens(rl, key, RATELIMIT_MAX_KEY + 1, 0, NULL), 0);
}

static void
test_table_of_one(void **state)
{
	struct ratelimit *rl = ratelimit_new(0); /* taken as 1 */

	(void)state;
	assert_non_null(rl);
	ratelimit_set(rl, 1, 1);
	assert_int_equal(tokens(rl, "a", 0), 1);
	spend(rl, "a", 1);
	assert_int_equal(tokens(rl, "b", 0), 1);
	assert_int_equal(ratelimit_sources(rl), 1);
	assert_int_equal(tokens(rl, "a", 0), 1); /* forgotten: full again */
	assert_int_equal(ratelimit_evictions(rl), 2);
	ratelimit_free(rl);
	ratelimit_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_new_source_full, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_spend_and_refill, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sources_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_ms, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_evicts_least_recent, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_lowered_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extremes, setup, teardown),
		cmocka_unit_test(test_table_of_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
