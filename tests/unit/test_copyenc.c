/*
 * Unit tests for copyenc: COPY text escaping, UTF-8 sanitising (one U+FFFD
 * per NUL or per byte of an ill-formed sequence, Unicode table 3-7),
 * timestamps and whole rows.
 *
 * The expectations come from hand-written tables and from a reference
 * sanitiser and COPY decoder written here, independently of copyenc.c:
 * decode(encode(x)) must equal sanitize(x) for random byte strings.
 *
 * With LOGSINK_TEST_PG set to a libpq conninfo, the encoded text also goes
 * through a real COPY into a temporary table and is read back; without it
 * those tests are skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "logsink/buf.h"
#include "logsink/copyenc.h"
#include "logsink/record.h"

/* U+FFFD as UTF-8. */
#define R "\xef\xbf\xbd"

/* Heap fixture: freed by teardown even when an assertion fails. */
struct fx {
	struct buf out;  /* encoder output */
	struct buf want; /* expected bytes */
	struct buf in;   /* generated input */
	struct buf dec;  /* decoded fields */
	struct buf data; /* COPY data sent to PostgreSQL */
	struct buf ref;  /* reference results */
	struct buf src[6];
	struct buf rnds[40];
	PGconn *pg;
	PGresult *res;
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
	size_t i;

	buf_free(&x->out);
	buf_free(&x->want);
	buf_free(&x->in);
	buf_free(&x->dec);
	buf_free(&x->data);
	buf_free(&x->ref);
	for (i = 0; i < 6; i++)
		buf_free(&x->src[i]);
	for (i = 0; i < 40; i++)
		buf_free(&x->rnds[i]);
	PQclear(x->res);
	if (x->pg != NULL)
		PQfinish(x->pg);
	free(x);
	return 0;
}

static void
append(struct buf *b, const void *p, size_t n)
{
	assert_int_equal(buf_append(b, p, n), 0);
}

/* Encodes p[0..n) into x->out (emptied first); returns the replaced count. */
static size_t
encode(struct fx *x, const char *p, size_t n)
{
	buf_reset(&x->out);
	assert_int_equal(buf_reserve(&x->out, 3 * n + 1), 0);
	return copyenc_text(&x->out, p, n);
}

/* Fails with both byte strings in hex when they differ. */
static void
assert_bytes(const char *what, const char *got, size_t gotlen, const char *want,
    size_t wantlen)
{
	size_t i;

	if (gotlen == wantlen && memcmp(got, want, gotlen) == 0)
		return;
	print_error("%s:\n got  (%zu):", what, gotlen);
	for (i = 0; i < gotlen; i++)
		print_error(" %02x", (unsigned char)got[i]);
	print_error("\n want (%zu):", wantlen);
	for (i = 0; i < wantlen; i++)
		print_error(" %02x", (unsigned char)want[i]);
	print_error("\n");
	fail();
}

/*
 * Reference: length of the well-formed UTF-8 sequence at p[0..n), or 0.
 * Decodes the code point and checks it, where copyenc.c checks byte
 * ranges: shortest form, no surrogates, at most U+10FFFF.
 */
static size_t
ref_seq_len(const unsigned char *p, size_t n)
{
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t cp;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xE0) == 0xC0) {
		len = 2;
		cp = p[0] & 0x1Fu;
	} else if ((p[0] & 0xF0) == 0xE0) {
		len = 3;
		cp = p[0] & 0x0Fu;
	} else if ((p[0] & 0xF8) == 0xF0) {
		len = 4;
		cp = p[0] & 0x07u;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3Fu);
	}
	if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/*
 * Reference sanitiser: valid UTF-8 kept, NUL and each byte that is not
 * part of a well-formed sequence become U+FFFD.  Returns how many.
 */
static size_t
sanitize(struct buf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len, bad = 0;

	buf_reset(out);
	while (i < n) {
		len = ref_seq_len(p + i, n - i);
		if (len == 0 || p[i] == 0) {
			append(out, R, 3);
			bad++;
			i++;
			continue;
		}
		append(out, p + i, len);
		i += len;
	}
	return bad;
}

/* Decoded COPY fields: offsets into x->dec, or NULL. */
struct dfield {
	bool null;
	size_t off, len;
};

#define MAXFIELDS 16

/*
 * Reference COPY text decoder (PostgreSQL docs, COPY, "Text Format") for
 * one row without its LF: fields split on TAB; \\ \n \r \t decode, \N
 * alone is NULL.  Anything else our encoder must never produce (another
 * escape, a raw CR or LF) fails.  Returns the number of fields.
 */
static size_t
decode_row(struct fx *x, const char *p, size_t n, struct dfield *f)
{
	size_t i, nf = 0;
	char c;

	buf_reset(&x->dec);
	f[0].null = false;
	f[0].off = 0;
	for (i = 0; i < n; i++) {
		c = p[i];
		if (c == '\t') {
			f[nf].len = x->dec.len - f[nf].off;
			assert_true(++nf < MAXFIELDS);
			f[nf].null = false;
			f[nf].off = x->dec.len;
			continue;
		}
		assert_true(c != '\n' && c != '\r');
		if (c != '\\') {
			append(&x->dec, &c, 1);
			continue;
		}
		assert_true(++i < n);
		switch (p[i]) {
		case '\\':
			c = '\\';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		case 'N':
			/* \N is NULL only as a whole field. */
			assert_int_equal(x->dec.len, f[nf].off);
			assert_true(i + 1 == n || p[i + 1] == '\t');
			f[nf].null = true;
			continue;
		default:
			fail_msg("unexpected escape \\%c", p[i]);
		}
		append(&x->dec, &c, 1);
	}
	f[nf].len = x->dec.len - f[nf].off;
	return nf + 1;
}

/* The expected encoding of one byte, as the brief states it. */
static void
expect_byte(struct buf *w, unsigned b, size_t *replaced)
{
	char c = (char)b;

	switch (b) {
	case '\\':
		append(w, "\\\\", 2);
		break;
	case '\n':
		append(w, "\\n", 2);
		break;
	case '\r':
		append(w, "\\r", 2);
		break;
	case '\t':
		append(w, "\\t", 2);
		break;
	default:
		if (b == 0 || b >= 0x80) {
			append(w, R, 3);
			(*replaced)++;
		} else {
			append(w, &c, 1);
		}
	}
}

