/*
 * Unit tests for poison.c: the bisection of a batch whose COPY PostgreSQL
 * refused because of its rows (split into halves at row boundaries, the
 * pending ranges as a stack, every row sent exactly once, a batch given
 * back to the queue resuming where it was, a failing row isolated as a
 * one-row range), which SQLSTATEs count as data errors, and the decoding
 * of a rejected row for the dead-letter table.
 *
 * Batches are built here with batch_int.h (rows encoded by copyenc_row,
 * as the queue does); the row of message "row N" is row N.  drive() plays
 * pgpool's part: it sends the current range, and when the range holds a
 * bad row it splits it, or dead-letters it if it is a single row.
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
#include "logsink/copyenc.h"
#include "logsink/poison.h"
#include "logsink/queue.h"
#include "logsink/record.h"
#include "../../src/batch_int.h" /* to build batches without a queue */

#define MAXROWS 80

/* What drive() saw happen to each row. */
struct outcome {
	uint32_t stored[MAXROWS];   /* times committed in a range */
	uint32_t rejected[MAXROWS]; /* times dead-lettered */
	uint32_t copies;            /* COPYs sent (ranges tried) */
	uint32_t splits;
};

/* Heap fixture: teardown frees the batch, the queue and the buffers. */
struct fx {
	struct batch *b; /* built by make_batch(); not in a queue */
	struct queue *q;
	struct buf raw, text_row, subject, row, want;
	char msg[64];
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

	if (x->b != NULL)
		batch_free(x->b, NULL);
	queue_free(x->q);
	buf_free(&x->raw);
	buf_free(&x->text_row);
	buf_free(&x->subject);
	buf_free(&x->row);
	buf_free(&x->want);
	free(x);
	return 0;
}

/* Record i: message "row i" padded to a length that varies with i, so
 * that rows differ in size and a split offset is not a multiple. */
static void
make_record(struct fx *x, uint32_t i, struct record *r)
{
	int n;

	memset(r, 0, sizeof(*r));
	record_clear_parsed(r);
	r->received_us = INT64_C(1700000000000000) + i;
	n = snprintf(x->msg, sizeof(x->msg), "row %u %.*s", i,
	    (int)(i * 7 % 40), "........................................");
	r->message.ptr = x->msg;
	r->message.len = (size_t)n;
}

/* A batch of rows 0..n-1, encoded as the queue encodes them. */
static void
make_batch(struct fx *x, uint32_t n)
{
	struct record r;
	size_t replaced;
	uint32_t i;

	if (x->b != NULL)
		batch_free(x->b, NULL);
	assert_non_null(x->b = batch_new(0));
	for (i = 0; i < n; i++) {
		make_record(x, i, &r);
		assert_int_equal(copyenc_row(&x->b->rows, &r, &replaced), 0);
		x->b->lines++;
	}
}

/* The row numbers in range r of b; checks that r holds whole rows. */
static uint32_t
range_rows(const struct batch *b, const struct batch_range *r, uint32_t *idx)
{
	const char *p = batch_rows(b) + r->off, *end = p + r->len;
	struct record rec;
	char peer[64];
	unsigned v;
	uint32_t n = 0;
	size_t len;

	assert_true(r->off + r->len <= batch_rows_len(b));
	while (p < end) {
		len = copyenc_row_size(p, (size_t)(end - p));
		assert_true(len > 0);
		assert_int_equal(
		    copyenc_decode(p, len, &rec, peer, sizeof(peer)), 0);
		assert_int_equal(sscanf(rec.message.ptr, "row %u", &v), 1);
		assert_true(n < MAXROWS);
		idx[n++] = v;
		p += len;
	}
	assert_int_equal(n, r->lines);
	return n;
}

/*
 * pgpool's loop over a batch: send the current range; if it holds a bad
 * row, split it (or dead-letter its single row), else it is stored; pop.
 * Stops when the batch is complete, or after stop_after COPYs (0: never)
 * with the batch mid-bisection.  True when complete.
 */
