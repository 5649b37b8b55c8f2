/*
 * Unit tests for the framer: every byte stream must give the same messages
 * however it is split into reads.
 *
 * Each stream below is a table of (input piece, expected message) pairs
 * written by hand; the input is their concatenation.  The stream is fed
 * whole, split in two at every offset, byte by byte and in random chunks,
 * emulating the listener's contract (unconsumed bytes are kept and fed
 * again with the next bytes appended; the last feed has eof set), with and
 * without a callback that asks the framer to stop.  Every run must give
 * exactly the expected list of messages (bytes and truncated flag) and the
 * same counters.
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
#include "logsink/framer.h"

/* Small, so that the long-line cases stay readable. */
#define MAXL 16

/* One input piece and the message it must give (want NULL: none). */
struct fcase {
	const char *in;
	size_t inlen;
	const char *want;
	size_t wantlen;
	bool trunc;
};

#define MSG(i, w)                                                              \
	{                                                                      \
		(i), sizeof(i) - 1, (w), sizeof(w) - 1, false                  \
	}
#define CUT(i, w)                                                              \
	{                                                                      \
		(i), sizeof(i) - 1, (w), sizeof(w) - 1, true                   \
	}
#define NONE(i)                                                                \
	{                                                                      \
		(i), sizeof(i) - 1, NULL, 0, false                             \
	}
#define TABLE(m, t) (m), (t), sizeof(t) / sizeof((t)[0])

/* 16 bytes: exactly MAXL. */
#define L16 "0123456789abcdef"

/* LF framing: everything the brief and STYLE.md section 10 list. */
static const struct fcase lf_main[] = {
	MSG("hello\n", "hello"), MSG("crlf line\r\n", "crlf line"),
	MSG("mid\rcr\n", "mid\rcr"), /* only a CR right before LF goes */
	NONE("\n"),                  /* empty lines are skipped */
	NONE("\r\n"),                /* a lone CRLF too */
	NONE("\n\n\r\n"),
	MSG("nul\0byte\n", "nul\0byte"), /* NUL is content in LF framing */
	MSG(L16 "\n", L16),              /* exactly max_line */
	MSG(L16 "\r\n", L16),            /* exactly max_line, CRLF */
	CUT(L16 "X\n", L16),             /* max_line + 1 */
	CUT(L16 "X\r\n", L16),           /* max_line + 1, CRLF */
	CUT(L16 "\r\r\n", L16),          /* max_line + a CR that stays */
	CUT(L16 "XY\n", L16),            /* max_line + 2 */
	/* Several times max_line; the rest up to the LF is discarded. */
	CUT("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCC"
	    "DDDDDDDDDDDDDDDDEEEE\n",
	    "AAAAAAAAAAAAAAAA"),
	CUT("aaaaaaaaaaaaaaaa\rbbbbbbbbbbbbbbbb\rcccccccccccccccc\r\n",
	    "aaaaaaaaaaaaaaaa"),
	MSG("after long\n", "after long"), /* discarding stopped at LF */
	/* UTF-8 characters straddling the cut: never split one. */
	CUT("0123456789abcde\xc3\xa9zz\n", "0123456789abcde"),    /* 2: 15-16 */
	CUT("0123456789abcd\xe2\x82\xacz\n", "0123456789abcd"),   /* 3: 14-16 */
	CUT("0123456789abcde\xe2\x82\xacz\n", "0123456789abcde"), /* 15-17 */
	CUT("0123456789abc\xf0\x9f\x98\x80z\n", "0123456789abc"), /* 4: 13 */
	CUT("0123456789abcd\xf0\x9f\x98\x80z\n", "0123456789abcd"),   /* 14 */
	CUT("0123456789abcde\xf0\x9f\x98\x80z\n", "0123456789abcde"), /* 15 */
	/* A character ending exactly at the cut is kept whole. */
	CUT("0123456789ab\xf0\x9f\x98\x80z\n", "0123456789ab\xf0\x9f\x98\x80"),
	MSG("0123456789ab\xf0\x9f\x98\x80\n", "0123456789ab\xf0\x9f\x98\x80"),
	CUT("x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\r\n",
	    "x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"),
	CUT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
	    "\xe2\x82\xac\n",
	    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"),
	CUT("0123456789abcde\xe2\x82\xac\r\n", "0123456789abcde"),
	MSG("the end", "the end"), /* final line without LF */
};