static void
test_text_single_bytes(void **state)
{
	struct fx *x = *state;
	size_t replaced, got;
	char in[5], what[64];
	unsigned b;

	for (b = 0; b < 256; b++) {
		/* Alone. */
		in[0] = (char)b;
		replaced = 0;
		buf_reset(&x->want);
		expect_byte(&x->want, b, &replaced);
		got = encode(x, in, 1);
		snprintf(what, sizeof(what), "byte 0x%02x alone", b);
		assert_bytes(
		    what, x->out.data, x->out.len, x->want.data, x->want.len);
		assert_int_equal(got, replaced);
		/* Inside text. */
		memcpy(in, "ab?cd", 5);
		in[2] = (char)b;
		replaced = 0;
		buf_reset(&x->want);
		append(&x->want, "ab", 2);
		expect_byte(&x->want, b, &replaced);
		append(&x->want, "cd", 2);
		got = encode(x, in, 5);
		snprintf(what, sizeof(what), "byte 0x%02x inside text", b);
		assert_bytes(
		    what, x->out.data, x->out.len, x->want.data, x->want.len);
		assert_int_equal(got, replaced);
	}
}

/* All 256 byte values in one string: no high byte forms a sequence. */
static void
test_text_all_bytes(void **state)
{
	struct fx *x = *state;
	size_t replaced = 0;
	unsigned b;
	char c;

	buf_reset(&x->in);
	buf_reset(&x->want);
	for (b = 0; b < 256; b++) {
		c = (char)b;
		append(&x->in, &c, 1);
		expect_byte(&x->want, b, &replaced);
	}
	assert_int_equal(replaced, 129);
	assert_int_equal(encode(x, x->in.data, x->in.len), 129);
	assert_bytes(
	    "all bytes", x->out.data, x->out.len, x->want.data, x->want.len);
}

struct tcase {
	const char *name;
	const char *in;
	size_t inlen;
	const char *want;
	size_t wantlen;
	size_t replaced;
};

#define T(name, in, want, n)                                                   \
	{                                                                      \
		name, in, sizeof(in) - 1, want, sizeof(want) - 1, n            \
	}

