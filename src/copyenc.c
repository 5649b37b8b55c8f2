/*
 * copyenc: COPY rows, binary and text (see include/logsink/copyenc.h).
 * Format reference: PostgreSQL docs, "COPY", sections "Text Format" and
 * "Binary Format".
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "logsink/civil.h"
#include "logsink/copyenc.h"
#include "logsink/utf8.h"

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

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * Nonzero when one of the 8 bytes of w is not copied as it is: with
 * escapes (COPY text), below 0x20 (NUL, tab, LF, CR and the other
 * controls) or a backslash; without (COPY binary), NUL; in both, 0x80 and
 * above.  Exact as a yes/no (the "hasless" and "haszero" bit tricks: no
 * borrow crosses a plain byte), not as a position: the caller looks at
 * the bytes one by one then.
 */
static inline uint64_t
word_special(uint64_t w, bool escape)
{
	uint64_t bs = w ^ (ONES * '\\');

	if (!escape)
		return (w | ((w - ONES) & ~w)) & HIGHS;
	return (((w - ONES * 0x20) | w) | ((bs - ONES) & ~bs)) & HIGHS;
}

/*
 * Copies p[0..len) to o, sanitising UTF-8 and, with escape, applying the
 * COPY text escapes; returns the end of the output and adds the replaced
 * bytes to *replaced.  The daemon's hottest loop (docs/performance.md):
 * plain text moves 8 bytes per step; a word holding a byte of interest
 * goes through the byte table (other control bytes are copied there).
 * Inlined with escape constant, so each caller gets its own loop.
 */