static const struct fcase lf_long_tail[] = {
	MSG("first\n", "first"),
	CUT("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", "ZZZZZZZZZZZZZZZZ"),
};

static const struct fcase lf_utf8_tail[] = {
	MSG("ok\n", "ok"),
	CUT("0123456789abcde\xe2\x82\xac", "0123456789abcde"),
};

static const struct fcase lf_exact_tail[] = {
	MSG("ok\n", "ok"),
	MSG(L16, L16),
};

static const struct fcase lf_over_tail[] = {
	CUT(L16 "X", L16),
};

static const struct fcase lf_only_newlines[] = {
	NONE("\r\n"),
	NONE("\n"),
	NONE("\r\n"),
	NONE("\n"),
};

static const struct fcase lf_final_crlf[] = {
	MSG("a\r\n", "a"),
	MSG("b\r\n", "b"),
};

/* NUL framing (Python's SysLogHandler): LFs inside are content. */
static const struct fcase nul_main[] = {
	MSG("<13>hello\0", "<13>hello"),
	MSG("<13>two\nlines\0", "<13>two\nlines"),
	MSG("\n<14>after lf\0", "<14>after lf"),
	MSG("<15>crlf end\r\n\0", "<15>crlf end"),
	NONE("\0"),
	NONE("\r\n\0"),
	MSG("<13>0123456789ab\0", "<13>0123456789ab"),
	CUT("<13>0123456789abc\0", "<13>0123456789ab"),
	CUT("<13>0123456789a\xc3\xa9z\0", "<13>0123456789a"),
	CUT("<13>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nBBBBBBBBBB\0",
	    "<13>AAAAAAAAAAAA"),
	MSG("<13>after\0", "<13>after"),
	MSG("<13>tail", "<13>tail"),
};

/* GELF over TCP: JSON objects ended by NUL (AUTO: '{' then a NUL). */
static const struct fcase gelf_nul[] = {
	MSG("{\"a\":1}\0", "{\"a\":1}"),
	MSG("{\"v\":\"x\ny\"}\0", "{\"v\":\"x\ny\"}"),
	MSG("{\"b\":2}\0", "{\"b\":2}"),
};

/* JSON lines start with '{' too: LF framing. */
static const struct fcase json_lf[] = {
	MSG("{\"a\":1}\n", "{\"a\":1}"),
	MSG("{\"b\":2}\r\n", "{\"b\":2}"),
};