/* Well-formed sequences at the edges of each row of table 3-7. */
static const struct tcase well_formed[] = {
	T("U+0080", "\xc2\x80", "\xc2\x80", 0),
	T("U+07FF", "\xdf\xbf", "\xdf\xbf", 0),
	T("U+00E9", "caf\xc3\xa9", "caf\xc3\xa9", 0),
	T("U+0800", "\xe0\xa0\x80", "\xe0\xa0\x80", 0),
	T("U+0FFF", "\xe0\xbf\xbf", "\xe0\xbf\xbf", 0),
	T("U+1000", "\xe1\x80\x80", "\xe1\x80\x80", 0),
	T("U+20AC", "\xe2\x82\xac", "\xe2\x82\xac", 0),
	T("U+CFFF", "\xec\xbf\xbf", "\xec\xbf\xbf", 0),
	T("U+D000", "\xed\x80\x80", "\xed\x80\x80", 0),
	T("U+D7FF", "\xed\x9f\xbf", "\xed\x9f\xbf", 0),
	T("U+E000", "\xee\x80\x80", "\xee\x80\x80", 0),
	T("U+FFFD", R, R, 0),
	T("U+FFFF", "\xef\xbf\xbf", "\xef\xbf\xbf", 0),
	T("U+10000", "\xf0\x90\x80\x80", "\xf0\x90\x80\x80", 0),
	T("U+1F600", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", 0),
	T("U+3FFFF", "\xf0\xbf\xbf\xbf", "\xf0\xbf\xbf\xbf", 0),
	T("U+40000", "\xf1\x80\x80\x80", "\xf1\x80\x80\x80", 0),
	T("U+FFFFF", "\xf3\xbf\xbf\xbf", "\xf3\xbf\xbf\xbf", 0),
	T("U+100000", "\xf4\x80\x80\x80", "\xf4\x80\x80\x80", 0),
	T("U+10FFFF", "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf", 0),
	T("mixed", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z",
	    "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 0),
	T("escapes around UTF-8", "\t\xc3\xa9\\\xe2\x82\xac\n",
	    "\\t\xc3\xa9\\\\\xe2\x82\xac\\n", 0),
};

/* Ill-formed: every byte that is not part of a well-formed sequence. */
static const struct tcase ill_formed[] = {
	T("overlong C0 AF", "\xc0\xaf", R R, 2),
	T("overlong C1 BF", "\xc1\xbf", R R, 2),
	T("overlong E0 80 AF", "\xe0\x80\xaf", R R R, 3),
	T("overlong E0 9F BF", "\xe0\x9f\xbf", R R R, 3),
	T("overlong F0 80 80 80", "\xf0\x80\x80\x80", R R R R, 4),
	T("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", R R R R, 4),
	T("surrogate ED A0 80", "\xed\xa0\x80", R R R, 3),
	T("surrogate ED BF BF", "\xed\xbf\xbf", R R R, 3),
	T("surrogate pair", "\xed\xa0\xbd\xed\xb8\x80", R R R R R R, 6),
	T("above U+10FFFF F4 90 80 80", "\xf4\x90\x80\x80", R R R R, 4),
	T("F5 80 80 80", "\xf5\x80\x80\x80", R R R R, 4),
	T("F7 BF BF BF", "\xf7\xbf\xbf\xbf", R R R R, 4),
	T("F8 88 80 80 80", "\xf8\x88\x80\x80\x80", R R R R R, 5),
	T("FE FF", "\xfe\xff", R R, 2),
	T("lone continuation 80", "\x80", R, 1),
	T("lone continuation BF",
	    "a\xbf"
	    "b",
	    "a" R "b", 1),
	T("continuations after a full char", "\xc3\xa9\x80\x80", "\xc3\xa9" R R,
	    2),
	T("truncated 2 at end", "ab\xc3", "ab" R, 1),
	T("truncated 3 at end (1)", "ab\xe2", "ab" R, 1),
	T("truncated 3 at end (2)", "ab\xe2\x82", "ab" R R, 2),
	T("truncated 4 at end (3)", "ab\xf0\x9f\x98", "ab" R R R, 3),
	T("truncated before ASCII",
	    "\xe2\x82"
	    "A",
	    R R "A", 2),
	T("truncated before a lead", "\xe2\x82\xc3\xa9", R R "\xc3\xa9", 2),
	T("lead then lead", "\xc3\xc3\xa9", R "\xc3\xa9", 1),
	T("E2 28 A1", "\xe2\x28\xa1", R "(" R, 2),
	T("F0 9F 98 then LF", "\xf0\x9f\x98\n", R R R "\\n", 3),
	T("NUL inside", "a\0b", "a" R "b", 1),
	T("NUL then continuation", "\0\x80", R R, 2),
};

static void
check_table(struct fx *x, const struct tcase *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		assert_int_equal(encode(x, t[i].in, t[i].inlen), t[i].replaced);
		assert_bytes(t[i].name, x->out.data, x->out.len, t[i].want,
		    t[i].wantlen);
		/* The reference sanitiser agrees with the table. */
		assert_int_equal(
		    sanitize(&x->want, t[i].in, t[i].inlen), t[i].replaced);
	}
}

static void
test_text_well_formed(void **state)
{
	check_table(
	    *state, well_formed, sizeof(well_formed) / sizeof(well_formed[0]));
}

static void
test_text_ill_formed(void **state)
{
	check_table(
	    *state, ill_formed, sizeof(ill_formed) / sizeof(ill_formed[0]));
}

/* copyenc_text appends after what the buffer holds. */
static void
test_text_appends(void **state)
{
	struct fx *x = *state;

	buf_reset(&x->out);
	append(&x->out, "head|", 5);
	assert_int_equal(buf_reserve(&x->out, 9), 0);
	assert_int_equal(copyenc_text(&x->out, "a\tb\xff", 4), 1);
	assert_bytes("append", x->out.data, x->out.len, "head|a\\tb" R, 12);
	/* Worst case: 3 bytes out per byte in. */
	buf_reset(&x->in);
	while (x->in.len < 4096)
		append(&x->in, "\0\xff", 2);
	assert_int_equal(encode(x, x->in.data, x->in.len), 4096);
	assert_int_equal(x->out.len, 3 * 4096);
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

/* Random bytes, rich in escapes, valid and broken UTF-8. */
static void
gen(struct buf *b, uint64_t *seed, size_t maxtok)
{
	static const struct {
		const char *p;
		size_t n;
	} tok[] = {
		{ "a", 1 },
		{ "Z", 1 },
		{ " ", 1 },
		{ "N", 1 },
		{ "\\", 1 },
		{ "\n", 1 },
		{ "\r", 1 },
		{ "\t", 1 },
		{ "\0", 1 },
		{ "\\N", 2 },
		{ "\xc3\xa9", 2 },
		{ "\xe2\x82\xac", 3 },
		{ "\xf0\x9f\x98\x80", 4 },
		{ "\xf4\x8f\xbf\xbf", 4 },
		{ "\xed\x9f\xbf", 3 },
		{ "\xc0\xaf", 2 },
		{ "\xed\xa0\x80", 3 },
		{ "\xf4\x90\x80\x80", 4 },
		{ "\xe2\x82", 2 },
		{ "\xf0\x9f", 2 },
		{ "\x80", 1 },
		{ "\xff", 1 },
		{ "\x7f", 1 },
		{ "\x01", 1 },
	};
	size_t i, n = rnd(seed) % (maxtok + 1), k;
	char c;

	buf_reset(b);
	for (i = 0; i < n; i++) {
		k = rnd(seed) % (2 * (sizeof(tok) / sizeof(tok[0])));
		if (k < sizeof(tok) / sizeof(tok[0])) {
			append(b, tok[k].p, tok[k].n);
		} else {
			c = (char)(rnd(seed) & 0xFF);
			append(b, &c, 1);
		}
	}
}

/* decode(encode(x)) == sanitize(x) for random x. */
static void
test_text_round_trip(void **state)
{
	struct fx *x = *state;
	struct dfield f[MAXFIELDS];
	uint64_t seed = 0x243F6A8885A308D3u;
	size_t i, bad, got;
	char what[64];

	for (i = 0; i < 20000; i++) {
		gen(&x->in, &seed, 60);
		got = encode(x, x->in.data, x->in.len);
		/* No raw TAB, LF, CR or NUL can leave the encoder. */
		assert_null(memchr(x->out.data, '\t', x->out.len));
		assert_null(memchr(x->out.data, '\n', x->out.len));
		assert_null(memchr(x->out.data, '\r', x->out.len));
		assert_null(memchr(x->out.data, '\0', x->out.len));
		assert_int_equal(decode_row(x, x->out.data, x->out.len, f), 1);
		assert_false(f[0].null);
		bad = sanitize(&x->ref, x->in.data, x->in.len);
		snprintf(what, sizeof(what), "round trip #%zu", i);
		assert_bytes(
		    what, x->dec.data, x->dec.len, x->ref.data, x->ref.len);
		assert_int_equal(got, bad);
	}
}

/*
 * copyenc_text moves plain text 8 bytes at a time: every byte of interest
 * (and harmless controls, which stop the 8-byte steps too) at every
 * position of runs up to 40 bytes, alone and in pairs, against the
 * reference.
 */
static void
test_text_word_edges(void **state)
{
	static const char special[] = { '\t', '\n', '\r', '\\', '\0', '\x01',
		'\x1f', '\x7f', '\x80', '\xc3', '\xa9', '\xff', ' ', '~' };
	struct fx *x = *state;
	struct dfield f[MAXFIELDS];
	char in[48], what[64];
	size_t len, i, j, k, got, bad;

	for (len = 0; len <= 40; len++)
		for (i = 0; i < len; i++)
			for (k = 0; k < sizeof(special); k++) {
				memset(in, 'a' + (int)(len % 26), len);
				in[i] = special[k];
				j = (i * 7 + k) % len;
				if (k % 2 == 0)
					in[j] =
					    special[(k + 3) % sizeof(special)];
				got = encode(x, in, len);
				assert_int_equal(
				    decode_row(x, x->out.data, x->out.len, f),
				    1);
				bad = sanitize(&x->ref, in, len);
				snprintf(what, sizeof(what),
				    "len %zu, byte %zu = %02x", len, i,
				    (unsigned char)special[k]);
				assert_bytes(what, x->dec.data, x->dec.len,
				    x->ref.data, x->ref.len);
				assert_int_equal(got, bad);
			}
}

/* Encodes one timestamp into x->out as a C string. */
static const char *
ts(struct fx *x, int64_t us)
{
	buf_reset(&x->out);
	assert_int_equal(buf_reserve(&x->out, 41), 0);
	copyenc_timestamp(&x->out, us);
	assert_int_equal(x->out.len, 29);
	x->out.data[x->out.len] = '\0';
	return x->out.data;
}

static void
test_timestamp(void **state)
{
	static const struct {
		int64_t us;
		const char *want;
	} t[] = {
		{ 0, "1970-01-01 00:00:00.000000+00" },
		{ 1, "1970-01-01 00:00:00.000001+00" },
		{ 1234, "1970-01-01 00:00:00.001234+00" },
		{ 999999, "1970-01-01 00:00:00.999999+00" },
		{ 1000000, "1970-01-01 00:00:01.000000+00" },
		{ 86399999999, "1970-01-01 23:59:59.999999+00" },
		{ -1, "1969-12-31 23:59:59.999999+00" },
		{ -999999, "1969-12-31 23:59:59.000001+00" },
		{ -1000000, "1969-12-31 23:59:59.000000+00" },
		{ -1000001, "1969-12-31 23:59:58.999999+00" },
		{ -86400000000, "1969-12-31 00:00:00.000000+00" },
		{ -86400000001, "1969-12-30 23:59:59.999999+00" },
		{ -58039199500000, "1968-02-29 06:00:00.500000+00" },
		{ 951782400000000, "2000-02-29 00:00:00.000000+00" },
		{ 1709164799999999, "2024-02-28 23:59:59.999999+00" },
		{ 1709210096789012, "2024-02-29 12:34:56.789012+00" },
		{ 1709251200000000, "2024-03-01 00:00:00.000000+00" },
		{ -2203891201000000, "1900-02-28 23:59:59.000000+00" },
		{ -2203891200000000, "1900-03-01 00:00:00.000000+00" },
		{ 4107456000000000, "2100-02-28 00:00:00.000000+00" },
		{ 4107542400000000, "2100-03-01 00:00:00.000000+00" },
		{ 253402300799999999, "9999-12-31 23:59:59.999999+00" },
		{ -62135596800000000, "0001-01-01 00:00:00.000000+00" },
	};
	struct fx *x = *state;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_string_equal(ts(x, t[i].us), t[i].want);
	/* It appends, and writes no more than it says. */
	buf_reset(&x->out);
	append(&x->out, "x", 1);
	assert_int_equal(buf_reserve(&x->out, 41), 0);
	copyenc_timestamp(&x->out, 0);
	assert_int_equal(x->out.len, 30);
	assert_memory_equal(x->out.data, "x1970-01-01 00:00:00.000000+00", 30);
}

/* The reference text of instant us, from gmtime_r(). */
static const char *
ref_ts(char *want, size_t wantlen, int64_t us)
{
	int64_t s = us / 1000000 - (us % 1000000 < 0);
	time_t t = (time_t)s;
	struct tm tm;

	assert_non_null(gmtime_r(&t, &tm));
	snprintf(want, wantlen, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (long long)(us - s * 1000000));
	return want;
}

/*
 * copyenc_timestamp keeps the last two seconds it formatted: instants
 * drawn from three nearby seconds (and across midnight, and negative
 * ones), in an order that hits and misses both entries.
 */
static void
test_timestamp_cache(void **state)
{
	static const int64_t base[] = { 1763769599, 1763769600, 1763769601, -1,
		0, 1763769599 + 86400 };
	uint64_t seed = 0xA4093822299F31D0u;
	struct fx *x = *state;
	char want[64];
	int64_t us;
	int i;

	for (i = 0; i < 100000; i++) {
		us = base[rnd(&seed) % (i < 50000 ? 3 : 6)] * 1000000 +
		    (int64_t)(rnd(&seed) % 1000000);
		assert_string_equal(ts(x, us), ref_ts(want, sizeof(want), us));
	}
}

/* Random instants from year 1 to 9999 against gmtime_r(). */
static void
test_timestamp_vs_gmtime(void **state)
{
	const int64_t lo = -62135596800000000, hi = 253402300799999999;
	uint64_t seed = 0x13198A2E03707344u;
	struct fx *x = *state;
	char want[64];
	int64_t us;
	int i;

	for (i = 0; i < 200000; i++) {
		us = lo + (int64_t)(rnd(&seed) % (uint64_t)(hi - lo + 1));
		if (i % 4 == 0) /* near the epoch, both signs */
			us = (int64_t)(rnd(&seed) % 4000000000000u) -
			    2000000000000;
		assert_string_equal(ts(x, us), ref_ts(want, sizeof(want), us));
	}
}

/*
 * Outside years 1..9999 (timestamptz text input wants four digits) the
 * whole instant is clamped to the range, so the text keeps the order of
 * the instants: year 0, which the RFC 3339 parser accepts, must not print
 * as a date in year 1 after 0001-01-01.  Extreme values must not overflow
 * (UBSan checks).
 */
static void
test_timestamp_clamp(void **state)
{
	const int64_t y1 = -62135596800000000, y10000 = 253402300800000000;
	struct fx *x = *state;
	char before[32], after[32];

	snprintf(before, sizeof(before), "%s", ts(x, y1 - 3600000000));
	snprintf(after, sizeof(after), "%s", ts(x, y1 + 3600000000));
	if (strcmp(before, after) > 0)
		fail_msg("year 0: '%s' sorts after '%s'", before, after);
	snprintf(before, sizeof(before), "%s", ts(x, y10000 - 1));
	snprintf(after, sizeof(after), "%s", ts(x, y10000));
	if (strcmp(before, after) > 0)
		fail_msg("year 10000: '%s' sorts after '%s'", after, before);
	assert_string_equal(ts(x, y1 - 1), "0001-01-01 00:00:00.000000+00");
	assert_string_equal(ts(x, INT64_MIN), "0001-01-01 00:00:00.000000+00");
	assert_string_equal(ts(x, y10000), "9999-12-31 23:59:59.999999+00");
	assert_string_equal(ts(x, INT64_MAX), "9999-12-31 23:59:59.999999+00");
}

static void
record_all_null(struct record *r, int64_t received_us)
{
	memset(r, 0, sizeof(*r));
	r->received_us = received_us;
	r->peer = NULL;
	record_clear_parsed(r);
}

static void
row(struct fx *x, const struct record *r, size_t *replaced)
{
	buf_reset(&x->out);
	*replaced = 12345; /* must be reset by copyenc_row */
	assert_int_equal(copyenc_row_text(&x->out, r, replaced), 0);
}

static void
test_row_all_null(void **state)
{
	static const char want[] = "1970-01-01 00:00:00.000000+00"
				   "\t\\N\t\\N\t\\N\t\\N\t\\N" /* peer..msgid */
				   "\t\\N\t\\N\t\\N" /* fac, sev, event_time */
				   "\t"              /* message: empty */
				   "\t\\N"           /* fields */
				   "\t\\N\n";        /* tls_subject */
	struct fx *x = *state;
	struct dfield f[MAXFIELDS];
	struct record r;
	size_t replaced, i;

	record_all_null(&r, 0);
	row(x, &r, &replaced);
	assert_int_equal(replaced, 0);
	assert_bytes(
	    "all-NULL row", x->out.data, x->out.len, want, sizeof(want) - 1);
	assert_int_equal(
	    decode_row(x, x->out.data, x->out.len - 1, f), COPYENC_NCOLUMNS);
	for (i = 1; i < COPYENC_NCOLUMNS; i++)
		assert_int_equal(f[i].null, i != 9);
	assert_int_equal(f[9].len, 0);
}

/* Fills every column; message and fields have bytes to escape/replace. */
static void
record_all_set(struct record *r)
{
	static const char msg[] = "line1\nline2\r\0\xff\xc3\xa9 \\N";

	record_all_null(r, 1709210096789012);
	r->peer = "192.0.2.1";
	r->host = (struct text){ "web\t01", 6 };
	r->app = (struct text){ "back\\slash", 10 };
	r->procid = (struct text){ "4242", 4 };
	r->msgid = (struct text){ "\\N", 2 }; /* text, not NULL */
	r->facility = 23;
	r->severity = 0;
	r->has_event_time = true;
	r->event_us = -1;
	r->message = (struct text){ msg, sizeof(msg) - 1 };
	r->fields = (struct text){ "{\"k\": \"v\"}", 10 };
	r->tls_subject.ptr = "CN=web\\,01,O=Ex\tample";
	r->tls_subject.len = strlen(r->tls_subject.ptr);
}

static void
test_row_all_set(void **state)
{
	static const char want[] =
	    "2024-02-29 12:34:56.789012+00\t192.0.2.1\tweb\\t01\t"
	    "back\\\\slash\t4242\t\\\\N\t23\t0\t"
	    "1969-12-31 23:59:59.999999+00\t"
	    "line1\\nline2\\r" R R "\xc3\xa9 \\\\N\t{\"k\": \"v\"}\t"
	    "CN=web\\\\,01,O=Ex\\tample\n";
	struct fx *x = *state;
	struct dfield f[MAXFIELDS];
	struct record r;
	size_t replaced;

	record_all_set(&r);
	row(x, &r, &replaced);
	assert_int_equal(replaced, 2);
	assert_bytes(
	    "all-set row", x->out.data, x->out.len, want, sizeof(want) - 1);
	assert_int_equal(
	    decode_row(x, x->out.data, x->out.len - 1, f), COPYENC_NCOLUMNS);
	assert_false(f[5].null);
	assert_memory_equal(x->dec.data + f[5].off, "\\N", 2);
	/* Facility and severity one and two digits; empty is not NULL. */
	r.facility = 9;
	r.severity = 7;
	r.host = (struct text){ "", 0 };
	r.has_event_time = false;
	row(x, &r, &replaced);
	assert_int_equal(
	    decode_row(x, x->out.data, x->out.len - 1, f), COPYENC_NCOLUMNS);
	assert_false(f[2].null);
	assert_int_equal(f[2].len, 0);
	assert_memory_equal(x->dec.data + f[6].off, "9", f[6].len);
	assert_memory_equal(x->dec.data + f[7].off, "7", f[7].len);
	assert_true(f[8].null);
}

/* Rows append; big fields make the buffer grow (ASan checks bounds). */
static void
test_row_appends_and_grows(void **state)
{
	struct fx *x = *state;
	struct record r;
	size_t replaced, first;

	buf_reset(&x->in);
	while (x->in.len < 100000)
		append(&x->in, "\xff\0\\", 3);
	record_all_null(&r, 0);
	r.message = (struct text){ x->in.data, x->in.len };
	r.fields = (struct text){ x->in.data, x->in.len };
	r.host = (struct text){ x->in.data, 999 };
	buf_reset(&x->out);
	append(&x->out, "prev\n", 5);
	assert_int_equal(copyenc_row_text(&x->out, &r, &replaced), 0);
	/* Each "\xff\0\\" has 2 replaced bytes; the host has 333. */
	assert_int_equal(replaced, 2 * 2 * (x->in.len / 3) + 2 * 333);
	assert_memory_equal(x->out.data, "prev\n1970-", 10);
	first = x->out.len;
	assert_int_equal(x->out.data[first - 1], '\n');
	assert_int_equal(copyenc_row_text(&x->out, &r, &replaced), 0);
	assert_int_equal(x->out.len, first + (first - 5));
}

/* A decoded facility or severity: NULL if v < 0, else its decimal text. */
static void
check_small(struct fx *x, const struct dfield *d, int v)
{
	char num[16];
	int n;

	if (v < 0) {
		assert_true(d->null);
		return;
	}
	n = snprintf(num, sizeof(num), "%d", v);
	assert_false(d->null);
	assert_bytes(
	    "facility/severity", x->dec.data + d->off, d->len, num, (size_t)n);
}

/* Random records: every column decodes back to its sanitised value. */
static void
test_row_round_trip(void **state)
{
	static const int colidx[6] = { 2, 3, 4, 5, 9, 10 };
	struct fx *x = *state;
	struct dfield f[MAXFIELDS];
	struct record r;
	struct text *cols[6] = { &r.host, &r.app, &r.procid, &r.msgid,
		&r.message, &r.fields };
	uint64_t seed = 0xA4093822299F31D0u;
	size_t i, c, replaced, want_replaced;
	struct dfield *d;
	char what[64];

	for (i = 0; i < 3000; i++) {
		record_all_null(&r, (int64_t)(rnd(&seed) % 4000000000000000u));
		for (c = 0; c < 6; c++) {
			if (rnd(&seed) % 4 == 0)
				continue; /* NULL */
			gen(&x->src[c], &seed, 20);
			append(&x->src[c], "", 1); /* never a NULL pointer */
			cols[c]->ptr = x->src[c].data;
			cols[c]->len = x->src[c].len - 1;
		}
		r.facility = (int)(rnd(&seed) % 25) - 1;
		r.severity = (int)(rnd(&seed) % 9) - 1;
		row(x, &r, &replaced);
		assert_int_equal(x->out.data[x->out.len - 1], '\n');
		assert_int_equal(decode_row(x, x->out.data, x->out.len - 1, f),
		    COPYENC_NCOLUMNS);
		want_replaced = 0;
		for (c = 0; c < 6; c++) {
			d = &f[colidx[c]];
			/* A NULL message is stored as empty text. */
			if (cols[c]->ptr == NULL && c != 4) {
				assert_true(d->null);
				continue;
			}
			want_replaced += sanitize(&x->ref,
			    cols[c]->ptr != NULL ? cols[c]->ptr : "",
			    cols[c]->len);
			snprintf(what, sizeof(what), "row #%zu column %d", i,
			    colidx[c]);
			assert_false(d->null);
			assert_bytes(what, x->dec.data + d->off, d->len,
			    x->ref.data, x->ref.len);
		}
		assert_int_equal(replaced, want_replaced);
		check_small(x, &f[6], r.facility);
		check_small(x, &f[7], r.severity);
	}
}

/* A random record: texts from gen(), valid JSON, IPv4 and IPv6 peers. */
static void
random_record(struct fx *x, struct record *r, uint64_t *seed, int64_t id)
{
	static const char *const peers[] = { NULL, "192.0.2.1", "10.0.0.255",
		"::1", "2001:db8::17", "::ffff:198.51.100.7" };
	struct text *cols[5] = { &r->host, &r->app, &r->procid, &r->msgid,
		&r->message };
	size_t c;

	record_all_null(r,
	    (int64_t)(rnd(seed) % 4000000000000000u) - 2000000000000000 + id);
	r->peer = peers[rnd(seed) % 6];
	for (c = 0; c < 5; c++) {
		if (rnd(seed) % 4 == 0)
			continue; /* NULL */
		gen(&x->src[c], seed, 20);
		append(&x->src[c], "", 1); /* never a NULL pointer */
		cols[c]->ptr = x->src[c].data;
		cols[c]->len = x->src[c].len - 1;
	}
	r->facility = (int)(rnd(seed) % 25) - 1;
	r->severity = (int)(rnd(seed) % 9) - 1;
	if ((r->has_event_time = rnd(seed) % 2 == 0))
		r->event_us =
		    (int64_t)(rnd(seed) % 8000000000000000u) - 4000000000000000;
	if (rnd(seed) % 2 == 0)
		r->fields = (struct text){ "{\"a\": [1, \"\\u00e9\"]}", 20 };
	if (rnd(seed) % 3 == 0)
		r->tls_subject = (struct text){ "CN=c\\,1,O=x\ty\xff", 14 };
}

/* Binary rows: exact bytes of an all-NULL row and of an all-set one. */
static void
test_bin_row_bytes(void **state)
{
	/* received_at 1970-01-01 = -946684800000000 µs from 2000. */
	static const char null_row[] =
	    "\0\14"                                  /* 12 fields */
	    "\0\0\0\10\377\374\242\376\304\310\40\0" /* received_at */
	    "\377\377\377\377\377\377\377\377"       /* peer, host */
	    "\377\377\377\377\377\377\377\377"       /* app, procid */
	    "\377\377\377\377\377\377\377\377"       /* msgid, facility */
	    "\377\377\377\377\377\377\377\377"       /* severity, event */
	    "\0\0\0\0"                               /* message: empty */
	    "\377\377\377\377"                       /* fields */
	    "\377\377\377\377";                      /* tls_subject */
	static const char set_tail[] =
	    "\0\0\0\10\0\0\0\0\0\0\0\0"    /* 2000-01-01 */
	    "\0\0\0\10\2\40\0\4\300\0\2\1" /* inet 192.0.2.1 */
	    "\0\0\0\6web\t01"              /* host: no escapes */
	    "\0\0\0\3a\\b"                 /* app */
	    "\377\377\377\377"             /* procid NULL */
	    "\0\0\0\2\\N"                  /* msgid: text */
	    "\0\0\0\2\0\27\0\0\0\2\0\0"    /* facility 23, severity 0 */
	    "\0\0\0\10\377\377\377\377\377\377\377\377" /* 1999-12-31
							   23:59:59.999999 */
	    "\0\0\0\11x" R "\n" R "y"   /* message: NUL, \xff replaced */
	    "\0\0\0\13\1{\"k\": \"v\"}" /* jsonb version 1 */
	    "\0\0\0\4CN=x";             /* tls_subject */
	struct fx *x = *state;
	struct record r;
	size_t replaced;

	record_all_null(&r, 0);
	buf_reset(&x->out);
	assert_int_equal(copyenc_row(&x->out, &r, &replaced), 0);
	assert_int_equal(replaced, 0);
	assert_bytes("all-NULL binary row", x->out.data, x->out.len, null_row,
	    sizeof(null_row) - 1);
	record_all_null(&r, 946684800000000);
	r.peer = "192.0.2.1";
	r.host = (struct text){ "web\t01", 6 };
	r.app = (struct text){ "a\\b", 3 };
	r.msgid = (struct text){ "\\N", 2 };
	r.facility = 23;
	r.severity = 0;
	r.has_event_time = true;
	r.event_us = 946684800000000 - 1;
	r.message = (struct text){ "x\0\n\xffy", 5 };
	r.fields = (struct text){ "{\"k\": \"v\"}", 10 };
	r.tls_subject = (struct text){ "CN=x", 4 };
	buf_reset(&x->out);
	assert_int_equal(copyenc_row(&x->out, &r, &replaced), 0);
	assert_int_equal(replaced, 2);
	assert_bytes("all-set binary row", x->out.data + 2, x->out.len - 2,
	    set_tail, sizeof(set_tail) - 1);
	/* An IPv6 peer; a peer that is no address is NULL. */
	r.peer = "2001:db8::1";
	buf_reset(&x->out);
	assert_int_equal(copyenc_row(&x->out, &r, &replaced), 0);
	assert_memory_equal(x->out.data + 14,
	    "\0\0\0\24\3\200\0\20\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\1", 24);
	r.peer = "not-an-ip";
	buf_reset(&x->out);
	assert_int_equal(copyenc_row(&x->out, &r, &replaced), 0);
	assert_memory_equal(x->out.data + 14, "\377\377\377\377", 4);
}

/*
 * Random records: copyenc_row_size() finds each row's end in a run of
 * rows and refuses every shorter cut; copyenc_decode() gives a record
 * whose text row equals the original's (sanitising is idempotent).
 */
static void
test_bin_round_trip(void **state)
{
	struct fx *x = *state;
	uint64_t seed = 0xBE5466CF34E90C6Cu;
	struct record r, d;
	size_t replaced, off, n, cut, i;
	char peer[64];

	buf_reset(&x->data);
	for (i = 0; i < 3000; i++) {
		random_record(x, &r, &seed, (int64_t)i);
		off = x->data.len;
		assert_int_equal(copyenc_row(&x->data, &r, &replaced), 0);
		n = x->data.len - off;
		assert_int_equal(copyenc_row_size(x->data.data + off, n), n);
		for (cut = 0; cut < n; cut += 1 + cut / 8)
			assert_int_equal(
			    copyenc_row_size(x->data.data + off, cut), 0);
		assert_int_equal(copyenc_decode(x->data.data + off, n, &d, peer,
				     sizeof(peer)),
		    0);
		assert_int_equal(copyenc_decode(x->data.data + off, n - 1, &d,
				     peer, sizeof(peer)),
		    -1);
		buf_reset(&x->out);
		assert_int_equal(copyenc_row_text(&x->out, &r, &replaced), 0);
		buf_reset(&x->ref);
		assert_int_equal(copyenc_decode(x->data.data + off, n, &d, peer,
				     sizeof(peer)),
		    0);
		assert_int_equal(copyenc_row_text(&x->ref, &d, &replaced), 0);
		assert_int_equal(replaced, 0);
		assert_bytes("text of the decoded row", x->ref.data, x->ref.len,
		    x->out.data, x->out.len);
	}
	/* The rows back to back, then the trailer. */
	append(&x->data, COPYENC_TRAILER, COPYENC_TRAILER_LEN);
	for (off = 0, i = 0;
	     (n = copyenc_row_size(x->data.data + off, x->data.len - off)) > 0;
	     i++)
		off += n;
	assert_int_equal(i, 3000);
	assert_int_equal(off, x->data.len - COPYENC_TRAILER_LEN);
}

/* Runs sql; the result stays in x->res (freed by teardown). */
static void
pg_exec(struct fx *x, const char *sql, ExecStatusType want)
{
	PQclear(x->res);
	x->res = PQexec(x->pg, sql);
	if (PQresultStatus(x->res) != want)
		fail_msg("%s: %s", sql, PQerrorMessage(x->pg));
}

/* Connects to LOGSINK_TEST_PG, or skips the test. */
static bool
pg_connect(struct fx *x)
{
	const char *ci = getenv("LOGSINK_TEST_PG");

	if (ci == NULL || *ci == '\0')
		return false;
	x->pg = PQconnectdb(ci);
	if (PQstatus(x->pg) != CONNECTION_OK)
		fail_msg("PQconnectdb: %s", PQerrorMessage(x->pg));
	pg_exec(x, "SET client_encoding = 'UTF8'", PGRES_COMMAND_OK);
	pg_exec(x, "SET TimeZone = 'UTC'", PGRES_COMMAND_OK);
	return true;
}

/* Sends x->data through the COPY started by sql. */
static void
pg_copy(struct fx *x, const char *sql)
{
	pg_exec(x, sql, PGRES_COPY_IN);
	assert_int_equal(
	    PQputCopyData(x->pg, x->data.data, (int)x->data.len), 1);
	assert_int_equal(PQputCopyEnd(x->pg, NULL), 1);
	PQclear(x->res);
	x->res = PQgetResult(x->pg);
	if (PQresultStatus(x->res) != PGRES_COMMAND_OK)
		fail_msg("COPY: %s", PQerrorMessage(x->pg));
	PQclear(x->res);
	x->res = PQgetResult(x->pg);
	assert_null(x->res);
}

/* Appends "id\t<copyenc_text(p)>\n" to x->data. */
static void
pg_text_row(struct fx *x, int id, const char *p, size_t n)
{
	char num[16];
	int len = snprintf(num, sizeof(num), "%d\t", id);

	append(&x->data, num, (size_t)len);
	assert_int_equal(buf_reserve(&x->data, 3 * n + 1), 0);
	copyenc_text(&x->data, p, n);
	append(&x->data, "\n", 1);
}

/* Lower-case hex of the sanitised p[0..n), as encode(..., 'hex') gives. */
static void
want_hex(struct fx *x, const char *p, size_t n)
{
	char h[3];
	size_t i;

	sanitize(&x->dec, p, n);
	buf_reset(&x->want);
	for (i = 0; i < x->dec.len; i++) {
		snprintf(h, sizeof(h), "%02x", (unsigned char)x->dec.data[i]);
		append(&x->want, h, 2);
	}
	append(&x->want, "", 1);
}

/*
 * A real COPY: every byte value alone, all of them in one string, the
 * ill-formed table and random strings go in through copyenc_text and come
 * back as the sanitised bytes.
 */
static void
test_pg_text_round_trip(void **state)
{
	struct fx *x = *state;
	uint64_t seed = 0x082EFA98EC4E6C89u;
	struct buf *rnds = x->rnds;
	size_t i, nill = sizeof(ill_formed) / sizeof(ill_formed[0]), nt;
	int id;
	char c;

	if (!pg_connect(x)) {
		skip();
		return;
	}
	pg_exec(x, "CREATE TEMP TABLE t (id int, v text)", PGRES_COMMAND_OK);
	buf_reset(&x->data);
	buf_reset(&x->in);
	for (i = 0; i < 256; i++) {
		c = (char)i;
		pg_text_row(x, (int)i, &c, 1);
		append(&x->in, &c, 1);
	}
	pg_text_row(x, 256, x->in.data, x->in.len);
	for (i = 0; i < nill; i++)
		pg_text_row(
		    x, 300 + (int)i, ill_formed[i].in, ill_formed[i].inlen);
	for (i = 0; i < 40; i++) {
		gen(&rnds[i], &seed, 80);
		pg_text_row(x, 400 + (int)i, rnds[i].data, rnds[i].len);
	}
	pg_copy(x, "COPY t (id, v) FROM STDIN");
	pg_exec(x,
	    "SELECT id, encode(convert_to(v, 'UTF8'), 'hex') FROM t "
	    "ORDER BY id",
	    PGRES_TUPLES_OK);
	nt = (size_t)PQntuples(x->res);
	for (i = 0; i < nt && i < 257 + nill + 40; i++) {
		id = atoi(PQgetvalue(x->res, (int)i, 0));
		if (id < 256) {
			c = (char)id;
			want_hex(x, &c, 1);
		} else if (id == 256) {
			/* x->in still holds bytes 0..255. */
			want_hex(x, x->in.data, x->in.len);
		} else if (id < 400) {
			want_hex(x, ill_formed[id - 300].in,
			    ill_formed[id - 300].inlen);
		} else {
			want_hex(x, rnds[id - 400].data, rnds[id - 400].len);
		}
		if (strcmp(PQgetvalue(x->res, (int)i, 1), x->want.data) != 0)
			break;
	}
	assert_int_equal(nt, 257 + nill + 40);
	if (i < nt)
		fail_msg("row id %s: got %s, want %s",
		    PQgetvalue(x->res, (int)i, 0),
		    PQgetvalue(x->res, (int)i, 1), x->want.data);
}

/* The four rows of test_pg_row_round_trip() into x->data, in the
 * binary format (with header and trailer) or in the text format. */
static void
edge_rows(struct fx *x, int binary)
{
	int (*enc)(struct buf *, const struct record *, size_t *) =
	    binary ? copyenc_row : copyenc_row_text;
	struct record r;
	size_t replaced;

	buf_reset(&x->data);
	if (binary)
		append(&x->data, COPYENC_HEADER, COPYENC_HEADER_LEN);
	record_all_null(&r, 0);
	assert_int_equal(enc(&x->data, &r, &replaced), 0);
	record_all_set(&r);
	assert_int_equal(enc(&x->data, &r, &replaced), 0);
	record_all_null(&r, -1);
	r.message = (struct text){ "hi", 2 };
	assert_int_equal(enc(&x->data, &r, &replaced), 0);
	record_all_null(&r, -62135596800000000);
	r.host = (struct text){ "", 0 };
	r.has_event_time = true;
	r.event_us = 253402300799999999;
	assert_int_equal(enc(&x->data, &r, &replaced), 0);
	if (binary)
		append(&x->data, COPYENC_TRAILER, COPYENC_TRAILER_LEN);
}

/* Table r, one row per line of want. */
static void
check_edge_rows(struct fx *x, const char *const *want, int n)
{
	int i;

	pg_exec(x,
	    "SELECT concat_ws('|', "
	    "to_char(received_at, 'YYYY-MM-DD HH24:MI:SS.US'), "
	    "coalesce(host(peer), '<null>'), coalesce(host, '<null>'), "
	    "coalesce(app, '<null>'), coalesce(procid, '<null>'), "
	    "coalesce(msgid, '<null>'), coalesce(facility::text, '<null>'), "
	    "coalesce(severity::text, '<null>'), "
	    "coalesce(to_char(event_time, 'YYYY-MM-DD HH24:MI:SS.US'), "
	    "'<null>'), encode(convert_to(message, 'UTF8'), 'hex'), "
	    "coalesce(fields::text, '<null>'), tls_subject) FROM r "
	    "ORDER BY received_at",
	    PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(x->res), n);
	for (i = 0; i < n; i++)
		assert_string_equal(PQgetvalue(x->res, i, 0), want[i]);
}

/*
 * A real COPY of whole rows into a table with the columns of
 * sql/001_logs.sql: NULLs, escapes, replaced bytes and edge timestamps.
 */
static void
test_pg_row_round_trip(void **state)
{
	static const char *const want[] = {
		"0001-01-01 00:00:00.000000|<null>||<null>|<null>|<null>|"
		"<null>|<null>|9999-12-31 23:59:59.999999||<null>",
		"1969-12-31 23:59:59.999999|<null>|<null>|<null>|<null>|"
		"<null>|<null>|<null>|<null>|6869|<null>",
		"1970-01-01 00:00:00.000000|<null>|<null>|<null>|<null>|"
		"<null>|<null>|<null>|<null>||<null>",
		"2024-02-29 12:34:56.789012|192.0.2.1|web\t01|back\\slash|"
		"4242|\\N|23|0|1969-12-31 23:59:59.999999|"
		"6c696e65310a6c696e65320defbfbdefbfbdc3a9205c4e|"
		"{\"k\": \"v\"}|CN=web\\,01,O=Ex\tample",
	};
	struct fx *x = *state;
	int binary;

	if (!pg_connect(x)) {
		skip();
		return;
	}
	pg_exec(x,
	    "CREATE TEMP TABLE r (received_at timestamptz NOT NULL, "
	    "peer inet, host text, app text, procid text, msgid text, "
	    "facility smallint, severity smallint, event_time timestamptz, "
	    "message text NOT NULL, fields jsonb, tls_subject text)",
	    PGRES_COMMAND_OK);
	for (binary = 0; binary <= 1; binary++) {
		pg_exec(x, "TRUNCATE r", PGRES_COMMAND_OK);
		edge_rows(x, binary);
		pg_copy(x,
		    binary ? "COPY r (" COPYENC_COLUMNS
			     ") FROM STDIN " COPYENC_OPTIONS
			   : "COPY r (" COPYENC_COLUMNS ") FROM STDIN");
		check_edge_rows(x, want, 4);
	}
}

/*
 * The same random records COPY'd in text format into one table and in
 * binary format into another give identical tables: the two encoders
 * agree on every column, as PostgreSQL reads them.
 */
static void
test_pg_binary_equals_text(void **state)
{
	struct fx *x = *state;
	uint64_t seed = 0x452821E638D01377u, s2;
	struct record r;
	size_t replaced;
	int i, pass;

	if (!pg_connect(x)) {
		skip();
		return;
	}
	for (pass = 0; pass < 2; pass++) {
		pg_exec(x,
		    pass ? "CREATE TEMP TABLE rb AS TABLE rt WITH NO DATA"
			 : "CREATE TEMP TABLE rt (id serial, "
			   "received_at timestamptz NOT NULL, peer inet, host "
			   "text, app text, procid text, msgid text, facility "
			   "smallint, severity smallint, event_time "
			   "timestamptz, message text NOT NULL, fields jsonb, "
			   "tls_subject text)",
		    PGRES_COMMAND_OK);
		buf_reset(&x->data);
		if (pass)
			append(&x->data, COPYENC_HEADER, COPYENC_HEADER_LEN);
		s2 = seed;
		for (i = 0; i < 2000; i++) {
			random_record(x, &r, &s2, i);
			assert_int_equal(pass
				? copyenc_row(&x->data, &r, &replaced)
				: copyenc_row_text(&x->data, &r, &replaced),
			    0);
		}
		if (pass)
			append(&x->data, COPYENC_TRAILER, COPYENC_TRAILER_LEN);
		pg_copy(x,
		    pass ? "COPY rb (" COPYENC_COLUMNS
			   ") FROM STDIN " COPYENC_OPTIONS
			 : "COPY rt (" COPYENC_COLUMNS ") FROM STDIN");
	}
	pg_exec(x,
	    "SELECT (SELECT count(*) FROM rb), (SELECT count(*) FROM "
	    "(SELECT received_at, peer, host, app, procid, msgid, facility, "
	    "severity, event_time, message, fields::text, tls_subject FROM rt "
	    "EXCEPT ALL SELECT received_at, peer, host, app, procid, msgid, "
	    "facility, severity, event_time, message, fields::text, "
	    "tls_subject FROM rb) d)",
	    PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(x->res, 0, 0), "2000");
	assert_string_equal(PQgetvalue(x->res, 0, 1), "0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_text_single_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_text_all_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_text_well_formed, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_text_ill_formed, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_text_appends, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_text_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_text_word_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_timestamp, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_timestamp_vs_gmtime, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_timestamp_clamp, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_timestamp_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_row_all_null, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_row_all_set, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_row_appends_and_grows, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_row_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bin_row_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bin_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_text_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_row_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_binary_equals_text, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
