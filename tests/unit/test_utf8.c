/*
 * Unit tests for utf8.h: every lead byte class, well-formedness checked
 * against a reference decoder (exhaustively for 1..3 bytes, the edges for
 * 4), overlongs, surrogates, U+10FFFF and beyond, truncated sequences,
 * cutting without splitting a character, and encoding every code point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "logsink/utf8.h"

/*
 * Reference: decodes the sequence at p[0..n) by its bit pattern and
 * checks the code point (shortest form, no surrogate, at most U+10FFFF),
 * where utf8.h checks byte ranges.  Returns the length or 0; *cp gets the
 * code point.
 */
static size_t
ref_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len, i;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xE0) == 0xC0) {
		len = 2;
		*cp = p[0] & 0x1Fu;
	} else if ((p[0] & 0xF0) == 0xE0) {
		len = 3;
		*cp = p[0] & 0x0Fu;
	} else if ((p[0] & 0xF8) == 0xF0) {
		len = 4;
		*cp = p[0] & 0x07u;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		*cp = *cp << 6 | (p[i] & 0x3Fu);
	}
	if (*cp < min_cp[len] || *cp > UTF8_MAX_CP ||
	    (*cp >= 0xD800 && *cp <= 0xDFFF))
		return 0;
	return len;
}

static size_t
seq(const char *s, size_t avail)
{
	return utf8_seq_len((const unsigned char *)s, avail);
}

/* Each of the 256 bytes falls in the class table 3-7 gives it. */
static void
test_lead_len_every_byte(void **state)
{
	unsigned c;
	size_t want;

	(void)state;
	for (c = 0; c < 256; c++) {
		if (c < 0x80)
			want = 1;
		else if (c < 0xC2)
			want = 0; /* continuation bytes, overlong C0 C1 */
		else if (c < 0xE0)
			want = 2;
		else if (c < 0xF0)
			want = 3;
		else if (c < 0xF5)
			want = 4;
		else
			want = 0; /* F5..FF: beyond U+10FFFF or never used */
		assert_int_equal(utf8_lead_len((unsigned char)c), want);
		assert_int_equal(
		    utf8_is_cont((unsigned char)c), c >= 0x80 && c < 0xC0);
	}
}

/* Every 1-, 2- and 3-byte string agrees with the reference decoder. */
static void
test_seq_len_exhaustive_short(void **state)
{
	unsigned char b[3];
	uint32_t cp, i;
	size_t got, want;

	(void)state;
	for (i = 0; i < 1u << 24; i++) {
		b[0] = (unsigned char)(i >> 16);
		b[1] = (unsigned char)(i >> 8);
		b[2] = (unsigned char)i;
		got = utf8_seq_len(b, 3);
		want = ref_decode(b, 3, &cp);
		if (got != want)
			fail_msg("%02x %02x %02x: got %zu, want %zu", b[0],
			    b[1], b[2], got, want);
		/* The same bytes with less available. */
		assert_int_equal(utf8_seq_len(b, 2), ref_decode(b, 2, &cp));
		assert_int_equal(utf8_seq_len(b, 1), ref_decode(b, 1, &cp));
	}
}

/*
 * 4-byte strings: every lead F0..FF and second byte, with the edge values
 * of the third and fourth bytes (just outside and at both ends of the
 * continuation range).
 */
static void
test_seq_len_four_bytes(void **state)
{
	static const unsigned char edge[] = { 0x00, 0x7F, 0x80, 0x81, 0xBE,
		0xBF, 0xC0, 0xFF };
	unsigned char b[4];
	unsigned lead, b1, i, j;
	uint32_t cp;

	(void)state;
	for (lead = 0xF0; lead <= 0xFF; lead++)
		for (b1 = 0; b1 < 256; b1++)
			for (i = 0; i < sizeof(edge); i++)
				for (j = 0; j < sizeof(edge); j++) {
					b[0] = (unsigned char)lead;
					b[1] = (unsigned char)b1;
					b[2] = edge[i];
					b[3] = edge[j];
					assert_int_equal(utf8_seq_len(b, 4),
					    ref_decode(b, 4, &cp));
					assert_int_equal(utf8_seq_len(b, 3), 0);
				}
}