/* RFC 6587 octet counting. */
static const struct fcase octet_main[] = {
	MSG("9 <13>hello", "<13>hello"),
	MSG("13 <13>two\nlines", "<13>two\nlines"),
	NONE("\n"), /* tolerated between frames */
	MSG("16 <13>0123456789ab", "<13>0123456789ab"),
	CUT("17 <13>0123456789abc", "<13>0123456789ab"),
	CUT("40 <13>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "<13>AAAAAAAAAAAA"),
	MSG("6 <13>\r\n", "<13>"),
	CUT("18 <13>0123456789a\xe2\x82\xac", "<13>0123456789a"),
	MSG("8 <13>a\nb\0", "<13>a\nb\0"), /* any byte in MSG */
	MSG("5 <13>x", "<13>x"),
};

/* A malformed octet header: LF framing from that byte on. */
static const struct fcase octet_bad_header[] = {
	MSG("9 <13>hello", "<13>hello"),
	MSG("12x oops\n", "12x oops"),
	MSG("5 <13>x\n", "5 <13>x"),
};

/*
 * AUTO, Python's SysLogHandler over TCP: "<PRI>msg\0" where msg holds LFs
 * (a traceback).  Split anywhere, even right after a LF, it stays NUL.
 */
static const struct fcase auto_nul_multiline[] = {
	MSG("<11>a\nb\n\0", "<11>a\nb"),
	MSG("<11>c\nd\0", "<11>c\nd"),
	MSG("<11>x\ny\nz\n\0", "<11>x\ny\nz"),
	MSG("<11>\n\nf\0", "<11>\n\nf"),
	MSG("<11>g\n<m>\0", "<11>g\n<m>"),
	MSG("<11>e", "<11>e"),
};

/* A LF followed by '<' and no digit ("in <module>") is no evidence. */
static const struct fcase auto_nul_angle_line[] = {
	MSG("<11>a\n<mod> x\0", "<11>a\n<mod> x"),
	MSG("<11>b\0", "<11>b"),
};

/* The issue's reproduction, at a realistic max_line. */
static const struct fcase auto_nul_issue[] = {
	MSG("<11>Dec  1 10:00:00 app[1]: first line\nsecond line\n\0",
	    "<11>Dec  1 10:00:00 app[1]: first line\nsecond line"),
	MSG("<11>Dec  1 10:00:00 app[1]: next message\n\0",
	    "<11>Dec  1 10:00:00 app[1]: next message"),
};

/* AUTO, LF senders of "<PRI>" lines: the next "<digit" line decides. */
static const struct fcase auto_lf_pri[] = {
	MSG("<13>a\n", "<13>a"),
	MSG("<13>b\r\n", "<13>b"),
	MSG("plain\n", "plain"),
	MSG("<14>c\n", "<14>c"),
	MSG("<13>d", "<13>d"),
};

/* The first line's successor is no "<PRI>" line: a later one decides. */
static const struct fcase auto_lf_late[] = {
	MSG("<13>a\n", "<13>a"), MSG(" more\n", " more"),
	MSG("<13>b\n", "<13>b"),
	MSG("<13>c\0d\n", "<13>c\0d"), /* LF framing: NUL is content */
};

/* One line, then the end of the connection. */
static const struct fcase auto_lf_one[] = {
	MSG("<13>only\n", "<13>only"),
};

/* No evidence within max_line + 3 bytes: lines are flushed as LF. */
static const struct fcase auto_lf_no_evidence[] = {
	MSG("<13>a\n", "<13>a"),
	MSG("xxxxxxxxxxxx\n", "xxxxxxxxxxxx"),
	MSG("yyyyyyyy\n", "yyyyyyyy"),
	MSG("zz", "zz"),
};

/*
 * Flushed by max_line (no evidence in the first 19 bytes), then a NUL
 * record's tail: NUL framing from that line on.
 */
static const struct fcase auto_flush_then_nul[] = {
	MSG("<13>a\n", "<13>a"),
	MSG(L16 "\n", L16),
	MSG("c\n\0", "c"),
	MSG("<13>d\0", "<13>d"),
};

/* "<" then no digit: not a "<PRI>" sender, LF at once. */
static const struct fcase auto_angle_plain[] = {
	MSG("<html>\n", "<html>"),
	MSG("<13>x\0y\n", "<13>x\0y"),
};

struct stream {
	const char *name;
	enum framer_mode mode;
	const struct fcase *cases;
	size_t ncases;
	uint64_t bad_frames;
	size_t max_line; /* 0: MAXL */
};

static const struct stream streams[] = {
	{ "lf main", TABLE(FRAMER_LF, lf_main), 0, 0 },
	{ "lf main (auto)", TABLE(FRAMER_AUTO, lf_main), 0, 0 },
	{ "lf long tail", TABLE(FRAMER_LF, lf_long_tail), 0, 0 },
	{ "lf utf8 tail", TABLE(FRAMER_LF, lf_utf8_tail), 0, 0 },
	{ "lf exact tail", TABLE(FRAMER_LF, lf_exact_tail), 0, 0 },
	{ "lf over tail", TABLE(FRAMER_LF, lf_over_tail), 0, 0 },
	{ "lf only newlines", TABLE(FRAMER_LF, lf_only_newlines), 0, 0 },
	{ "lf final crlf", TABLE(FRAMER_LF, lf_final_crlf), 0, 0 },
	{ "nul main", TABLE(FRAMER_NUL, nul_main), 0, 0 },
	{ "nul main (auto)", TABLE(FRAMER_AUTO, nul_main), 0, 0 },
	{ "octet main", TABLE(FRAMER_OCTET, octet_main), 0, 0 },
	{ "octet main (auto)", TABLE(FRAMER_AUTO, octet_main), 0, 0 },
	{ "octet bad header", TABLE(FRAMER_OCTET, octet_bad_header), 1, 0 },
	{ "auto nul multiline", TABLE(FRAMER_AUTO, auto_nul_multiline), 0, 0 },
	{ "auto nul angle line", TABLE(FRAMER_AUTO, auto_nul_angle_line), 0,
	    0 },
	{ "auto nul issue 12", TABLE(FRAMER_AUTO, auto_nul_issue), 0, 256 },
	{ "nul issue 12", TABLE(FRAMER_NUL, auto_nul_issue), 0, 256 },
	{ "auto lf pri", TABLE(FRAMER_AUTO, auto_lf_pri), 0, 0 },
	{ "auto lf late", TABLE(FRAMER_AUTO, auto_lf_late), 0, 0 },
	{ "auto lf one", TABLE(FRAMER_AUTO, auto_lf_one), 0, 0 },
	{ "auto lf no evidence", TABLE(FRAMER_AUTO, auto_lf_no_evidence), 0,
	    0 },
	{ "auto flush then nul", TABLE(FRAMER_AUTO, auto_flush_then_nul), 0,
	    0 },
	{ "auto angle plain", TABLE(FRAMER_AUTO, auto_angle_plain), 0, 0 },
	{ "gelf nul (auto)", TABLE(FRAMER_AUTO, gelf_nul), 0, 0 },
	{ "json lf (auto)", TABLE(FRAMER_AUTO, json_lf), 0, 0 },
};

/* Heap fixture: freed by teardown even when an assertion fails. */
struct fx {
	struct framer fr;
	struct buf stream;  /* the concatenated input */
	struct buf pending; /* bytes the framer has not consumed yet */
	struct buf got;     /* messages seen, rendered */
	struct buf want;    /* messages expected, rendered */
	size_t *cuts;       /* piece boundaries for one run */
	size_t stop_every;  /* cb returns false every Nth message; 0: never */
	size_t nmsg;
	bool stopped; /* cb returned false during the last framer_feed() */
};

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -1;
	*state = x;
	/* Never a NULL data pointer, even for empty feeds. */
	if (buf_reserve(&x->pending, 1) == -1)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;

	buf_free(&x->stream);
	buf_free(&x->pending);
	buf_free(&x->got);
	buf_free(&x->want);
	free(x->cuts);
	free(x);
	return 0;
}

