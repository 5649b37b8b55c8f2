/*
 * Unit tests for the Journal Export Format decoder (body_journal.c): every
 * body must give the same records and the same error however it is split
 * into pieces.
 *
 * Each case is a body, the records it must give (rendered by render()) and
 * the error it must end with.  It is fed whole, split in two at every
 * offset and byte by byte, the way the HTTP glue does (unconsumed bytes
 * are fed again with the next ones appended; the last feed has end set),
 * with and without a callback that asks the decoder to stop after each
 * record.  Then the limits: a cut entry, a huge binary length, a field
 * name too long.
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

#include "logsink/body.h"
#include "logsink/body_journal.h"
#include "logsink/record.h"

struct out {
	char log[16384];
	size_t n;
	bool stop;
	int records;
};

static void
put(struct out *o, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *e = NULL;
		char tmp[8];

		if (s[i] == '\n')
			e = "\\n";
		else if (s[i] == '\0')
			e = "\\0";
		else {
			tmp[0] = s[i];
			tmp[1] = '\0';
			e = tmp;
		}
		assert_true(o->n + strlen(e) < sizeof(o->log));
		memcpy(o->log + o->n, e, strlen(e));
		o->n += strlen(e);
	}
}

static void
put_text(struct out *o, const char *tag, struct text t)
{
	put(o, tag, strlen(tag));
	if (t.ptr == NULL)
		put(o, "-", 1);
	else
		put(o, t.ptr, t.len);
}

/*
 * One record as "m=MSG h=HOST a=APP p=PROCID i=MSGID s=SEV f=FAC t=US
 * F=FIELDS|" with "-" for NULL (newline and NUL shown as \n and \0).
 */
static bool
render(void *arg, struct record *r)
{
	struct out *o = arg;
	char num[64];

	put_text(o, "m=", r->message);
	put_text(o, " h=", r->host);
	put_text(o, " a=", r->app);
	put_text(o, " p=", r->procid);
	put_text(o, " i=", r->msgid);
	snprintf(num, sizeof(num), " s=%d f=%d t=", r->severity, r->facility);
	put(o, num, strlen(num));
	if (r->has_event_time)
		snprintf(num, sizeof(num), "%lld", (long long)r->event_us);
	else
		snprintf(num, sizeof(num), "-");
	put(o, num, strlen(num));
	put_text(o, " F=", r->fields);
	put(o, "|", 1);
	o->records++;
	return !o->stop;
}

/*
 * Feeds in[0..len) in pieces cut at cuts[0..ncuts) as the glue does;
 * returns the decoder's final error (NULL: none).
 */
static const char *
run(const char *in, size_t len, const size_t *cuts, size_t ncuts, bool stop,
    struct out *o, size_t max_entry)
{
	struct body_limits lim = { max_entry, 1 << 20, 32 };
	void *st = body_journal.new(&lim);
	char *pend = malloc(len + 1);
	size_t have = 0, next = 0, i, used, end, need;
	const char *err;
	bool eof;

	assert_non_null(st);
	assert_non_null(pend);
	memset(o, 0, sizeof(*o));
	o->stop = stop;
	for (i = 0; i <= ncuts; i++) {
		end = i < ncuts ? cuts[i] : len;
		memcpy(pend + have, in + next, end - next);
		have += end - next;
		next = end;
		eof = i == ncuts;
		do {
			used = body_journal.feed(
			    st, pend, have, eof, &need, render, o);
			assert_true(used <= have);
			memmove(pend, pend + used, have - used);
			have -= used;
		} while (used > 0 && have > 0);
		if (!stop)
			assert_int_equal(have, 0);
	}
	/* After a stop on the last bytes: the glue feeds again at the end. */
	while (have > 0 || stop) {
		used =
		    body_journal.feed(st, pend, have, true, &need, render, o);
		memmove(pend, pend + used, have - used);
		have -= used;
		if (have == 0) {
			used = body_journal.feed(
			    st, pend, 0, true, &need, render, o);
			break;
		}
	}
	err = body_journal.error(st);
	body_journal.free(st);
	free(pend);
	return err;
}