static inline char *
scan(char *o, const unsigned char *p, size_t len, bool escape, size_t *replaced)
{
	const unsigned char *start = p, *end = p + len, *stop;
	size_t n;
	uint64_t w;

	for (;;) {
		while (end - p >= 8) {
			memcpy(&w, p, sizeof(w));
			if (word_special(w, escape) != 0)
				break;
			memcpy(o, &w, sizeof(w));
			o += 8;
			p += 8;
		}
		/* The last bytes: one more word, overlapping what was copied
		 * (those bytes are plain if the word is: copied 1:1). */
		if (end - p < 8 && end - start >= 8) {
			memcpy(&w, end - 8, sizeof(w));
			if (word_special(w, escape) == 0) {
				memcpy(o - (8 - (end - p)), &w, sizeof(w));
				return o + (end - p);
			}
		}
		stop = end - p > 8 ? p + 8 : end;
		while (p < stop &&
		    (byte_class[*p] == C_PLAIN ||
			(!escape && byte_class[*p] == C_ESC)))
			*o++ = (char)*p++;
		if (p == end)
			return o;
		if (p == stop)
			continue; /* controls copied as they are */
		switch (byte_class[*p]) {
		case C_ESC: /* only with escape */
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
			memcpy(o, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
			o += UTF8_REPLACEMENT_LEN;
			(*replaced)++;
			p++;
			break;
		default: /* NUL */
			memcpy(o, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
			o += UTF8_REPLACEMENT_LEN;
			(*replaced)++;
			p++;
			break;
		}
	}
}

size_t
copyenc_text(struct buf *out, const char *text, size_t len)
{
	size_t replaced = 0;
	char *o = scan(out->data + out->len, (const unsigned char *)text, len,
	    true, &replaced);

	out->len = (size_t)(o - out->data);
	return replaced;
}

size_t
copyenc_utf8(struct buf *out, const char *text, size_t len)
{
	size_t replaced = 0;
	char *o = scan(out->data + out->len, (const unsigned char *)text, len,
	    false, &replaced);

	out->len = (size_t)(o - out->data);
	return replaced;
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
	int64_t y;
	int m, d;

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

/* Room a row needs: texts may triple (U+FFFD for single bytes). */
static size_t
row_need(const struct record *r, size_t peerlen)
{
	return 3 *
	    (r->host.len + r->app.len + r->procid.len + r->msgid.len +
		r->message.len + r->fields.len + r->tls_subject.len) +
	    256 + peerlen;
}

int
copyenc_row_text(struct buf *out, const struct record *r, size_t *replaced)
{
	struct text msg = r->message, peer = { r->peer, 0 };

	if (msg.ptr == NULL)
		msg.ptr = "";
	if (peer.ptr != NULL)
		peer.len = strlen(peer.ptr);
	if (buf_reserve(out, row_need(r, peer.len)) == -1)
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
	put_text(out, r->tls_subject, replaced);
	out->data[out->len - 1] = '\n';
	return 0;
}

/*
 * Binary format (PostgreSQL docs, "COPY", section "Binary Format"): a row
 * is an int16 field count, then per field an int32 length (-1: NULL) and
 * that many bytes, in each type's binary ("send") form; all integers in
 * network byte order.
 */

/* 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch, in Unix µs. */
#define PG_EPOCH_US    946684800000000LL
/* inet's family codes (PostgreSQL utils/inet.h): AF_INET + 0, + 1. */
#define PGSQL_AF_INET  2
#define PGSQL_AF_INET6 3

static char *
put_be16(char *o, uint16_t v)
{
	o[0] = (char)(v >> 8);
	o[1] = (char)v;
	return o + 2;
}

static char *
put_be32(char *o, uint32_t v)
{
	o = put_be16(o, (uint16_t)(v >> 16));
	return put_be16(o, (uint16_t)v);
}

static char *
put_be64(char *o, uint64_t v)
{
	o = put_be32(o, (uint32_t)(v >> 32));
	return put_be32(o, (uint32_t)v);
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
bin_null(struct buf *out)
{
	put_be32(out->data + out->len, UINT32_MAX);
	out->len += 4;
}

/* A text (or, with prefix 1, jsonb) field: length, [version,] bytes. */
static void
bin_text(struct buf *out, struct text t, int prefix, size_t *replaced)
{
	size_t at = out->len;

	if (t.ptr == NULL) {
		bin_null(out);
		return;
	}
	out->len += 4;
	if (prefix >= 0)
		out->data[out->len++] = (char)prefix;
	*replaced += copyenc_utf8(out, t.ptr, t.len);
	put_be32(out->data + at, (uint32_t)(out->len - at - 4));
}

static void
bin_small(struct buf *out, int v)
{
	char *o = out->data + out->len;

	if (v < 0) {
		bin_null(out);
		return;
	}
	o = put_be32(o, 2);
	put_be16(o, (uint16_t)v);
	out->len += 6;
}

/* timestamptz: µs since 2000-01-01, clamped as the text form is. */
static void
bin_timestamp(struct buf *out, int64_t us)
{
	char *o = out->data + out->len;

	if (us < TS_MIN_US)
		us = TS_MIN_US;
	else if (us > TS_MAX_US)
		us = TS_MAX_US;
	o = put_be32(o, 8);
	put_be64(o, (uint64_t)(us - PG_EPOCH_US));
	out->len += 12;
}

/*
 * inet: family, bits, is_cidr, address length, address.  The peer text
 * is parsed once per new peer (one connection's rows share it); an
 * unparsable one is NULL (logsinkd's peers come from inet_ntop()).
 */
static _Thread_local struct {
	char text[INET6_ADDRSTRLEN];
	unsigned char bin[20];
	size_t len; /* 0: NULL */
} inet_cache;

static void
bin_inet(struct buf *out, const char *peer)
{
	unsigned char *b = inet_cache.bin;

	if (peer == NULL) {
		bin_null(out);
		return;
	}
	if (strcmp(peer, inet_cache.text) != 0 || inet_cache.text[0] == '\0') {
		inet_cache.len = 0;
		if (inet_pton(AF_INET, peer, b + 4) == 1) {
			memcpy(
			    b, (unsigned char[]){ PGSQL_AF_INET, 32, 0, 4 }, 4);
			inet_cache.len = 8;
		} else if (inet_pton(AF_INET6, peer, b + 4) == 1) {
			memcpy(b,
			    (unsigned char[]){ PGSQL_AF_INET6, 128, 0, 16 }, 4);
			inet_cache.len = 20;
		}
		if (strlen(peer) < sizeof(inet_cache.text))
			strcpy(inet_cache.text, peer);
		else
			inet_cache.text[0] = '\0';
	}
	if (inet_cache.len == 0) {
		bin_null(out);
		return;
	}
	put_be32(out->data + out->len, (uint32_t)inet_cache.len);
	memcpy(out->data + out->len + 4, b, inet_cache.len);
	out->len += 4 + inet_cache.len;
}

int
copyenc_row(struct buf *out, const struct record *r, size_t *replaced)
{
	struct text msg = r->message;

	if (msg.ptr == NULL)
		msg.ptr = "";
	if (buf_reserve(out, row_need(r, 0)) == -1)
		return -1;
	*replaced = 0;
	put_be16(out->data + out->len, COPYENC_NCOLUMNS);
	out->len += 2;
	bin_timestamp(out, r->received_us);
	bin_inet(out, r->peer);
	bin_text(out, r->host, -1, replaced);
	bin_text(out, r->app, -1, replaced);
	bin_text(out, r->procid, -1, replaced);
	bin_text(out, r->msgid, -1, replaced);
	bin_small(out, r->facility);
	bin_small(out, r->severity);
	if (r->has_event_time)
		bin_timestamp(out, r->event_us);
	else
		bin_null(out);
	bin_text(out, msg, -1, replaced);
	bin_text(out, r->fields, 1, replaced); /* jsonb version 1 */
	bin_text(out, r->tls_subject, -1, replaced);
	return 0;
}

size_t
copyenc_row_size(const char *row, size_t avail)
{
	const unsigned char *p = (const unsigned char *)row;
	size_t off = 2, i, nf;
	uint32_t n;

	if (avail < 2)
		return 0;
	nf = (size_t)p[0] << 8 | p[1];
	if (nf == 0xFFFF)
		return 0; /* the trailer */
	for (i = 0; i < nf; i++) {
		if (avail - off < 4)
			return 0;
		n = get_be32(p + off);
		off += 4;
		if (n == UINT32_MAX)
			continue;
		if (n > INT32_MAX || avail - off < n)
			return 0;
		off += n;
	}
	return off;
}

/* Reads the field at *off: its bytes and length, NULL (-1 length) as a
 * NULL ptr.  -1 if the row ends first. */
static int
get_field(const char *row, size_t len, size_t *off, struct text *t)
{
	uint32_t n;

	if (len - *off < 4)
		return -1;
	n = get_be32((const unsigned char *)row + *off);
	*off += 4;
	if (n == UINT32_MAX) {
		t->ptr = NULL;
		t->len = 0;
		return 0;
	}
	if (n > INT32_MAX || len - *off < n)
		return -1;
	t->ptr = row + *off;
	t->len = n;
	*off += n;
	return 0;
}

static int64_t
get_timestamp(struct text t)
{
	const unsigned char *p = (const unsigned char *)t.ptr;

	return (int64_t)((uint64_t)get_be32(p) << 32 | get_be32(p + 4)) +
	    PG_EPOCH_US;
}

int
copyenc_decode(
    const char *row, size_t len, struct record *r, char *peer, size_t peerlen)
{
	struct text f[COPYENC_NCOLUMNS];
	const unsigned char *u;
	size_t off = 2;
	int i;

	if (len < 2 ||
	    ((size_t)(unsigned char)row[0] << 8 | (unsigned char)row[1]) !=
		COPYENC_NCOLUMNS)
		return -1;
	for (i = 0; i < COPYENC_NCOLUMNS; i++)
		if (get_field(row, len, &off, &f[i]) == -1)
			return -1;
	if (off != len || f[0].len != 8 ||
	    (f[8].ptr != NULL && f[8].len != 8) || f[9].ptr == NULL ||
	    (f[6].ptr != NULL && f[6].len != 2) ||
	    (f[7].ptr != NULL && f[7].len != 2) ||
	    (f[10].ptr != NULL && (f[10].len < 1 || f[10].ptr[0] != 1)))
		return -1;
	memset(r, 0, sizeof(*r));
	record_clear_parsed(r);
	r->received_us = get_timestamp(f[0]);
	r->peer = NULL;
	if ((u = (const unsigned char *)f[1].ptr) != NULL) {
		if (!((f[1].len == 8 && u[0] == PGSQL_AF_INET && u[3] == 4) ||
			(f[1].len == 20 && u[0] == PGSQL_AF_INET6 &&
			    u[3] == 16)) ||
		    inet_ntop(u[0] == PGSQL_AF_INET ? AF_INET : AF_INET6, u + 4,
			peer, (socklen_t)peerlen) == NULL)
			return -1;
		r->peer = peer;
	}
	r->host = f[2];
	r->app = f[3];
	r->procid = f[4];
	r->msgid = f[5];
	if (f[6].ptr != NULL)
		r->facility = (unsigned char)f[6].ptr[0] << 8 |
		    (unsigned char)f[6].ptr[1];
	if (f[7].ptr != NULL)
		r->severity = (unsigned char)f[7].ptr[0] << 8 |
		    (unsigned char)f[7].ptr[1];
	if (f[8].ptr != NULL) {
		r->has_event_time = true;
		r->event_us = get_timestamp(f[8]);
	}
	r->message = f[9];
	if (f[10].ptr != NULL) {
		r->fields.ptr = f[10].ptr + 1; /* after the jsonb version */
		r->fields.len = f[10].len - 1;
	}
	r->tls_subject = f[11];
	return 0;
}