/* The named edges of table 3-7, so a failure reads as what broke. */
static void
test_seq_len_edges(void **state)
{
	(void)state;
	/* ASCII, NUL included: one byte. */
	assert_int_equal(seq("\0", 1), 1);
	assert_int_equal(seq("\x7F\x80", 2), 1);
	/* Overlongs: C0/C1 leads, E0 80..9F, F0 80..8F. */
	assert_int_equal(seq("\xC0\x80", 2), 0);
	assert_int_equal(seq("\xC1\xBF", 2), 0);
	assert_int_equal(seq("\xC2\x80", 2), 2); /* U+0080 */
	assert_int_equal(seq("\xE0\x80\x80", 3), 0);
	assert_int_equal(seq("\xE0\x9F\xBF", 3), 0);
	assert_int_equal(seq("\xE0\xA0\x80", 3), 3); /* U+0800 */
	assert_int_equal(seq("\xF0\x80\x80\x80", 4), 0);
	assert_int_equal(seq("\xF0\x8F\xBF\xBF", 4), 0);
	assert_int_equal(seq("\xF0\x90\x80\x80", 4), 4); /* U+10000 */
	/* Surrogates U+D800..DFFF: ED A0..BF; their neighbours are fine. */
	assert_int_equal(seq("\xED\x9F\xBF", 3), 3); /* U+D7FF */
	assert_int_equal(seq("\xED\xA0\x80", 3), 0); /* U+D800 */
	assert_int_equal(seq("\xED\xBF\xBF", 3), 0); /* U+DFFF */
	assert_int_equal(seq("\xEE\x80\x80", 3), 3); /* U+E000 */
	/* The top: U+10FFFF is the last; F4 90.. and F5.. are beyond. */
	assert_int_equal(seq("\xF4\x8F\xBF\xBF", 4), 4);
	assert_int_equal(seq("\xF4\x90\x80\x80", 4), 0);
	assert_int_equal(seq("\xF5\x80\x80\x80", 4), 0);
	assert_int_equal(seq("\xFF", 1), 0);
	/* A lone continuation byte. */
	assert_int_equal(seq("\x80", 1), 0);
	assert_int_equal(seq("\xBF\x80", 2), 0);
	/* Truncated: by avail, or by a byte that does not continue. */
	assert_int_equal(seq("\xC3\xA9", 1), 0);
	assert_int_equal(seq("\xE2\x82\xAC", 2), 0);
	assert_int_equal(seq("\xF0\x9F\x98\x80", 3), 0);
	assert_int_equal(seq("\xE2\x82"
			     "a",
			     3),
	    0);
	assert_int_equal(seq("\xF0\x9F\x98"
			     "a",
			     4),
	    0);
	assert_int_equal(seq("\xC3"
			     "a",
			     2),
	    0);
	/* More available than the sequence needs. */
	assert_int_equal(seq("\xC3\xA9xyz", 5), 2);
	assert_int_equal(seq("\xF0\x9F\x98\x80xyz", 7), 4);
}

/*
 * Every code point encodes to what the reference decodes back, in the
 * length its range needs; surrogates encode to an ill-formed sequence.
 */
static void
test_put_every_code_point(void **state)
{
	unsigned char b[4];
	uint32_t cp, back;
	size_t n, want;

	(void)state;
	for (cp = 0; cp <= UTF8_MAX_CP; cp++) {
		memset(b, 0xAA, sizeof(b));
		n = utf8_put((char *)b, cp);
		want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		assert_int_equal(n, want);
		assert_int_equal(utf8_lead_len(b[0]), n);
		if (cp >= 0xD800 && cp <= 0xDFFF) {
			assert_int_equal(utf8_seq_len(b, n), 0);
			continue;
		}
		assert_int_equal(utf8_seq_len(b, n), n);
		assert_int_equal(ref_decode(b, n, &back), n);
		assert_int_equal(back, cp);
	}
}