static bool
drive(struct batch *b, const bool *bad, struct outcome *o, uint32_t stop_after)
{
	struct batch_range r;
	uint32_t idx[MAXROWS], n, i, steps = 0;
	bool has_bad;

	for (;;) {
		assert_true(steps++ < 4 * MAXROWS + 4); /* it ends */
		if (stop_after > 0 && o->copies == stop_after)
			return false;
		poison_current(b, &r);
		n = range_rows(b, &r, idx);
		o->copies++;
		has_bad = false;
		for (i = 0; i < n; i++)
			has_bad = has_bad || bad[idx[i]];
		if (has_bad && r.lines > 1) {
			assert_int_equal(poison_split(b), 0);
			assert_true(batch_is_split(b));
			o->splits++;
			continue;
		}
		for (i = 0; i < n; i++) {
			if (has_bad)
				o->rejected[idx[i]]++;
			else
				o->stored[idx[i]]++;
		}
		if (poison_pop(b))
			return true;
	}
}

static void
assert_range_equal(const struct batch_range *a, const struct batch_range *b)
{
	assert_int_equal(a->off, b->off);
	assert_int_equal(a->len, b->len);
	assert_int_equal(a->lines, b->lines);
}

/* Every row was sent once: the bad ones dead-lettered, the rest stored. */
static void
assert_each_row_once(const bool *bad, const struct outcome *o, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		assert_int_equal(o->stored[i], bad[i] ? 0 : 1);
		assert_int_equal(o->rejected[i], bad[i] ? 1 : 0);
	}
	for (; i < MAXROWS; i++)
		assert_int_equal(o->stored[i] + o->rejected[i], 0);
}

/*
 * A range of n rows splits into rows 0..n/2-1 (sent next) and n/2..n-1,
 * at the row boundary; one row cannot be split (the batch is unchanged).
 */
static void
test_split_halves(void **state)
{
	struct fx *x = *state;
	struct batch_range whole, first, second;
	uint32_t idx[MAXROWS], n, i;

	for (n = 1; n <= 40; n++) {
		make_batch(x, n);
		poison_current(x->b, &whole);
		assert_int_equal(whole.off, 0);
		assert_int_equal(whole.len, batch_rows_len(x->b));
		assert_int_equal(whole.lines, n);
		assert_false(batch_is_split(x->b));
		if (n == 1) {
			assert_int_equal(poison_split(x->b), -1);
			assert_false(batch_is_split(x->b));
			poison_current(x->b, &first);
			assert_range_equal(&first, &whole);
			assert_true(poison_pop(x->b));
			continue;
		}
		assert_int_equal(poison_split(x->b), 0);
		assert_true(batch_is_split(x->b));
		poison_current(x->b, &first);
		assert_int_equal(first.off, 0);
		assert_int_equal(first.lines, n / 2);
		assert_int_equal(range_rows(x->b, &first, idx), n / 2);
		for (i = 0; i < n / 2; i++)
			assert_int_equal(idx[i], i);
		assert_false(poison_pop(x->b));
		poison_current(x->b, &second);
		assert_int_equal(second.off, first.len);
		assert_int_equal(second.off + second.len, whole.len);
		assert_int_equal(second.lines, n - n / 2);
		assert_int_equal(range_rows(x->b, &second, idx), n - n / 2);
		for (i = 0; i < n - n / 2; i++)
			assert_int_equal(idx[i], n / 2 + i);
		assert_true(poison_pop(x->b));
		assert_false(batch_is_split(x->b));
	}
}

/*
 * Whatever rows are bad (none, one anywhere, two, every other one, all),
 * the pops visit every row exactly once; only the bad ones end up
 * dead-lettered; a clean batch goes in one COPY.
 */
