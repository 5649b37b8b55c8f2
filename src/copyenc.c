/*
 * copyenc: COPY text rows (see include/logsink/copyenc.h).
 * Format reference: PostgreSQL docs, "COPY", section "Text Format".
 */
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

size_t
copyenc_text(struct buf *out, const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text;
	const unsigned char *end = p + len, *run;
	char *o = out->data + out->len;
	size_t replaced = 0, n;

	while (p < end) {
		run = p;
		while (p < end && byte_class[*p] == C_PLAIN)
			p++;
		memcpy(o, run, (size_t)(p - run));
		o += p - run;
		if (p == end)
			break;
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

/* 0001-01-01 and 9999-12-31 23:59:59.999999 UTC, in µs since 1970. */
#define TS_MIN_US (-62135596800LL * 1000000)
#define TS_MAX_US (253402300800LL * 1000000 - 1)

void
copyenc_timestamp(struct buf *out, int64_t us)
{
	int64_t secs, days;
	unsigned sod;
	char *o = out->data + out->len;
	int y, m, d;

	/* timestamptz text input needs a four-digit year. */
	if (us < TS_MIN_US)
		us = TS_MIN_US;
	else if (us > TS_MAX_US)
		us = TS_MAX_US;
	secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
	days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	sod = (unsigned)(secs - days * 86400);
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
	o = put_digits(o, sod % 60, 2);
	*o++ = '.';
	o = put_digits(o, (unsigned)(us - secs * 1000000), 6);
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
	struct text subject = { r->tls_subject, 0 };
	size_t need = 3 *
		(r->host.len + r->app.len + r->procid.len + r->msgid.len +
		    r->message.len + r->fields.len) +
	    256;

	if (msg.ptr == NULL)
		msg.ptr = "";
	if (peer.ptr != NULL)
		peer.len = strlen(peer.ptr);
	if (subject.ptr != NULL)
		subject.len = strlen(subject.ptr);
	if (buf_reserve(out, need + peer.len + 3 * subject.len) == -1)
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
	put_text(out, subject, replaced);
	out->data[out->len - 1] = '\n';
	return 0;
}
