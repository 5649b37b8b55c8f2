/*
 * Unit tests for the RELP decoder: every byte stream must give the same
 * frames and the same error however it is split into reads.
 *
 * Each case is a stream, the frames it must give (rendered "TXNR CMD
 * DATA|" each) and the error it must end with.  It is fed whole, split in
 * two at every offset and byte by byte, emulating the listener's contract
 * (unconsumed bytes are fed again with the next ones appended; the last
 * feed has eof set), with and without a callback that asks the decoder to
 * stop after each frame.  Then the limits, the txnr wrap and the encoder.
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

#include "logsink/relp.h"

#define MAXD 32

static const char *const cmd_names[] = { "open", "syslog", "close" };

struct out {
	char log[4096];
	size_t n;
	bool stop; /* the callback asks to stop after each frame */
};

static bool
record(void *arg, uint32_t txnr, enum relp_command cmd, const char *data,
    size_t len)
{
	struct out *o = arg;
	int k;

	k = snprintf(o->log + o->n, sizeof(o->log) - o->n, "%u %s %.*s|",
	    (unsigned)txnr, cmd_names[cmd], (int)len, data);
	assert_true(k > 0 && (size_t)k < sizeof(o->log) - o->n);
	o->n += (size_t)k;
	return !o->stop;
}

/*
 * Feeds in[0..len) in pieces cut at the offsets cuts[0..ncuts) the way
 * the listener does; returns the decoder's final error.
 */
static enum relp_error
run(const char *in, size_t len, const size_t *cuts, size_t ncuts, bool stop,
    struct out *o, size_t max_data)
{
	struct relp r;
	char *pend = malloc(len + 1);
	size_t have = 0, next = 0, i, used, end;
	bool eof;

	assert_non_null(pend);
	memset(o, 0, sizeof(*o));
	o->stop = stop;
	relp_init(&r, max_data);
	for (i = 0; i <= ncuts; i++) {
		end = i < ncuts ? cuts[i] : len;
		memcpy(pend + have, in + next, end - next);
		have += end - next;
		next = end;
		eof = i == ncuts;
		do {
			used = relp_feed(&r, pend, have, eof, record, o);
			if (used == 0 && r.err == RELP_OK && have > 0 && !stop)
				assert_true(r.need > have);
			memmove(pend, pend + used, have - used);
			have -= used;
		} while (used > 0 && have > 0 && r.err == RELP_OK);
		if (r.err != RELP_OK)
			break;
	}
	free(pend);
	return r.err;
}

struct rcase {
	const char *name;
	const char *in;
	const char *want;
	enum relp_error err;
};

#define OPEN "1 open 14 relp_version=0\n"