struct tcase {
	const char *name;
	const char *in;
	size_t len; /* 0: strlen(in) */
	const char *want;
	const char *err;  /* NULL: none */
	size_t max_entry; /* 0: 4096 */
};

#define BIN(n) (char)(n), 0, 0, 0, 0, 0, 0, 0

static const char bin_msg[] = { '_', 'P', 'I', 'D', '=', '7', '\n', 'M', 'E',
	'S', 'S', 'A', 'G', 'E', '\n', BIN(9), 'f', 'o', 'o', '\n', 'b', 'a',
	'r', '\0', 'z', '\n', 'X', '=', '1', '\n', '\n' };

/* A binary value of "\n\n" must not end the entry; length 0 is allowed. */
static const char bin_nl[] = { 'A', '\n', BIN(2), '\n', '\n', '\n', 'B', '\n',
	BIN(0), '\n', 'M', 'E', 'S', 'S', 'A', 'G', 'E', '=', 'x', '\n', '\n' };

/* Declared length far past the data limit. */
static const char bin_huge[] = { 'A', '\n', (char)0xff, (char)0xff, (char)0xff,
	(char)0xff, (char)0xff, (char)0xff, (char)0xff, (char)0xff, 'x', '\n',
	'\n' };

/* A binary value not followed by LF. */
static const char bin_nolf[] = { 'A', '\n', BIN(1), 'x', 'y', '\n', '\n' };

/* The body ends inside a binary value. */
static const char bin_short[] = { 'M', 'E', 'S', 'S', 'A', 'G', 'E', '=', 'a',
	'\n', '\n', 'A', '\n', BIN(100), 'x', 'y' };