/*
 * Appends one message as a text line: "T " if truncated else "- ", then
 * the bytes with everything but printable ASCII as \xHH, so that a failed
 * comparison prints readably.
 */
static void
render(struct buf *out, const char *p, size_t n, bool trunc)
{
	char hex[8];
	size_t i;

	assert_int_equal(buf_append(out, trunc ? "T " : "- ", 2), 0);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7F && c != '\\') {
			assert_int_equal(buf_append(out, &p[i], 1), 0);
			continue;
		}
		snprintf(hex, sizeof(hex), "\\x%02x", c);
		assert_int_equal(buf_append(out, hex, 4), 0);
	}
	assert_int_equal(buf_append(out, "\n", 1), 0);
}

/* NUL-terminates b for the string assertions (not counted in len). */
static const char *
cstr(struct buf *b)
{
	assert_int_equal(buf_reserve(b, 1), 0);
	b->data[b->len] = '\0';
	return b->data;
}

static bool
collect(void *arg, const char *msg, size_t len, bool truncated)
{
	struct fx *x = arg;

	assert_true(len > 0);
	assert_true(len <= x->fr.max_line);
	render(&x->got, msg, len, truncated);
	x->nmsg++;
	if (x->stop_every != 0 && x->nmsg % x->stop_every == 0) {
		x->stopped = true;
		return false;
	}
	return true;
}