static const struct rcase cases[] = {
	{ "session", OPEN "2 syslog 5 <13>a\n3 syslog 7 <13>b\nc\n4 close 0\n",
	    "1 open relp_version=0|2 syslog <13>a|3 syslog <13>b\nc|4 close |",
	    RELP_OK },
	{ "binary data", OPEN "2 syslog 3 \n\0 \n",
	    "1 open relp_version=0|2 syslog \n|", RELP_OK },
	{ "empty syslog", OPEN "2 syslog 0\n",
	    "1 open relp_version=0|2 syslog |", RELP_OK },
	{ "exactly max", OPEN "2 syslog 32 0123456789abcdef0123456789abcdef\n",
	    "1 open relp_version=0|2 syslog 0123456789abcdef0123456789abcdef|",
	    RELP_OK },
	{ "oversized", OPEN "2 syslog 33 0123456789abcdef0123456789abcdef0\n",
	    "1 open relp_version=0|", RELP_ERR_OVERSIZED },
	{ "huge datalen", OPEN "2 syslog 999999999 x", "1 open relp_version=0|",
	    RELP_ERR_OVERSIZED },
	{ "10 digit datalen", OPEN "2 syslog 1000000000 x",
	    "1 open relp_version=0|", RELP_ERR_MALFORMED },
	{ "10 digit txnr", "1000000000 open 0\n", "", RELP_ERR_MALFORMED },
	{ "no space", OPEN "2syslog 1 x\n", "1 open relp_version=0|",
	    RELP_ERR_MALFORMED },
	{ "no command", OPEN "2  1 x\n", "1 open relp_version=0|",
	    RELP_ERR_MALFORMED },
	{ "long command", OPEN "2 abcdefghijklmnopqrstuvwxyzabcdefg 0\n",
	    "1 open relp_version=0|", RELP_ERR_MALFORMED },
	{ "datalen 0 with data", OPEN "2 syslog 0 x\n",
	    "1 open relp_version=0|", RELP_ERR_MALFORMED },
	{ "bad trailer", OPEN "2 syslog 1 xy", "1 open relp_version=0|",
	    RELP_ERR_MALFORMED },
	{ "garbage", "GET / HTTP/1.1\r\n", "", RELP_ERR_MALFORMED },
	{ "unknown command", OPEN "2 starttls 0\n", "1 open relp_version=0|",
	    RELP_ERR_COMMAND },
	{ "before open", "1 syslog 1 x\n", "", RELP_ERR_NOT_OPEN },
	{ "second open", OPEN "2 open 0\n", "1 open relp_version=0|",
	    RELP_ERR_NOT_OPEN },
	{ "txnr skipped", OPEN "3 syslog 1 x\n", "1 open relp_version=0|",
	    RELP_ERR_TXNR },
	{ "txnr repeated", OPEN "2 syslog 1 x\n2 syslog 1 y\n",
	    "1 open relp_version=0|2 syslog x|", RELP_ERR_TXNR },
	{ "txnr zero", "0 open 0\n", "", RELP_ERR_TXNR },
	{ "after close", OPEN "2 close 0\n3 syslog 1 x\n",
	    "1 open relp_version=0|2 close |", RELP_ERR_AFTER_CLOSE },
	{ "truncated header", OPEN "2 sysl", "1 open relp_version=0|",
	    RELP_ERR_TRUNCATED },
	{ "truncated data", OPEN "2 syslog 5 ab", "1 open relp_version=0|",
	    RELP_ERR_TRUNCATED },
	{ "nothing", "", "", RELP_OK },
};

/* Length of a case's stream ("binary data" holds a NUL). */
static size_t
case_len(const struct rcase *c)
{
	return strlen(c->in) + (strstr(c->name, "binary") ? 3 : 0);
}

static void
check_case(const struct rcase *c, const size_t *cuts, size_t ncuts, bool stop)
{
	struct out o;
	enum relp_error err;

	err = run(c->in, case_len(c), cuts, ncuts, stop, &o, MAXD);
	if (strcmp(o.log, c->want) != 0 || err != c->err)
		fail_msg("%s (%zu cuts, first %zu, stop %d): got '%s' %s, "
			 "want '%s' %s",
		    c->name, ncuts, ncuts ? cuts[0] : 0, stop, o.log,
		    relp_error_name(err), c->want, relp_error_name(c->err));
}

static void
test_whole_and_every_split(void **state)
{
	size_t i, k, len, *cuts;
	int stop;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = case_len(&cases[i]);
		cuts = calloc(len + 1, sizeof(*cuts));
		assert_non_null(cuts);
		for (stop = 0; stop <= 1; stop++) {
			check_case(&cases[i], NULL, 0, stop);
			for (k = 0; k <= len; k++) {
				cuts[0] = k;
				check_case(&cases[i], cuts, 1, stop);
			}
			for (k = 0; k < len; k++)
				cuts[k] = k + 1;
			check_case(&cases[i], cuts, len ? len - 1 : 0, stop);
		}
		free(cuts);
	}
}

