/*
 * Unit tests for the queue: the byte limit and its resume watermark, the
 * data/space callbacks, sealing at batch_lines and batch_bytes, FIFO order
 * of queue_take(), queue_return() to the head, the line/byte counters
 * (which include batches taken but not yet done), and the per-source
 * attribution of rows (given back when a batch is done).
 *
 * Sizes are not hard-coded: one batch's charge is measured on a probe
 * queue, and every expectation is derived from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logsink/buf.h"
#include "logsink/clock.h"
#include "logsink/copyenc.h"
#include "logsink/queue.h"
#include "logsink/record.h"
#include "../../src/batch_int.h" /* what a batch is charged */

#define BIG      ((size_t)1 << 40)
#define MAXTAKEN 64

/* Heap fixture: teardown returns taken batches and frees the queue. */
struct fx {
	struct queue *q;
	struct batch *taken[MAXTAKEN]; /* taken, not yet done */
	size_t ntaken;
	int on_data, on_space;
	size_t released[3]; /* per source token 1, 2 (0 unused) */
	int nreleases;
	struct buf msg; /* message bytes for records */
	struct buf row; /* one encoded row */
};

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -1;
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;

	if (x->q != NULL) {
		while (x->ntaken > 0)
			queue_return(x->q, x->taken[--x->ntaken]);
		queue_free(x->q);
	}
	buf_free(&x->msg);
	buf_free(&x->row);
	free(x);
	return 0;
}

static void
on_data(void *arg)
{
	((struct fx *)arg)->on_data++;
}

static void
on_space(void *arg)
{
	((struct fx *)arg)->on_space++;
}

static void
make_queue(struct fx *x, size_t limit, int resume_percent, uint32_t batch_lines,
    size_t batch_bytes)
{
	x->q = queue_new(limit, resume_percent, batch_lines, batch_bytes);
	assert_non_null(x->q);
	queue_set_callbacks(x->q, on_data, on_space, x);
}

/* Appends a record whose message is msg (NUL-terminated). */
static void
push(struct fx *x, const char *msg)
{
	struct record r;
	size_t replaced;

	memset(&r, 0, sizeof(r));
	record_clear_parsed(&r);
	r.message.ptr = msg;
	r.message.len = strlen(msg);
	assert_int_equal(queue_append(x->q, &r, &replaced), 0);
	assert_int_equal(replaced, 0);
}

/* Appends a record with an n-byte message of 'a's. */
static void
push_n(struct fx *x, size_t n)
{
	buf_reset(&x->msg);
	assert_int_equal(buf_reserve(&x->msg, n + 1), 0);
	memset(x->msg.data, 'a', n);
	x->msg.data[n] = '\0';
	push(x, x->msg.data);
}

static struct batch *
take(struct fx *x, bool flush)
{
	struct batch *b = queue_take(x->q, flush);

	if (b != NULL) {
		assert_true(x->ntaken < MAXTAKEN);
		x->taken[x->ntaken++] = b;
	}
	return b;
}

/* Forgets b from the taken list (it goes back or is done). */
static void
untrack(struct fx *x, struct batch *b)
{
	size_t i;

	for (i = 0; i < x->ntaken; i++)
		if (x->taken[i] == b)
			break;
	assert_true(i < x->ntaken);
	x->taken[i] = x->taken[--x->ntaken];
}

static void
done(struct fx *x, struct batch *b)
{
	untrack(x, b);
	queue_done(x->q, b);
}

static void
give_back(struct fx *x, struct batch *b)
{
	untrack(x, b);
	queue_return(x->q, b);
}

/* True if the batch's rows hold a row whose message is msg. */
static bool
batch_has(const struct batch *b, const char *msg)
{
	size_t n = strlen(msg), off = 0, len;
	struct record r;
	char peer[64];

	assert_non_null(b);
	while ((len = copyenc_row_size(
		    batch_rows(b) + off, batch_rows_len(b) - off)) > 0) {
		assert_int_equal(copyenc_decode(batch_rows(b) + off, len, &r,
				     peer, sizeof(peer)),
		    0);
		if (r.message.len == n && memcmp(r.message.ptr, msg, n) == 0)
			return true;
		off += len;
	}
	assert_int_equal(off, batch_rows_len(b));
	return false;
}