/* Builds the input and the rendered expectation of s into x. */
static uint64_t
load_stream(struct fx *x, const struct stream *s)
{
	uint64_t trunc = 0;
	size_t i;

	buf_reset(&x->stream);
	buf_reset(&x->want);
	for (i = 0; i < s->ncases; i++) {
		const struct fcase *c = &s->cases[i];

		assert_int_equal(buf_append(&x->stream, c->in, c->inlen), 0);
		if (c->want == NULL)
			continue;
		render(&x->want, c->want, c->wantlen, c->trunc);
		trunc += c->trunc;
	}
	return trunc;
}

/*
 * Appends p[0..n) to the pending bytes and frames them as the listener
 * does: what was consumed is dropped, the rest waits for more bytes.  When
 * the callback asked to stop, the rest is fed again (the queue drained).
 */
static void
feed(struct fx *x, const char *p, size_t n, bool eof)
{
	size_t used;

	assert_int_equal(buf_append(&x->pending, p, n), 0);
	do {
		x->stopped = false;
		used = framer_feed(
		    &x->fr, x->pending.data, x->pending.len, eof, collect, x);
		assert_true(used <= x->pending.len);
		memmove(x->pending.data, x->pending.data + used,
		    x->pending.len - used);
		x->pending.len -= used;
	} while (x->stopped);
	if (eof)
		assert_int_equal(x->pending.len, 0);
	else if (x->fr.mode != FRAMER_OCTET)
		assert_true(x->pending.len < x->fr.max_line + 3);
	else /* a header of at most 9 digits + SP, then max_line + 2 */
		assert_true(x->pending.len <= x->fr.max_line + 12);
}

/*
 * Runs stream s cut at cuts[0..ncuts) (ascending offsets) and checks the
 * messages and counters; how names the run in a failure message.
 */
static void
run(struct fx *x, const struct stream *s, uint64_t want_trunc,
    const size_t *cuts, size_t ncuts, const char *how)
{
	size_t i, from = 0, to;

	framer_init(&x->fr, s->max_line ? s->max_line : MAXL, s->mode);
	buf_reset(&x->pending);
	buf_reset(&x->got);
	x->nmsg = 0;
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : x->stream.len;
		feed(x, x->stream.data + from, to - from, i == ncuts);
		from = to;
	}
	if (strcmp(cstr(&x->got), cstr(&x->want)) != 0 ||
	    x->fr.truncated != want_trunc ||
	    x->fr.bad_frames != s->bad_frames) {
		print_error("stream '%s', %s, stop every %zu:\n"
			    "got (truncated %llu, bad %llu):\n%s"
			    "want (truncated %llu, bad %llu):\n%s",
		    s->name, how, x->stop_every,
		    (unsigned long long)x->fr.truncated,
		    (unsigned long long)x->fr.bad_frames, x->got.data,
		    (unsigned long long)want_trunc,
		    (unsigned long long)s->bad_frames, x->want.data);
		fail();
	}
}

/* Small deterministic PRNG (xorshift64), so failures reproduce. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Whole, every two-piece split, byte by byte and random chunks. */
static void
check_stream(struct fx *x, const struct stream *s)
{
	uint64_t trunc = load_stream(x, s), seed = 0x9E3779B97F4A7C15u;
	size_t n = x->stream.len, *cuts, k, i, ncuts;
	char how[64];

	cuts = reallocarray(x->cuts, n + 1, sizeof(*cuts));
	assert_non_null(cuts);
	x->cuts = cuts;
	run(x, s, trunc, NULL, 0, "whole");
	for (k = 0; k <= n; k++) {
		snprintf(how, sizeof(how), "split at %zu", k);
		cuts[0] = k;
		run(x, s, trunc, cuts, 1, how);
	}
	for (i = 0; i < n; i++)
		cuts[i] = i + 1;
	run(x, s, trunc, cuts, n > 0 ? n - 1 : 0, "byte by byte");
	for (k = 0; k < 50; k++) {
		ncuts = 0;
		for (i = 1 + rnd(&seed) % 7; i < n; i += 1 + rnd(&seed) % 23)
			cuts[ncuts++] = i;
		snprintf(how, sizeof(how), "random chunks #%zu", k);
		run(x, s, trunc, cuts, ncuts, how);
	}
}