static void
test_every_row_once(void **state)
{
	struct fx *x = *state;
	struct outcome o;
	bool bad[MAXROWS];
	uint32_t n, k, i, pattern;

	for (n = 1; n <= 33; n++) {
		for (pattern = 0; pattern < n + 4; pattern++) {
			memset(bad, 0, sizeof(bad));
			memset(&o, 0, sizeof(o));
			if (pattern < n) {
				bad[pattern] = true;
			} else if (pattern == n) {
				bad[0] = bad[n - 1] = true;
			} else if (pattern == n + 1) {
				for (i = 0; i < n; i += 2)
					bad[i] = true;
			} else if (pattern == n + 2) {
				for (i = 0; i < n; i++)
					bad[i] = true;
			} /* else none */
			make_batch(x, n);
			assert_true(drive(x->b, bad, &o, 0));
			assert_each_row_once(bad, &o, n);
			for (k = i = 0; i < n; i++)
				k += bad[i];
			if (k == 0)
				assert_int_equal(o.copies, 1);
			/* A split makes two ranges of one: each range is
			 * tried once, so copies = 2 * splits + 1. */
			assert_int_equal(o.copies, 2 * o.splits + 1);
		}
	}
}

/*
 * One bad row in the middle: each range holding it is smaller than the
 * last (about half), it ends as a one-row range of exactly that row, and
 * that takes at most ceil(log2(n)) splits.
 */
static void
test_middle_row_isolated(void **state)
{
	struct fx *x = *state;
	struct batch_range r;
	uint32_t idx[MAXROWS], n = 37, m = 18, prev = 38, i, splits = 0;
	bool holds;

	make_batch(x, n);
	for (;;) {
		poison_current(x->b, &r);
		(void)range_rows(x->b, &r, idx);
		holds = false;
		for (i = 0; i < r.lines; i++)
			holds = holds || idx[i] == m;
		if (!holds) {
			assert_false(poison_pop(x->b));
			continue;
		}
		assert_true(r.lines < prev);
		assert_true(r.lines <= (prev + 1) / 2 || prev == 38);
		prev = r.lines;
		if (r.lines == 1)
			break;
		assert_int_equal(poison_split(x->b), 0);
		splits++;
	}
	assert_int_equal(idx[0], m);
	assert_true(splits <= 6); /* ceil(log2(37)) */
	/* The row failed again: it cannot be split, it is dead-lettered. */
	assert_int_equal(poison_split(x->b), -1);
	poison_current(x->b, &r);
	assert_int_equal(r.lines, 1);
	/* The rest of the batch still follows. */
	assert_false(poison_pop(x->b));
}

/*
 * A batch given back to the queue mid-bisection (the connection failed)
 * is the next one taken, with its pending ranges: sending resumes at the
 * range it was at, and every row is still sent exactly once.
 */
static void
test_return_resumes(void **state)
{
	struct fx *x = *state;
	struct batch_range before, after;
	struct outcome o;
	struct record r;
	struct batch *b;
	bool bad[MAXROWS] = { false };
	size_t replaced;
	uint32_t i, n = 20;

	assert_non_null(
	    x->q = queue_new((size_t)1 << 30, 75, n, (size_t)1 << 30));
	for (i = 0; i < n; i++) {
		make_record(x, i, &r);
		assert_int_equal(queue_append(x->q, &r, &replaced), 0);
	}
	make_record(x, n, &r);
	assert_int_equal(queue_append(x->q, &r, &replaced), 0); /* open */
	bad[3] = bad[14] = true;
	memset(&o, 0, sizeof(o));
	assert_non_null(b = queue_take(x->q, false));
	assert_int_equal(batch_lines(b), n);
	assert_false(drive(b, bad, &o, 5));
	assert_true(batch_is_split(b));
	poison_current(b, &before);
	assert_true(before.lines < n);
	queue_return(x->q, b);

	assert_ptr_equal(queue_take(x->q, false), b);
	assert_true(batch_is_split(b));
	poison_current(b, &after);
	assert_range_equal(&after, &before);
	assert_true(drive(b, bad, &o, 0));
	assert_each_row_once(bad, &o, n);
	queue_done(x->q, b);
	assert_int_equal(queue_lines(x->q), 1);
}

/* SQLSTATE classes caused by the rows (22, 23, P0, 54) and some that are
 * not (connection, transaction rollback, resources, operator action). */