static const struct tcase cases[] = {
	{ "two entries",
	    "__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1342540861416409\n"
	    "__MONOTONIC_TIMESTAMP=21415215982\n_BOOT_ID=6c7c\n"
	    "PRIORITY=4\nSYSLOG_FACILITY=3\nSYSLOG_IDENTIFIER=gdm\n"
	    "SYSLOG_PID=587\nMESSAGE=hello world\n_PID=588\n_COMM=gdm-s\n"
	    "_HOSTNAME=epsilon\nMESSAGE_ID=fc2e22bc6ee647b6b90729ab34a250b1\n"
	    "\n"
	    "__CURSOR=s=1;i=2\nMESSAGE=second\n_COMM=run-parts\n"
	    "SYSLOG_PID=9\n\n",
	    0,
	    "m=hello world h=epsilon a=gdm p=588 "
	    "i=fc2e22bc6ee647b6b90729ab34a250b1 s=4 f=3 t=1342540861416409 "
	    "F={\"__CURSOR\":\"s=1;i=1\",\"__MONOTONIC_TIMESTAMP\":"
	    "\"21415215982\",\"_BOOT_ID\":\"6c7c\",\"SYSLOG_PID\":\"587\","
	    "\"_COMM\":\"gdm-s\"}|"
	    "m=second h=- a=run-parts p=9 i=- s=-1 f=-1 t=- "
	    "F={\"__CURSOR\":\"s=1;i=2\"}|",
	    NULL, 0 },
	{ "binary message with LF and NUL", bin_msg, sizeof(bin_msg),
	    "m=foo\\nbar\\0z h=- a=- p=7 i=- s=-1 f=-1 t=- F={\"X\":\"1\"}|",
	    NULL, 0 },
	{ "binary value of two LFs, and length 0", bin_nl, sizeof(bin_nl),
	    "m=x h=- a=- p=- i=- s=-1 f=-1 t=- F={\"A\":\"\\n\\n\","
	    "\"B\":\"\"}|",
	    NULL, 0 },
	{ "repeated field: an array in arrival order",
	    "_UDEV_DEVLINK=/dev/b\nMESSAGE=m\n_UDEV_DEVLINK=/dev/a\n"
	    "MESSAGE=again\n\n",
	    0,
	    "m=m h=- a=- p=- i=- s=-1 f=-1 t=- F={\"MESSAGE\":\"again\","
	    "\"_UDEV_DEVLINK\":[\"/dev/b\",\"/dev/a\"]}|",
	    NULL, 0 },
	{ "values that do not fit their column stay in fields",
	    "PRIORITY=9\nSYSLOG_FACILITY=24\n"
	    "__REALTIME_TIMESTAMP=99999999999999999999999\n_HOSTNAME=\n"
	    "_PID=x1\nMESSAGE=m\n\n"
	    "PRIORITY=07\nSYSLOG_FACILITY=23\n__REALTIME_TIMESTAMP=-5\n\n"
	    "__REALTIME_TIMESTAMP=18446744073709551616\n\n",
	    0,
	    "m=m h=- a=- p=x1 i=- s=-1 f=-1 t=- F={\"PRIORITY\":\"9\","
	    "\"SYSLOG_FACILITY\":\"24\",\"__REALTIME_TIMESTAMP\":"
	    "\"99999999999999999999999\",\"_HOSTNAME\":\"\"}|"
	    "m=- h=- a=- p=- i=- s=7 f=23 t=- F={\"__REALTIME_TIMESTAMP\":"
	    "\"-5\"}|"
	    "m=- h=- a=- p=- i=- s=-1 f=-1 t=- F={\"__REALTIME_TIMESTAMP\":"
	    "\"18446744073709551616\"}|",
	    NULL, 0 },
	{ "JSON escapes in fields, '=' in a value",
	    "A=say \"hi\" \\ \x01\tend\nB=x=y\n\n", 0,
	    "m=- h=- a=- p=- i=- s=-1 f=-1 t=- F={\"A\":\"say \\\"hi\\\" "
	    "\\\\ \\u0001\\tend\",\"B\":\"x=y\"}|",
	    NULL, 0 },
	{ "extra empty lines, no final empty line, no final LF",
	    "\n\nMESSAGE=a\n\n\n\nMESSAGE=b\n\nMESSAGE=c", 0,
	    "m=a h=- a=- p=- i=- s=-1 f=-1 t=- F=-|"
	    "m=b h=- a=- p=- i=- s=-1 f=-1 t=- F=-|"
	    "m=c h=- a=- p=- i=- s=-1 f=-1 t=- F=-|",
	    NULL, 0 },
	{ "empty body", "", 0, "", NULL, 0 },
	{ "lowercase name", "MESSAGE=a\n\nmessage=b\n\n", 0,
	    "m=a h=- a=- p=- i=- s=-1 f=-1 t=- F=-|", "bad-field-name", 0 },
	{ "name starting with a digit", "1A=b\n\n", 0, "", "bad-field-name",
	    0 },
	{ "empty name", "=b\n\n", 0, "", "bad-field-name", 0 },
	{ "space in a name", "A B=b\n\n", 0, "", "bad-field-name", 0 },
	{ "name of 65 bytes",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	    "x\n\n",
	    0, "", "bad-field-name", 0 },
	{ "name of 64 bytes",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	    "x\n"
	    "\n",
	    0,
	    "m=- h=- a=- p=- i=- s=-1 f=-1 t=- F={\"AAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\":\"x\"}|",
	    NULL, 0 },
	{ "binary length past the limit", bin_huge, sizeof(bin_huge), "",
	    "bad-binary-length", 0 },
	{ "binary value without its LF", bin_nolf, sizeof(bin_nolf), "",
	    "bad-binary-field", 0 },
	{ "body ends inside a binary value", bin_short, sizeof(bin_short),
	    "m=a h=- a=- p=- i=- s=-1 f=-1 t=- F=-|", "truncated-entry", 0 },
	{ "body ends inside a name", "MESSAGE=a\n\nABC", 0,
	    "m=a h=- a=- p=- i=- s=-1 f=-1 t=- F=-|", "truncated-entry", 0 },
	/* 64 bytes: A (1+16) and its value fill 17+40; B's name would
	 * pass the limit, so B is dropped; MESSAGE, a column field, keeps
	 * its first 256 bytes past the limit; the second MESSAGE is dropped.
	 * A's value is cut at 64-17 = 47 bytes, inside the 2-byte "é" at
	 * 46..47, so at 46. */
	{ "entry over the limit: cut, dropped, column kept",
	    "A=0123456789012345678901234567890123456789012345\xc3\xa9tail\n"
	    "B=bbb\nMESSAGE=the message\nMESSAGE=again\n\nC=next\n\n",
	    0,
	    "m=the message h=- a=- p=- i=- s=-1 f=-1 t=- F={\"A\":"
	    "\"0123456789012345678901234567890123456789012345\","
	    "\"logsink_cut\":\"22\"}|"
	    "m=- h=- a=- p=- i=- s=-1 f=-1 t=- F={\"C\":\"next\"}|",
	    NULL, 64 },
};