static void
test_split_invariance(void **state)
{
	struct fx *x = *state;
	size_t i;

	for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
		check_stream(x, &streams[i]);
}

/* The same with a callback that stops after every (second) message. */
static void
test_split_invariance_with_stops(void **state)
{
	struct fx *x = *state;
	size_t i;

	for (x->stop_every = 1; x->stop_every <= 2; x->stop_every++)
		for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
			check_stream(x, &streams[i]);
}

/*
 * cb returning false: framer_feed() returns the bytes up to and including
 * that message's terminator; feeding the rest again loses nothing.
 */
static void
test_stop_returns_consumed(void **state)
{
	static const char in[] = "one\r\ntwo\n\nthree\nfour";
	struct fx *x = *state;
	size_t used;

	framer_init(&x->fr, MAXL, FRAMER_LF);
	x->stop_every = 1;
	used = framer_feed(&x->fr, in, sizeof(in) - 1, false, collect, x);
	assert_int_equal(used, 5);
	assert_string_equal(cstr(&x->got), "- one\n");
	used =
	    framer_feed(&x->fr, in + 5, sizeof(in) - 1 - 5, false, collect, x);
	assert_int_equal(used, 4);
	/* The empty line is skipped without a callback, then "three". */
	used =
	    framer_feed(&x->fr, in + 9, sizeof(in) - 1 - 9, false, collect, x);
	assert_int_equal(used, 7);
	assert_string_equal(cstr(&x->got), "- one\n- two\n- three\n");
	/* "four" has no LF yet: nothing consumed, no message. */
	used = framer_feed(&x->fr, in + 16, 4, false, collect, x);
	assert_int_equal(used, 0);
	assert_int_equal(x->nmsg, 3);
	used = framer_feed(&x->fr, in + 16, 4, true, collect, x);
	assert_int_equal(used, 4);
	assert_string_equal(cstr(&x->got), "- one\n- two\n- three\n- four\n");
	assert_int_equal(x->fr.truncated, 0);
}

/* A stop on a cut line: the rest of that line is still discarded. */
static void
test_stop_on_cut_line(void **state)
{
	static const char in[] = L16 L16 L16 "\nnext\n";
	struct fx *x = *state;
	size_t used, pos = 0;

	framer_init(&x->fr, MAXL, FRAMER_LF);
	x->stop_every = 1;
	/* 20 bytes without LF: cut now, discard the rest. */
	used = framer_feed(&x->fr, in, 20, false, collect, x);
	assert_int_equal(used, 20);
	assert_string_equal(cstr(&x->got), "T " L16 "\n");
	for (pos = used; pos < sizeof(in) - 1; pos += used)
		used = framer_feed(
		    &x->fr, in + pos, sizeof(in) - 1 - pos, false, collect, x);
	assert_string_equal(cstr(&x->got), "T " L16 "\n- next\n");
	assert_int_equal(x->fr.truncated, 1);
}

/* The truncated counter counts cut messages, not discarded pieces. */
static void
test_truncated_counter(void **state)
{
	static const char in[] =
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n" L16 "X\n" L16 "\n" L16
	    "\r\nshort\n";
	struct fx *x = *state;
	size_t i;

	framer_init(&x->fr, MAXL, FRAMER_LF);
	assert_int_equal(
	    framer_feed(&x->fr, in, sizeof(in) - 1, true, collect, x),
	    sizeof(in) - 1);
	assert_int_equal(x->fr.truncated, 2);
	assert_int_equal(x->nmsg, 5);
	/* Byte by byte: the 40-byte line is cut once, not per read. */
	framer_init(&x->fr, MAXL, FRAMER_LF);
	for (i = 0; i < sizeof(in) - 1; i++)
		feed(x, in + i, 1, i == sizeof(in) - 2);
	assert_int_equal(x->fr.truncated, 2);
	assert_int_equal(x->nmsg, 10);
}