static uint32_t
count_rows(const struct batch *b)
{
	uint32_t n = 0;
	size_t off = 0, len;

	while ((len = copyenc_row_size(
		    batch_rows(b) + off, batch_rows_len(b) - off)) > 0) {
		off += len;
		n++;
	}
	assert_int_equal(off, batch_rows_len(b));
	return n;
}

/* What one batch holding one short line is charged (probe queue). */
static size_t
one_batch_charge(struct fx *x)
{
	size_t c;

	make_queue(x, BIG, 75, 1, BIG);
	push(x, "probe");
	c = queue_bytes(x->q);
	/* Its buffer's capacity plus the batch itself. */
	assert_true(c >= sizeof(struct batch) + 40);
	queue_free(x->q);
	x->q = NULL;
	return c;
}

/*
 * With one sealed batch per line, each append charges C bytes: the queue
 * is full exactly once the charged bytes reach the limit, and a full
 * queue still accepts records.
 */
static void
test_full_exactly_at_limit(void **state)
{
	struct fx *x = *state;
	size_t c = one_batch_charge(x), limits[3], i, n;

	limits[0] = 3 * c - 1;
	limits[1] = 3 * c;
	limits[2] = 3 * c + 1;
	for (i = 0; i < 3; i++) {
		make_queue(x, limits[i], 75, 1, BIG);
		assert_false(queue_full(x->q));
		for (n = 1; n <= 5; n++) {
			push(x, "line");
			assert_int_equal(queue_bytes(x->q), n * c);
			assert_int_equal(
			    queue_full(x->q), queue_bytes(x->q) >= limits[i]);
		}
		assert_int_equal(queue_lines(x->q), 5);
		assert_int_equal(x->on_space, 0);
		queue_free(x->q);
		x->q = NULL;
	}
}

/*
 * Once full, the queue stays full until queue_done() brings the bytes
 * below resume_percent of the limit; on_space then fires exactly once.
 */
static void
check_watermark(struct fx *x, size_t c, size_t limit, int percent)
{
	struct batch *b;
	size_t n = 0;
	bool below;

	make_queue(x, limit, percent, 1, BIG);
	x->on_space = 0;
	while (!queue_full(x->q)) {
		push(x, "line");
		n++;
	}
	assert_int_equal(n, (limit + c - 1) / c);
	while ((b = take(x, false)) != NULL)
		;
	while (x->ntaken > 0) {
		done(x, x->taken[0]);
		below = queue_bytes(x->q) * 100 < limit * (size_t)percent;
		if (!below) {
			assert_true(queue_full(x->q));
			assert_int_equal(x->on_space, 0);
			continue;
		}
		assert_false(queue_full(x->q));
		assert_int_equal(x->on_space, 1);
	}
	assert_int_equal(x->on_space, 1);
	assert_int_equal(queue_bytes(x->q), 0);
	/* A second episode fires again, once. */
	while (!queue_full(x->q))
		push(x, "again");
	while ((b = take(x, false)) != NULL)
		done(x, b);
	assert_int_equal(x->on_space, 2);
	queue_free(x->q);
	x->q = NULL;
}

static void
test_resume_watermark(void **state)
{
	struct fx *x = *state;
	size_t c = one_batch_charge(x);

	check_watermark(x, c, 4 * c, 50);
	check_watermark(x, c, 4 * c, 75);
	check_watermark(x, c, 4 * c, 99);
	check_watermark(x, c, 4 * c, 1);
	check_watermark(x, c, 10 * c, 75);
	check_watermark(x, c, 10 * c + c / 2, 30);
}

/* Not full, or not full any more: queue_done() does not call on_space. */
static void
test_no_space_cb_when_not_full(void **state)
{
	struct fx *x = *state;
	struct batch *b;

	make_queue(x, BIG, 75, 1, BIG);
	push(x, "a");
	push(x, "b");
	while ((b = take(x, false)) != NULL)
		done(x, b);
	assert_int_equal(x->on_space, 0);
	assert_false(queue_full(x->q));
}

/*
 * The resume level is computed as limit / 100 * percent, which rounds
 * down: with limit 4C + 1 and 75 %, draining to 3C bytes is below 75 % of
 * the limit (300C < 300C + 75) but not below the rounded level, so the
 * queue stays full and on_space never fires.
 */