static void
check_case(const struct tcase *c, const size_t *cuts, size_t ncuts, bool stop)
{
	struct out o;
	const char *err;
	size_t len = c->len ? c->len : strlen(c->in);

	err = run(c->in, len, cuts, ncuts, stop, &o,
	    c->max_entry ? c->max_entry : 4096);
	o.log[o.n] = '\0';
	if (strcmp(o.log, c->want) != 0 || (err == NULL) != (c->err == NULL) ||
	    (err != NULL && strcmp(err, c->err) != 0))
		fail_msg("%s (ncuts %zu, cut %zu, stop %d):\n got  %s [%s]\n "
			 "want %s [%s]",
		    c->name, ncuts, ncuts ? cuts[0] : 0, stop, o.log,
		    err ? err : "ok", c->want, c->err ? c->err : "ok");
}

/* Every case whole, split in two at every offset, and byte by byte. */
static void
test_cases(void **state)
{
	size_t i, k, len, *cuts;
	int stop;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];

		len = c->len ? c->len : strlen(c->in);
		cuts = malloc((len + 1) * sizeof(*cuts));
		assert_non_null(cuts);
		for (stop = 0; stop <= 1; stop++) {
			check_case(c, NULL, 0, stop);
			for (k = 0; k <= len; k++) {
				cuts[0] = k;
				check_case(c, cuts, 1, stop);
			}
			for (k = 0; k < len; k++)
				cuts[k] = k + 1;
			check_case(c, cuts, len, stop);
		}
		free(cuts);
	}
}

/* A stop returns right after the entry; the rest comes with the next. */
static void
test_stop_position(void **state)
{
	static const char in[] = "MESSAGE=a\n\nMESSAGE=b\n\n";
	struct body_limits lim = { 4096, 1 << 20, 32 };
	void *st = body_journal.new(&lim);
	struct out o;
	size_t need, used;

	(void)state;
	assert_non_null(st);
	memset(&o, 0, sizeof(o));
	o.stop = true;
	used =
	    body_journal.feed(st, in, sizeof(in) - 1, true, &need, render, &o);
	assert_int_equal(used, 11);
	assert_int_equal(o.records, 1);
	used = body_journal.feed(
	    st, in + 11, sizeof(in) - 12, true, &need, render, &o);
	assert_int_equal(used, sizeof(in) - 12);
	assert_int_equal(o.records, 2);
	assert_int_equal(body_journal_entries(st), 2);
	assert_int_equal(body_journal_entries_cut(st), 0);
	assert_null(body_journal.error(st));
	body_journal.free(st);
}

/*
 * A binary field declaring 700 MiB (under the data limit) is counted
 * down, never allocated: the decoder holds at most the entry limit while
 * 1 MiB of it goes by, and it is stored cut.
 */
static void
test_big_binary_streams(void **state)
{
	struct body_limits lim = { 1024, 1 << 20, 32 };
	void *st = body_journal.new(&lim);
	static char chunk[65536];
	char hdr[32] = "COREDUMP\n";
	uint64_t total = 1u << 20, sent = 0;
	struct out o;
	size_t need, i;

	(void)state;
	assert_non_null(st);
	memset(&o, 0, sizeof(o));
	for (i = 0; i < 8; i++)
		hdr[9 + i] = (char)((total >> (8 * i)) & 0xff);
	assert_int_equal(
	    body_journal.feed(st, hdr, 17, false, &need, render, &o), 17);
	memset(chunk, 'x', sizeof(chunk));
	while (sent < total) {
		assert_int_equal(body_journal.feed(st, chunk, sizeof(chunk),
				     false, &need, render, &o),
		    sizeof(chunk));
		sent += sizeof(chunk);
	}
	assert_int_equal(body_journal.feed(st, "\nMESSAGE=m\n\n", 12, true,
			     &need, render, &o),
	    12);
	assert_null(body_journal.error(st));
	assert_int_equal(o.records, 1);
	assert_int_equal(body_journal_entries_cut(st), 1);
	o.log[o.n] = '\0';
	assert_non_null(strstr(o.log, "m=m "));
	assert_non_null(strstr(o.log, "\"logsink_cut\":\""));
	body_journal.free(st);
}