static void
test_is_data_error(void **state)
{
	static const char *yes[] = { "22000", "22P02", "22021", "23505",
		"23502", "P0001", "54000", "54001" };
	static const char *no[] = { "08006", "08000", "40001", "40P01", "53100",
		"53200", "57014", "57P01", "42P01", "XX000", "00000", "" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(poison_is_data_error(yes[i]));
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(poison_is_data_error(no[i]));
}

/* Encodes r into x->row and decodes it with poison_row_fields(). */
static int
row_fields(struct fx *x, const struct record *r, size_t cut, char *ra,
    size_t ralen, char *peer, bool *has_subject)
{
	size_t replaced;

	buf_reset(&x->row);
	assert_int_equal(copyenc_row(&x->row, r, &replaced), 0);
	assert_true(cut < x->row.len);
	return poison_row_fields(x->row.data, x->row.len - cut, ra, ralen, peer,
	    64, &x->raw, &x->text_row, &x->subject, has_subject);
}

/*
 * The dead-letter fields of a row: received_at as text, the peer (empty
 * for NULL), the message's bytes as stored, the row as COPY text without
 * its LF, and the TLS subject or its absence.
 */
static void
test_row_fields(void **state)
{
	struct fx *x = *state;
	static const char msg[] = "tab\there \\ back\nslash \xc3\xa9";
	struct record r;
	char ra[64], peer[64];
	size_t replaced;
	bool has_subject = true;

	memset(&r, 0, sizeof(r));
	record_clear_parsed(&r);
	r.received_us = INT64_C(1700000000123456);
	r.peer = "192.0.2.7";
	r.message.ptr = msg;
	r.message.len = sizeof(msg) - 1;
	r.app.ptr = "app";
	r.app.len = 3;
	r.severity = 3;
	assert_int_equal(
	    row_fields(x, &r, 0, ra, sizeof(ra), peer, &has_subject), 0);
	assert_string_equal(ra, "2023-11-14 22:13:20.123456+00");
	assert_string_equal(peer, "192.0.2.7");
	assert_int_equal(x->raw.len, sizeof(msg) - 1);
	assert_memory_equal(x->raw.data, msg, sizeof(msg) - 1);
	assert_true(x->raw.cap > x->raw.len); /* room for a NUL */
	assert_false(has_subject);
	assert_int_equal(copyenc_row_text(&x->want, &r, &replaced), 0);
	assert_int_equal(x->want.data[x->want.len - 1], '\n');
	assert_int_equal(x->text_row.len, x->want.len);
	assert_memory_equal(x->text_row.data, x->want.data, x->want.len - 1);
	assert_int_equal(x->text_row.data[x->text_row.len - 1], '\0');

	/* No peer, an IPv6 one, a TLS subject; bytes copyenc replaced. */
	r.peer = NULL;
	r.message.ptr = "a\0b";
	r.message.len = 3;
	r.tls_subject.ptr = "CN=client,O=Example";
	r.tls_subject.len = strlen(r.tls_subject.ptr);
	assert_int_equal(
	    row_fields(x, &r, 0, ra, sizeof(ra), peer, &has_subject), 0);
	assert_string_equal(peer, "");
	assert_true(has_subject);
	assert_string_equal(x->subject.data, "CN=client,O=Example");
	assert_int_equal(x->raw.len, 5);
	assert_memory_equal(x->raw.data,
	    "a\xef\xbf\xbd"
	    "b",
	    5);
	r.peer = "2001:db8::1";
	r.tls_subject.ptr = NULL;
	r.tls_subject.len = 0;
	assert_int_equal(
	    row_fields(x, &r, 0, ra, sizeof(ra), peer, &has_subject), 0);
	assert_string_equal(peer, "2001:db8::1");
	assert_false(has_subject);

	/* A row cut short, by one byte or more, is not a row. */
	assert_int_equal(
	    row_fields(x, &r, 1, ra, sizeof(ra), peer, &has_subject), -1);
	assert_int_equal(
	    row_fields(x, &r, 10, ra, sizeof(ra), peer, &has_subject), -1);
	/* received_at needs 40 bytes. */
	assert_int_equal(row_fields(x, &r, 0, ra, 39, peer, &has_subject), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_split_halves, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_every_row_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_middle_row_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_return_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_is_data_error, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_row_fields, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