static void
test_constants(void **state)
{
	char b[4];

	(void)state;
	assert_int_equal(utf8_put(b, 0xFFFD), UTF8_REPLACEMENT_LEN);
	assert_memory_equal(b, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
	assert_int_equal(utf8_put(b, 0xFEFF), UTF8_BOM_LEN);
	assert_memory_equal(b, UTF8_BOM, UTF8_BOM_LEN);
}

/* utf8_cut on well-formed UTF-8 (was framer_utf8_cut). */
static void
test_cut(void **state)
{
	static const char ascii[] = "abcdefgh";
	static const char two[] = "ab\xc3\xa9gh";              /* é at 2-3 */
	static const char three[] = "ab\xe2\x82\xacgh";        /* € at 2-4 */
	static const char four[] = "ab\xf0\x9f\x98\x80gh";     /* at 2-5 */
	static const char cont[] = "\x80\x80\x80\x80\x80\x80"; /* no lead */

	(void)state;
	assert_int_equal(utf8_cut(ascii, 4, 8), 4);
	assert_int_equal(utf8_cut(ascii, 8, 8), 8); /* n == avail */
	assert_int_equal(utf8_cut(three, 3, 3), 3); /* nothing after */
	assert_int_equal(utf8_cut(two, 2, 6), 2);   /* at the lead */
	assert_int_equal(utf8_cut(two, 3, 6), 2);   /* inside */
	assert_int_equal(utf8_cut(two, 4, 6), 4);   /* after */
	assert_int_equal(utf8_cut(three, 3, 7), 2);
	assert_int_equal(utf8_cut(three, 4, 7), 2);
	assert_int_equal(utf8_cut(three, 5, 7), 5);
	assert_int_equal(utf8_cut(four, 3, 8), 2);
	assert_int_equal(utf8_cut(four, 4, 8), 2);
	assert_int_equal(utf8_cut(four, 5, 8), 2);
	assert_int_equal(utf8_cut(four, 6, 8), 6);
	assert_int_equal(utf8_cut(cont, 0, 6), 0);
	assert_int_equal(utf8_cut(cont, 5, 6), 5); /* not UTF-8 */
	assert_int_equal(utf8_cut(four + 3, 2, 5), 2);
}

/*
 * utf8_cut on ill-formed input: only a lead byte whose sequence reaches
 * past the cut may move it back.  An ASCII byte or a complete character
 * before stray continuation bytes is not split by cutting at n and must
 * be kept.
 */
static void
test_cut_ill_formed(void **state)
{
	static const char ascii_stray[] = "abcde\x80\x80xy"; /* e, 2 strays */
	static const char two_stray[] = "abc\xc3\xa9\xa9\xa9xy"; /* é, strays */
	static const char bad_lead[] = "ab\xf5\x80\x80xy"; /* F5: no lead */

	(void)state;
	/* Cut at 6 may drop the strays (5 or 6), never 'e' at 4. */
	assert_in_range(utf8_cut(ascii_stray, 6, 9), 5, 6);
	/* Cut at 6 may drop the stray 0xA9 (5 or 6), never é at 3-4. */
	assert_in_range(utf8_cut(two_stray, 6, 9), 5, 6);
	/* A byte that starts no sequence does not pull the cut back. */
	assert_int_equal(utf8_cut(bad_lead, 4, 7), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lead_len_every_byte),
		cmocka_unit_test(test_seq_len_exhaustive_short),
		cmocka_unit_test(test_seq_len_four_bytes),
		cmocka_unit_test(test_seq_len_edges),
		cmocka_unit_test(test_put_every_code_point),
		cmocka_unit_test(test_constants),
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_cut_ill_formed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