static void
test_resume_level_rounding(void **state)
{
	struct fx *x = *state;
	size_t c = one_batch_charge(x), limit = 4 * c + 1;

	/* Precondition: 3C lies between the rounded and the exact level. */
	assert_true(3 * c * 100 < limit * 75);
	assert_true(3 * c >= limit / 100 * 75);
	check_watermark(x, c, limit, 75);
}

/*
 * A limit below 100 bytes gives a resume level of 0: an emptied queue
 * (0 bytes) is not below it, so it would stay full for ever.  (The
 * config's minimum queue-bytes is 64 KiB, so the daemon cannot hit this.)
 */
static void
test_resume_small_limit(void **state)
{
	struct fx *x = *state;
	struct batch *b;

	make_queue(x, 99, 50, 1, BIG);
	push(x, "line");
	assert_true(queue_full(x->q));
	b = take(x, false);
	assert_non_null(b);
	done(x, b);
	assert_int_equal(queue_bytes(x->q), 0);
	assert_false(queue_full(x->q));
	assert_int_equal(x->on_space, 1);
}

/* on_data: when the open batch gets its first line and when one seals. */
static void
test_on_data(void **state)
{
	struct fx *x = *state;
	struct batch *b;

	make_queue(x, BIG, 75, 3, BIG);
	push(x, "1");
	assert_int_equal(x->on_data, 1); /* first line of the open batch */
	push(x, "2");
	assert_int_equal(x->on_data, 1);
	push(x, "3");
	assert_int_equal(x->on_data, 2); /* sealed */
	push(x, "4");
	assert_int_equal(x->on_data, 3); /* first line of a new batch */
	push(x, "5");
	assert_int_equal(x->on_data, 3);
	/* Flushing seals without a callback: the taker knows. */
	b = take(x, false);
	assert_non_null(b);
	b = take(x, true);
	assert_non_null(b);
	assert_int_equal(x->on_data, 3);
	/* One line that both opens and seals a batch: one call. */
	queue_set_batch_limits(x->q, 1, BIG);
	push(x, "6");
	assert_int_equal(x->on_data, 4);
}

/* Sealing at batch_lines. */
static void
test_seal_at_batch_lines(void **state)
{
	struct fx *x = *state;
	struct batch *b;

	make_queue(x, BIG, 75, 3, BIG);
	push(x, "a");
	push(x, "b");
	assert_false(queue_has_sealed(x->q));
	assert_int_equal(queue_open_lines(x->q), 2);
	assert_null(take(x, false));
	push(x, "c");
	assert_true(queue_has_sealed(x->q));
	assert_int_equal(queue_open_lines(x->q), 0);
	b = take(x, false);
	assert_non_null(b);
	assert_int_equal(batch_lines(b), 3);
	assert_int_equal(count_rows(b), 3);
	assert_true(
	    batch_has(b, "a") && batch_has(b, "b") && batch_has(b, "c"));
	assert_false(queue_has_sealed(x->q));
	done(x, b);
	/* New limits apply to the next line. */
	queue_set_batch_limits(x->q, 2, BIG);
	push(x, "d");
	assert_false(queue_has_sealed(x->q));
	push(x, "e");
	assert_true(queue_has_sealed(x->q));
}

/* Sealing at batch_bytes: once the rows reach it, not before. */
static void
test_seal_at_batch_bytes(void **state)
{
	struct fx *x = *state;
	struct record r;
	struct batch *b;
	size_t rowlen, replaced, per, i;

	/* One row's encoded length, with a 1000-byte message. */
	buf_reset(&x->msg);
	assert_int_equal(buf_reserve(&x->msg, 1001), 0);
	memset(x->msg.data, 'a', 1000);
	memset(&r, 0, sizeof(r));
	record_clear_parsed(&r);
	r.message.ptr = x->msg.data;
	r.message.len = 1000;
	assert_int_equal(copyenc_row(&x->row, &r, &replaced), 0);
	rowlen = x->row.len;
	per = (4096 + rowlen - 1) / rowlen; /* rows to reach 4096 bytes */
	assert_true(per >= 2);

	make_queue(x, BIG, 75, 1000000, 4096);
	for (i = 1; i < per; i++) {
		push_n(x, 1000);
		assert_false(queue_has_sealed(x->q));
	}
	push_n(x, 1000);
	assert_true(queue_has_sealed(x->q));
	b = take(x, false);
	assert_non_null(b);
	assert_int_equal(batch_lines(b), per);
	assert_int_equal(batch_rows_len(b), per * rowlen);
	assert_true(
	    batch_rows_len(b) >= 4096 && batch_rows_len(b) - rowlen < 4096);
	/* One row bigger than batch_bytes is a batch on its own. */
	push_n(x, 5000);
	assert_true(queue_has_sealed(x->q));
	b = take(x, false);
	assert_int_equal(batch_lines(b), 1);
}