/* After an error every byte is consumed and nothing more emitted. */
static void
test_after_error(void **state)
{
	static const char in[] = "a=b\n\nMESSAGE=x\n\n";
	struct body_limits lim = { 4096, 1 << 20, 32 };
	void *st = body_journal.new(&lim);
	struct out o;
	size_t need;

	(void)state;
	assert_non_null(st);
	memset(&o, 0, sizeof(o));
	assert_int_equal(
	    body_journal.feed(st, in, sizeof(in) - 1, false, &need, render, &o),
	    sizeof(in) - 1);
	assert_int_equal(
	    body_journal.feed(st, in, sizeof(in) - 1, true, &need, render, &o),
	    sizeof(in) - 1);
	assert_int_equal(o.records, 0);
	assert_string_equal(body_journal.error(st), "bad-field-name");
	body_journal.free(st);
}

/*
 * More fields than the repeat table takes (they are sorted), and a repeat
 * among many: each name once, the repeated one an array.
 */
static void
test_many_fields(void **state)
{
	char in[4096];
	size_t n = 0, i;
	int k;
	struct out o;
	const char *err;

	(void)state;
	for (i = 0; i < 70; i++) {
		k = snprintf(in + n, sizeof(in) - n, "F%zu=%zu\n", i, i);
		n += (size_t)k;
	}
	memcpy(in + n, "F7=again\n\n", 10);
	n += 10;
	err = run(in, n, NULL, 0, false, &o, 4096);
	assert_null(err);
	o.log[o.n] = '\0';
	assert_int_equal(o.records, 1);
	assert_non_null(strstr(o.log, "\"F7\":[\"7\",\"again\"]"));
	assert_non_null(strstr(o.log, "\"F69\":\"69\""));
	assert_null(strstr(o.log, "\"F7\":\"7\""));
}

/*
 * A host or app longer than 255 bytes stays in fields (a btree index row
 * has its limits); 255 bytes still go to the column.
 */
static void
test_long_columns(void **state)
{
	char in[2048], v255[256], v256[257];
	struct out o;
	int n;

	(void)state;
	memset(v255, 'h', 255);
	v255[255] = '\0';
	memset(v256, 'a', 256);
	v256[256] = '\0';
	n = snprintf(in, sizeof(in),
	    "_HOSTNAME=%s\nSYSLOG_IDENTIFIER=%s\n_COMM=c\n\n", v255, v256);
	assert_null(run(in, (size_t)n, NULL, 0, false, &o, 4096));
	o.log[o.n] = '\0';
	assert_non_null(strstr(o.log, " h=hhhhh"));
	assert_non_null(strstr(o.log, " a=c "));
	assert_non_null(strstr(o.log, "\"SYSLOG_IDENTIFIER\":\"aaaa"));
}

/* The success answer is journal-remote's "OK." in text/plain. */
static void
test_answer(void **state)
{
	struct body_limits lim = { 4096, 1 << 20, 32 };
	void *st = body_journal.new(&lim);
	const char *ct = NULL;
	char out[64];
	size_t n;

	(void)state;
	assert_non_null(st);
	n = body_journal.answer(st, out, sizeof(out), &ct);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "OK.\n", 4);
	assert_string_equal(ct, "text/plain");
	assert_int_equal(body_journal.rejected(st), 0);
	assert_string_equal(body_journal.name, "journal");
	body_journal.free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_stop_position),
		cmocka_unit_test(test_big_binary_streams),
		cmocka_unit_test(test_after_error),
		cmocka_unit_test(test_many_fields),
		cmocka_unit_test(test_long_columns),
		cmocka_unit_test(test_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