/*
 * NUL framing cuts a message once max_line + 2 bytes have arrived without
 * a NUL, but deliver() trims leading and trailing CR/LF from that piece
 * first, so the piece may fit max_line: it is then delivered as a whole,
 * untruncated message while the rest up to the NUL is silently discarded.
 * Fed whole, the same stream gives the full message.
 */
static const struct fcase nul_trim_leading[] = {
	MSG("\r\n\r\n" L16 "\0", L16),
	MSG("<13>next\0", "<13>next"),
};
static const struct fcase nul_trim_inner[] = {
	CUT("0123456789abcde\r\n\r\nXYZ\0", "0123456789abcde\r"),
	MSG("<13>next\0", "<13>next"),
};

static void
test_nul_split_trim_leading(void **state)
{
	static const struct stream s = { "nul leading CRLF",
		TABLE(FRAMER_NUL, nul_trim_leading), 0, 0 };

	check_stream(*state, &s);
}

static void
test_nul_split_trim_inner(void **state)
{
	static const struct stream s = { "nul inner CRLF",
		TABLE(FRAMER_NUL, nul_trim_inner), 0, 0 };

	check_stream(*state, &s);
}

/*
 * Octet counting: a frame longer than max_line is cut without the
 * trailing CR/LF trim when it has not fully arrived, so a 18-byte frame
 * "<13>...\r\n" (16 bytes once trimmed) is flagged and counted as
 * truncated or not depending on where the read boundary falls.
 */
static const struct fcase octet_trailing_crlf[] = {
	MSG("18 <13>0123456789ab\r\n", "<13>0123456789ab"),
	MSG("5 <13>x", "<13>x"),
};

static void
test_octet_split_trailing_crlf(void **state)
{
	static const struct stream s = { "octet trailing CRLF",
		TABLE(FRAMER_OCTET, octet_trailing_crlf), 0, 0 };

	check_stream(*state, &s);
}

/*
 * AUTO, a first NUL message without a LF longer than max_line + 2: its
 * head is delivered cut, the rest skipped up to the NUL, which decides NUL
 * for the messages after it, however the stream is split.
 */
static const struct fcase auto_long_nul_first[] = {
	CUT("<13>AAAAAAAAAAAAAAAAAAAA\0", "<13>AAAAAAAAAAAA"),
	MSG("<13>b\0", "<13>b"),
	MSG("<13>c\0", "<13>c"),
};

static void
test_auto_long_first_nul_message(void **state)
{
	static const struct stream s = { "auto, long first NUL message",
		TABLE(FRAMER_AUTO, auto_long_nul_first), 0, 0 };

	check_stream(*state, &s);
}

/*
 * Feeds p[0..n) after the pending bytes (no EOF); returns how many
 * messages came.
 */
static size_t
feed_count(struct fx *x, const char *p, size_t n)
{
	size_t before = x->nmsg;

	feed(x, p, n, false);
	return x->nmsg - before;
}

/*
 * A LF sender sends one "<PRI>" line and goes quiet: the line is held
 * until framer_decide() (the listener's framing-detect-timeout), then
 * delivered; its next line is LF evidence and decides for good.
 */
static void
test_auto_decide_lf_idle(void **state)
{
	struct fx *x = *state;

	framer_init(&x->fr, MAXL, FRAMER_AUTO);
	buf_reset(&x->pending);
	assert_int_equal(feed_count(x, "<13>one\n", 8), 0);
	assert_true(x->fr.held);
	assert_int_equal(x->fr.need, SIZE_MAX);
	framer_decide(&x->fr);
	assert_int_equal(feed_count(x, "", 0), 1);
	assert_false(x->fr.held);
	assert_int_equal(x->fr.flushes, 1);
	assert_int_equal(x->fr.mode, FRAMER_AUTO);
	assert_int_equal(feed_count(x, "<13>two\n", 8), 1);
	assert_int_equal(x->fr.mode, FRAMER_LF);
	assert_string_equal(cstr(&x->got), "- <13>one\n- <13>two\n");
	framer_decide(&x->fr); /* decided: no effect */
	assert_int_equal(x->fr.decide, false);
}