/* queue_take(): sealed batches oldest first; flush adds the open one. */
static void
test_take_fifo_and_flush(void **state)
{
	struct fx *x = *state;
	struct batch *b;

	make_queue(x, BIG, 75, 2, BIG);
	assert_null(take(x, false));
	assert_null(take(x, true)); /* nothing at all */
	push(x, "m0");
	push(x, "m1"); /* sealed: m0 m1 */
	push(x, "m2");
	push(x, "m3"); /* sealed: m2 m3 */
	push(x, "m4"); /* open */
	b = take(x, false);
	assert_true(batch_has(b, "m0") && batch_has(b, "m1"));
	/* flush with a sealed batch waiting: the sealed one first. */
	b = take(x, true);
	assert_true(batch_has(b, "m2") && batch_has(b, "m3"));
	assert_int_equal(queue_open_lines(x->q), 1);
	/* Only the open batch is left: not without flush. */
	assert_null(take(x, false));
	b = take(x, true);
	assert_non_null(b);
	assert_int_equal(batch_lines(b), 1);
	assert_true(batch_has(b, "m4"));
	assert_int_equal(queue_open_lines(x->q), 0);
	assert_null(take(x, true));
	/* A line after the flush opens a new batch. */
	push(x, "m5");
	assert_int_equal(queue_open_lines(x->q), 1);
	assert_null(take(x, false));
	b = take(x, true);
	assert_true(batch_has(b, "m5") && !batch_has(b, "m4"));
}

/* queue_return(): the batch is taken next, before older sealed ones. */
static void
test_return_to_head(void **state)
{
	struct fx *x = *state;
	struct batch *a, *b;

	make_queue(x, BIG, 75, 1, BIG);
	push(x, "A");
	push(x, "B");
	push(x, "C");
	a = take(x, false);
	assert_true(batch_has(a, "A"));
	give_back(x, a);
	b = take(x, false);
	assert_ptr_equal(b, a);
	b = take(x, false);
	assert_true(batch_has(b, "B"));
	/* Returned in reverse order of taking: the last returned is next. */
	give_back(x, b);
	give_back(x, a);
	assert_ptr_equal(take(x, false), a);
	assert_ptr_equal(take(x, false), b);
	assert_true(batch_has(take(x, false), "C"));
	assert_null(take(x, false));
	/* Returned into an empty queue, then a newer batch behind it. */
	give_back(x, b);
	push(x, "D");
	assert_ptr_equal(take(x, false), b);
	assert_true(batch_has(take(x, false), "D"));
	assert_null(take(x, false));
	/* Returning does not change the accounting. */
	assert_int_equal(queue_lines(x->q), 4);
}

/*
 * queue_lines()/queue_bytes() count everything held, taken batches
 * included, and go back to 0 once every batch is done.
 */
