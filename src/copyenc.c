/*
 * copyenc: COPY text rows (see include/logsink/copyenc.h).
 * Format reference: PostgreSQL docs, "COPY", section "Text Format".
 */
#include <stdint.h>
#include <string.h>

#include "logsink/copyenc.h"

/* Byte classes: copied as is, escaped, or starting a multi-byte check. */
enum { C_PLAIN, C_ESC, C_NUL, C_HIGH };

/* clang-format off */
static const unsigned char byte_class[256] = {
	[0] = C_NUL, ['\\'] = C_ESC, ['\n'] = C_ESC, ['\r'] = C_ESC,
	['\t'] = C_ESC,
	[0x80] =
	/* 0x80 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0x88 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0x90 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0x98 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xA0 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xA8 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xB0 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xB8 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xC0 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xC8 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xD0 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xD8 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xE0 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xE8 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xF0 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
	/* 0xF8 */ C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH, C_HIGH,
};
/* clang-format on */

static const char replacement[3] = { '\xEF', '\xBF', '\xBD' };

/*
 * Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0
 * if it is ill-formed.  Ranges from Unicode table 3-7.
 */
static size_t
utf8_seq_len(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t n, i;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (n > avail)
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
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * Nonzero when one of the 8 bytes of w is not copied as it is by every
 * rule: below 0x20 (NUL, tab, LF, CR and the other controls), a backslash,
 * or 0x80 and above.  Exact as a yes/no (the "hasless" and "haszero" bit
 * tricks; no borrow crosses a plain byte), not as a position: the caller
 * looks at the bytes one by one then.
 */
static inline uint64_t
word_special(uint64_t w)
{
	uint64_t bs = w ^ (ONES * '\\');

	return (((w - ONES * 0x20) | w) | ((bs - ONES) & ~bs)) & HIGHS;
}

/*
 * The scan is the daemon's hottest loop (docs/performance.md): plain text
 * moves 8 bytes per step; a word holding a byte of interest goes through
 * the byte table (other control bytes are copied there too).
 */
size_t
copyenc_text(struct buf *out, const char *text, size_t len)
{
	const unsigned char *start = (const unsigned char *)text, *p = start;
	const unsigned char *end = p + len, *stop;
	char *o = out->data + out->len;
	size_t replaced = 0, n;
	uint64_t w;

	for (;;) {
		while (end - p >= 8) {
			memcpy(&w, p, sizeof(w));
			if (word_special(w) != 0)
				break;
			memcpy(o, &w, sizeof(w));
			o += 8;
			p += 8;
		}
		/* The last bytes: one more word, overlapping what was copied
		 * (those bytes are plain if the word is: copied 1:1). */
		if (end - p < 8 && end - start >= 8) {
			memcpy(&w, end - 8, sizeof(w));
			if (word_special(w) == 0) {
				memcpy(o - (8 - (end - p)), &w, sizeof(w));
				o += end - p;
				break;
			}
		}
		stop = end - p > 8 ? p + 8 : end;
		while (p < stop && byte_class[*p] == C_PLAIN)
			*o++ = (char)*p++;
		if (p == end)
			break;
		if (p == stop)
			continue; /* controls copied as they are */
		switch (byte_class[*p]) {
		case C_ESC:
			*o++ = '\\';
			*o++ = *p == '\\' ? '\\'
			    : *p == '\n'  ? 'n'
			    : *p == '\r'  ? 'r'
					  : 't';
			p++;
			break;
		case C_HIGH:
			n = utf8_seq_len(p, (size_t)(end - p));
			if (n != 0) {
				memcpy(o, p, n);
				o += n;
				p += n;
				break;
			}
			memcpy(o, replacement, sizeof(replacement));
			o += sizeof(replacement);
			replaced++;
			p++;
			break;
		default: /* NUL */
			memcpy(o, replacement, sizeof(replacement));
			o += sizeof(replacement);
			replaced++;
			p++;
			break;
		}
	}
	out->len = (size_t)(o - out->data);
	return replaced;
}

/* Days since 1970-01-01 -> civil date (H. Hinnant's days_from_civil). */
static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	yoe = z - era * 146097;
	yoe = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
	doy = z - era * 146097 - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static char *
put_digits(char *o, unsigned v, int width)
{
	int i;

	for (i = width - 1; i >= 0; i--) {
		o[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return o + width;
}

/* "00" .. "99": two digits per lookup for the microseconds. */
static const char digits2[201] = "00010203040506070809"
				 "10111213141516171819"
				 "20212223242526272829"
				 "30313233343536373839"
				 "40414243444546474849"
				 "50515253545556575859"
				 "60616263646566676869"
				 "70717273747576777879"
				 "80818283848586878889"
				 "90919293949596979899";

/* Appends v (0..999999) as six digits. */
static char *
put_micros(char *o, unsigned v)
{
	memcpy(o, digits2 + 2 * (v / 10000), 2);
	memcpy(o + 2, digits2 + 2 * (v / 100 % 100), 2);
	memcpy(o + 4, digits2 + 2 * (v % 100), 2);
	return o + 6;
}

/* 0001-01-01 and 9999-12-31 23:59:59.999999 UTC, in µs since 1970. */
#define TS_MIN_US (-62135596800LL * 1000000)
#define TS_MAX_US (253402300800LL * 1000000 - 1)

/*
 * The last two seconds formatted as "YYYY-MM-DD HH:MM:SS", used in turn:
 * received_at changes second rarely, and a sender's event_time is often
 * as steady, so the date arithmetic runs about once a second instead of
 * once per column (docs/performance.md).  Per thread: a cache, not state.
 */
#define TS_SECS_LEN 19
static _Thread_local struct ts_cache {
	int64_t secs;
	char text[TS_SECS_LEN];
} ts_cache[2] = { { INT64_MIN, "" }, { INT64_MIN, "" } };
static _Thread_local unsigned ts_next;

/* Formats secs (seconds since 1970) into c. */
static void
ts_format(struct ts_cache *c, int64_t secs)
{
	int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	unsigned sod = (unsigned)(secs - days * 86400);
	char *o = c->text;
	int y, m, d;

	civil_from_days(days, &y, &m, &d);
	o = put_digits(o, (unsigned)y, 4);
	*o++ = '-';
	o = put_digits(o, (unsigned)m, 2);
	*o++ = '-';
	o = put_digits(o, (unsigned)d, 2);
	*o++ = ' ';
	o = put_digits(o, sod / 3600, 2);
	*o++ = ':';
	o = put_digits(o, sod / 60 % 60, 2);
	*o++ = ':';
	put_digits(o, sod % 60, 2);
	c->secs = secs;
}

void
copyenc_timestamp(struct buf *out, int64_t us)
{
	struct ts_cache *c;
	int64_t secs;
	char *o = out->data + out->len;

	/* timestamptz text input needs a four-digit year. */
	if (us < TS_MIN_US)
		us = TS_MIN_US;
	else if (us > TS_MAX_US)
		us = TS_MAX_US;
	secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
	if (ts_cache[0].secs == secs)
		c = &ts_cache[0];
	else if (ts_cache[1].secs == secs)
		c = &ts_cache[1];
	else {
		c = &ts_cache[ts_next];
		ts_next ^= 1;
		ts_format(c, secs);
	}
	memcpy(o, c->text, TS_SECS_LEN);
	o += TS_SECS_LEN;
	*o++ = '.';
	o = put_micros(o, (unsigned)(us - secs * 1000000));
	memcpy(o, "+00", 3);
	out->len = (size_t)(o + 3 - out->data);
}

static void
put_text(struct buf *out, struct text t, size_t *replaced)
{
	if (t.ptr == NULL)
		buf_put(out, "\\N", 2);
	else
		*replaced += copyenc_text(out, t.ptr, t.len);
	buf_put(out, "\t", 1);
}

static void
put_small(struct buf *out, int v)
{
	char *o = out->data + out->len;

	if (v < 0) {
		buf_put(out, "\\N\t", 3);
		return;
	}
	if (v >= 10)
		*o++ = (char)('0' + v / 10 % 10);
	*o++ = (char)('0' + v % 10);
	*o++ = '\t';
	out->len = (size_t)(o - out->data);
}

int
copyenc_row(struct buf *out, const struct record *r, size_t *replaced)
{
	struct text msg = r->message, peer = { r->peer, 0 };
	size_t need = 3 *
		(r->host.len + r->app.len + r->procid.len + r->msgid.len +
		    r->message.len + r->fields.len) +
	    256;

	if (msg.ptr == NULL)
		msg.ptr = "";
	if (peer.ptr != NULL)
		peer.len = strlen(peer.ptr);
	if (buf_reserve(out, need + peer.len) == -1)
		return -1;
	*replaced = 0;
	copyenc_timestamp(out, r->received_us);
	buf_put(out, "\t", 1);
	put_text(out, peer, replaced);
	put_text(out, r->host, replaced);
	put_text(out, r->app, replaced);
	put_text(out, r->procid, replaced);
	put_text(out, r->msgid, replaced);
	put_small(out, r->facility);
	put_small(out, r->severity);
	if (r->has_event_time)
		copyenc_timestamp(out, r->event_us);
	else
		buf_put(out, "\\N", 2);
	buf_put(out, "\t", 1);
	put_text(out, msg, replaced);
	put_text(out, r->fields, replaced);
	out->data[out->len - 1] = '\n';
	return 0;
}