/*
 * The rare case: a NUL record split right after a LF and a pause longer
 * than the timeout.  The lines before the pause are one message, the rest
 * up to the NUL another; the next record is framed right (NUL).
 */
static void
test_auto_decide_nul_split(void **state)
{
	static const char tail[] = "cond\n\0<11>next\n\0<11>x\ny\0";
	struct fx *x = *state;

	framer_init(&x->fr, MAXL, FRAMER_AUTO);
	buf_reset(&x->pending);
	assert_int_equal(feed_count(x, "<11>a\nb\nse", 10), 0);
	assert_true(x->fr.held);
	framer_decide(&x->fr);
	assert_int_equal(feed_count(x, "", 0), 2);
	assert_false(x->fr.held); /* "se": an unfinished line, not held */
	assert_int_equal(feed_count(x, tail, sizeof(tail) - 1), 3);
	assert_int_equal(x->fr.mode, FRAMER_NUL);
	assert_string_equal(cstr(&x->got),
	    "- <11>a\n- b\n- second\n- <11>next\n- <11>x\\x0ay\n");
}

/* After a flush, complete lines go at once until evidence comes. */
static void
test_auto_flushed_eager(void **state)
{
	struct fx *x = *state;

	framer_init(&x->fr, MAXL, FRAMER_AUTO);
	buf_reset(&x->pending);
	assert_int_equal(feed_count(x, "<13>a\n", 6), 0);
	framer_decide(&x->fr);
	assert_int_equal(feed_count(x, " b\n", 3), 2);
	assert_int_equal(feed_count(x, " c\n", 3), 1);
	assert_false(x->fr.held);
	assert_int_equal(x->fr.mode, FRAMER_AUTO);
	feed(x, "<13>d", 5, true);
	assert_int_equal(x->fr.mode, FRAMER_LF);
	assert_string_equal(cstr(&x->got), "- <13>a\n-  b\n-  c\n- <13>d\n");
}

/* framer_decide() before any LF: nothing to deliver, nothing held. */
static void
test_auto_decide_no_line(void **state)
{
	struct fx *x = *state;

	framer_init(&x->fr, MAXL, FRAMER_AUTO);
	buf_reset(&x->pending);
	assert_int_equal(feed_count(x, "<13>abc", 7), 0);
	assert_false(x->fr.held);
	framer_decide(&x->fr);
	assert_int_equal(feed_count(x, "", 0), 0);
	assert_int_equal(feed_count(x, "\n\0<13>b\0", 8), 2);
	assert_int_equal(x->fr.mode, FRAMER_NUL);
	assert_string_equal(cstr(&x->got), "- <13>abc\n- <13>b\n");
}

static void
test_mode_names(void **state)
{
	(void)state;
	assert_int_equal(framer_mode_parse("auto"), FRAMER_AUTO);
	assert_int_equal(framer_mode_parse("LF"), FRAMER_LF);
	assert_int_equal(framer_mode_parse("nul"), FRAMER_NUL);
	assert_int_equal(framer_mode_parse("octet"), FRAMER_OCTET);
	assert_int_equal(framer_mode_parse("crlf"), -1);
	assert_string_equal(framer_mode_name(FRAMER_NUL), "nul");
	assert_int_equal(
	    framer_mode_parse(framer_mode_name(FRAMER_OCTET)), FRAMER_OCTET);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_split_invariance, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_split_invariance_with_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_returns_consumed, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_on_cut_line, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_truncated_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_nul_split_trim_leading, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_nul_split_trim_inner, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_octet_split_trailing_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_auto_long_first_nul_message, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_auto_decide_lf_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_auto_decide_nul_split, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_auto_flushed_eager, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_auto_decide_no_line, setup, teardown),
		cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
