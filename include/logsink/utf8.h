/*
 * utf8: the one place that knows UTF-8's shape (Unicode 15, section 3.9,
 * table 3-7 "Well-Formed UTF-8 Byte Sequences"): how many bytes a lead
 * byte starts, whether a sequence is well-formed (no overlongs, no
 * surrogates, nothing above U+10FFFF), where a cut keeps characters
 * whole, and encoding a code point.  copyenc sanitises with it, the
 * framer cuts long lines with it, the JSON parser encodes \u escapes
 * with it.
 *
 * Leaf module, header only: static inline, because copyenc's and the
 * framer's per-line loops call it (no call per character).
 */
#ifndef LOGSINK_UTF8_H
#define LOGSINK_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* U+FFFD REPLACEMENT CHARACTER, and the byte order mark U+FEFF. */
#define UTF8_REPLACEMENT     "\xEF\xBF\xBD"
#define UTF8_REPLACEMENT_LEN 3
#define UTF8_BOM             "\xEF\xBB\xBF"
#define UTF8_BOM_LEN         3
/* The largest code point. */
#define UTF8_MAX_CP          0x10FFFF

/*
 * Bytes in the sequence lead byte c starts: 1 for ASCII (NUL included),
 * 2..4 for the lead bytes of table 3-7 (C2..DF, E0..EF, F0..F4), 0 for a
 * byte that starts none (a continuation byte 80..BF, C0, C1, F5..FF).
 */
static inline size_t
utf8_lead_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	if (c >= 0xE0 && c <= 0xEF)
		return 3;
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	return 0;
}

/* True if c is a continuation byte (10xxxxxx). */
static inline bool
utf8_is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/*
 * Length of the well-formed sequence at p[0..avail) (avail >= 1): 1 for
 * ASCII, 2..4, or 0 if it is ill-formed or cut short by avail.  The second
 * byte's range depends on the lead (table 3-7): E0 needs A0..BF (no
 * overlong), ED 80..9F (no surrogate), F0 90..BF (no overlong), F4
 * 80..8F (nothing above U+10FFFF).
 */
static inline size_t
utf8_seq_len(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t n = utf8_lead_len(c), i;

	if (n == 1)
		return 1;
	if (n == 0 || n > avail)
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (!utf8_is_cont(p[i]))
			return 0;
	return n;
}

/*
 * Where to cut buf[0..avail) at most n bytes long without splitting a
 * character: if the byte at n continues a sequence whose lead byte (at
 * most 3 back) starts before n and reaches past it, before that lead
 * byte; else n.  Stray continuation bytes, which belong to no character,
 * are cut where asked.
 */
static inline size_t
utf8_cut(const char *buf, size_t n, size_t avail)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t k;

	if (n >= avail || !utf8_is_cont(p[n]))
		return n;
	for (k = 1; k <= 3 && k <= n; k++)
		if (!utf8_is_cont(p[n - k]))
			return utf8_lead_len(p[n - k]) > k ? n - k : n;
	return n;
}

/*
 * Encodes code point cp (0..UTF8_MAX_CP, not a surrogate: those encode
 * as the ill-formed ED A0..BF) at d, which has room for 4 bytes; returns
 * the length, 1..4.
 */
static inline size_t
utf8_put(char *d, uint32_t cp)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xC0 | cp >> 6);
		d[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xE0 | cp >> 12);
		d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		d[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (char)(0xF0 | cp >> 18);
	d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	d[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

#endif