static void
test_txnr_wrap(void **state)
{
	struct relp r;
	struct out o = { .n = 0 };
	const char in[] = "999999999 syslog 1 a\n1 syslog 1 b\n";
	size_t used;

	(void)state;
	assert_int_equal(relp_txnr_next(1), 2);
	assert_int_equal(relp_txnr_next(RELP_TXNR_MAX - 1), RELP_TXNR_MAX);
	assert_int_equal(relp_txnr_next(RELP_TXNR_MAX), 1);
	relp_init(&r, MAXD);
	r.open = true;
	r.last_txnr = RELP_TXNR_MAX - 1;
	used = relp_feed(&r, in, sizeof(in) - 1, false, record, &o);
	assert_int_equal(used, sizeof(in) - 1);
	assert_int_equal(r.err, RELP_OK);
	assert_string_equal(o.log, "999999999 syslog a|1 syslog b|");
	assert_int_equal(r.last_txnr, 1);
}

static void
test_error_txnr_and_sticky(void **state)
{
	struct relp r;
	struct out o = { .n = 0 };
	const char in[] = OPEN "2 bogus 0\n";
	size_t used;

	(void)state;
	relp_init(&r, MAXD);
	used = relp_feed(&r, in, sizeof(in) - 1, false, record, &o);
	assert_int_equal(used, strlen(OPEN));
	assert_int_equal(r.err, RELP_ERR_COMMAND);
	assert_int_equal(r.err_txnr, 2);
	assert_int_equal(r.need, 0);
	/* Nothing more is decoded after an error. */
	used = relp_feed(&r, "3 syslog 1 x\n", 13, false, record, &o);
	assert_int_equal(used, 0);
	assert_string_equal(o.log, "1 open relp_version=0|");
}

static void
test_need_is_whole_frame(void **state)
{
	struct relp r;
	struct out o = { .n = 0 };
	const char in[] = OPEN "2 syslog 20 abc";
	size_t used;

	(void)state;
	relp_init(&r, MAXD);
	used = relp_feed(&r, in, sizeof(in) - 1, false, record, &o);
	assert_int_equal(used, strlen(OPEN));
	used =
	    relp_feed(&r, in + used, sizeof(in) - 1 - used, false, record, &o);
	assert_int_equal(used, 0);
	assert_int_equal(r.need, strlen("2 syslog 20 ") + 20 + 1);
}

static void
test_format(void **state)
{
	char buf[RELP_RSP_MAX];
	const char *a = relp_open_answer();

	(void)state;
	assert_int_equal(relp_format(buf, sizeof(buf), 7, "rsp", "200 OK", 6),
	    strlen("7 rsp 6 200 OK\n"));
	assert_string_equal(buf, "7 rsp 6 200 OK\n");
	assert_int_equal(
	    relp_format(buf, sizeof(buf), 0, "serverclose", NULL, 0),
	    strlen("0 serverclose 0\n"));
	assert_string_equal(buf, "0 serverclose 0\n");
	assert_int_equal(relp_format(buf, 8, 7, "rsp", "200 OK", 6), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(relp_format_ok(buf, 7), strlen("7 rsp 6 200 OK\n"));
	assert_string_equal(buf, "7 rsp 6 200 OK\n");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(relp_format_ok(buf, RELP_TXNR_MAX),
	    strlen("999999999 rsp 6 200 OK\n"));
	assert_string_equal(buf, "999999999 rsp 6 200 OK\n");
	memset(buf, 0, sizeof(buf));
	relp_format_ok(buf, 1000000);
	assert_string_equal(buf, "1000000 rsp 6 200 OK\n");
	assert_int_equal(strncmp(a, "200 OK\n", 7), 0);
	assert_non_null(strstr(a, "\ncommands=syslog"));
	assert_non_null(strstr(a, "relp_version=0"));
	assert_string_equal(relp_error_name(RELP_ERR_TXNR), "txnr");
	assert_string_equal(relp_error_name(RELP_NERRORS), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_and_every_split),
		cmocka_unit_test(test_txnr_wrap),
		cmocka_unit_test(test_error_txnr_and_sticky),
		cmocka_unit_test(test_need_is_whole_frame),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