static void
test_accounting(void **state)
{
	struct fx *x = *state;
	struct batch *b;
	size_t bytes, sum = 0, i;
	uint64_t lines = 0;

	make_queue(x, BIG, 75, 3, BIG);
	assert_int_equal(queue_bytes(x->q), 0);
	assert_int_equal(queue_lines(x->q), 0);
	for (i = 0; i < 10; i++)
		push_n(x, 100 + 1000 * i);
	assert_int_equal(queue_lines(x->q), 10);
	bytes = queue_bytes(x->q);
	assert_true(bytes > 0);
	/* Taking changes neither counter. */
	while ((b = take(x, true)) != NULL) {
		sum += b->charged;
		lines += batch_lines(b);
		assert_true(b->charged >= b->rows.cap);
	}
	assert_int_equal(x->ntaken, 4); /* 3 + 3 + 3 + 1 */
	assert_int_equal(lines, 10);
	assert_int_equal(sum, bytes);
	assert_int_equal(queue_bytes(x->q), bytes);
	assert_int_equal(queue_lines(x->q), 10);
	/* Done one by one: each takes exactly its share away. */
	while (x->ntaken > 0) {
		b = x->taken[x->ntaken - 1];
		sum = b->charged;
		lines = batch_lines(b);
		bytes = queue_bytes(x->q);
		i = (size_t)queue_lines(x->q);
		done(x, b);
		assert_int_equal(queue_bytes(x->q), bytes - sum);
		assert_int_equal(queue_lines(x->q), i - lines);
	}
	assert_int_equal(queue_bytes(x->q), 0);
	assert_int_equal(queue_lines(x->q), 0);
}

/* The open batch's age starts with its first line. */
static void
test_open_since(void **state)
{
	struct fx *x = *state;
	int64_t before, after;

	make_queue(x, BIG, 75, 10, BIG);
	assert_int_equal(queue_open_lines(x->q), 0);
	before = clock_mono_ms();
	push(x, "first");
	after = clock_mono_ms();
	assert_in_range(queue_open_since_ms(x->q), before, after);
	push(x, "second");
	assert_in_range(queue_open_since_ms(x->q), before, after);
	assert_int_equal(queue_open_lines(x->q), 2);
}

/* queue_free() frees sealed and open batches (ASan checks leaks). */
static void
test_free_with_batches(void **state)
{
	struct fx *x = *state;

	make_queue(x, BIG, 75, 2, BIG);
	push(x, "1");
	push(x, "2");
	push(x, "3");
	queue_free(x->q);
	x->q = NULL;
	queue_free(NULL);
}

static void
on_release(void *arg, uint64_t src, size_t bytes)
{
	struct fx *x = arg;

	assert_true(src == 1 || src == 2);
	x->released[src] += bytes;
	x->nreleases++;
}

/*
 * Rows appended in a round are attributed to its source, across a seal
 * in the middle of the round; lines outside a round to none.  Each
 * source gets its bytes back once, when the batch holding them is done,
 * not when it is taken or returned.
 */
static void
test_sources(void **state)
{
	struct fx *x = *state;
	struct batch *b1, *b2;
	size_t a, b, a2;

	make_queue(x, BIG, 75, 3, BIG);
	queue_set_source_callback(x->q, on_release, x);
	queue_source_begin(x->q, 1);
	push(x, "a1");
	push(x, "a2");
	a = queue_source_end(x->q);
	assert_true(a > 0);
	push(x, "none"); /* no round: nobody's; seals the batch (3 lines) */
	queue_source_begin(x->q, 2);
	push(x, "b1");
	push(x, "b2");
	push(x, "b3"); /* seals the second batch */
	push(x, "b4");
	b = queue_source_end(x->q);
	queue_source_begin(x->q, 1);
	push(x, "a3");
	a2 = queue_source_end(x->q);
	assert_int_equal(queue_source_end(x->q), 0); /* no round open */
	b1 = take(x, false);
	b2 = take(x, false);
	assert_non_null(b1);
	assert_non_null(b2);
	give_back(x, b1);
	assert_int_equal(x->nreleases, 0);
	b1 = take(x, false);
	done(x, b2);
	assert_int_equal(x->released[1], 0);
	assert_int_equal(x->released[2], b * 3 / 4); /* b1, b2, b3 */
	done(x, b1);
	assert_int_equal(x->released[1], a);
	b2 = take(x, true); /* the open one: b4 and a3 */
	assert_non_null(b2);
	done(x, b2);
	assert_int_equal(x->released[1], a + a2);
	assert_int_equal(x->released[2], b);
	assert_int_equal(x->nreleases, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_full_exactly_at_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_resume_watermark, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_no_space_cb_when_not_full, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_resume_level_rounding, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_resume_small_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_data, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_seal_at_batch_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_seal_at_batch_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_take_fifo_and_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_return_to_head, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_accounting, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_since, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_free_with_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
