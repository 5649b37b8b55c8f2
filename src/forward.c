/*
 * forward: the Fluent forward protocol decoder (include/logsink/forward.h;
 * Forward Protocol Specification v1).
 *
 * Two passes over each message.  The walk (mp_walk()) reads only
 * MessagePack headers: it finds where a message (or an entry) ends, and
 * proves that every declared length is backed by bytes that are there,
 * within the limits, before anything is allocated.  It is needed because
 * msgpack-c allocates the elements of an array or map as soon as it reads
 * the header (a 10-byte message declaring 2^32 elements would ask for
 * 96 GiB) and restarts from the first byte on each call.  The values are
 * then decoded by msgpack-c (msgpack_unpack_next()), one entry at a time,
 * over bytes already walked: its strings point into the message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zlib.h>

#include "logsink/forward.h"
#include "logsink/parser.h"

/* Decoding buffers bigger than this are freed after their message. */
#define FORWARD_KEEP_BYTES (256 * 1024)

/* A MessagePack header: what follows it. */
struct mp_head {
	size_t len;       /* of the header */
	uint64_t payload; /* bytes after the header (strings, numbers...) */
	uint64_t count;   /* values inside (arrays; maps: 2 per pair) */
	bool container;
	unsigned char kind; /* 'a' array, 'm' map, 's' str, 'b' bin, 'x' */
};

struct forward {
	size_t max_message_bytes;
	size_t max_entries;
	enum forward_error err;
	size_t need; /* the message needs at least this many bytes */
	/* the message begun */
	const char *msg;
	size_t msg_len;
	enum forward_mode mode;
	struct text tag;
	size_t off;       /* the next entry: in msg (Forward), in blob */
	size_t time_off;  /* Message mode: its time, record after it */
	size_t left;      /* Forward, Message: entries not yet decoded */
	const char *blob; /* PackedForward: the entries */
	size_t blob_len;
	size_t entries;   /* decoded so far */
	uint64_t odd;     /* entries not [time, map], ever */
	size_t chunk_len; /* 0: no chunk option */
	bool gzip;        /* option compressed: "gzip" */
	char chunk[FORWARD_MAX_CHUNK];
	struct buf inflated; /* CompressedPackedForward's entries */
	msgpack_unpacked un;
};

/* The big-endian unsigned integer of n bytes at p. */
static uint64_t
be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

/*
 * Reads the header at p (avail bytes there).  1: h filled; 0: more bytes
 * needed (h->len says how many the header has); -1: not MessagePack
 * (0xc1).
 */
static int
mp_header(const unsigned char *p, size_t avail, struct mp_head *h)
{
	/* Header length of 0xc0..0xdf; payload of fixed-size types. */
	static const unsigned char hl[32] = { 1, 0, 1, 1, 2, 3, 5, 3, 4, 6, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 5, 3, 5, 3, 5 };
	static const unsigned char fixed[32] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 16, 0, 0, 0, 0, 0, 0,
		0 };
	unsigned char b = p[0];
	size_t n;

	memset(h, 0, sizeof(*h));
	h->len = 1;
	if (b <= 0x7f || b >= 0xe0)
		return 1;
	if (b <= 0x8f || (b >= 0xde && b <= 0xdf)) {
		h->container = true;
		h->kind = 'm';
	} else if (b <= 0x9f || (b >= 0xdc && b <= 0xdd)) {
		h->container = true;
		h->kind = 'a';
	}
	if (b < 0xc0) {
		h->count = (uint64_t)(b & 0x0f) * (h->kind == 'm' ? 2 : 1);
		if (b >= 0xa0) {
			h->kind = 's';
			h->payload = b & 0x1f;
		}
		return 1;
	}
	if (b == 0xc1)
		return -1;
	h->len = hl[b - 0xc0];
	if (avail < h->len)
		return 0;
	n = h->len - 1;
	if (b >= 0xd4 && b <= 0xd8) { /* fixext: type byte, data */
		h->kind = 'x';
		h->payload = fixed[b - 0xc0];
	} else if (b >= 0xc7 && b <= 0xc9) { /* ext: length, type byte */
		h->kind = 'x';
		h->payload = be(p + 1, n - 1);
	} else if ((b >= 0xc4 && b <= 0xc6) || (b >= 0xd9 && b <= 0xdb)) {
		h->kind = b <= 0xc6 ? 'b' : 's';
		h->payload = be(p + 1, n);
	} else if (h->container) {
		h->count = be(p + 1, n) * (h->kind == 'm' ? 2 : 1);
	} else {
		h->payload = fixed[b - 0xc0];
	}
	return 1;
}

/*
 * Walks the one value at p[0, len) without decoding it: its length, or 0
 * with *need (the least number of bytes it can end at) when len is short,
 * or 0 with *err set: not MessagePack, nested deeper than max_depth, more
 * than max_values values, or needing more than max_bytes.
 */
static size_t
mp_walk(const unsigned char *p, size_t len, int max_depth, size_t max_values,
    size_t max_bytes, size_t *need, enum forward_error *err)
{
	uint64_t left[FORWARD_MAX_DEPTH];
	uint64_t pending = 0, end, pos = 0, values = 0;
	struct mp_head h;
	int depth = 0, rc;

	memset(&h, 0, sizeof(h));
	*need = 0;
	do {
		if (++values > max_values) {
			*err = FORWARD_ERR_ENTRY;
			return 0;
		}
		rc = pos < len ? mp_header(p + pos, len - pos, &h) : 0;
		if (rc == -1) {
			*err = FORWARD_ERR_MALFORMED;
			return 0;
		}
		end = pos + (rc == 0 && pos >= len ? 1 : h.len);
		if (rc == 1)
			end += h.payload;
		if (rc == 0 || end > len) {
			/* Each value still to come takes a byte at least. */
			end += pending;
			if (end > max_bytes)
				*err = FORWARD_ERR_TOO_BIG;
			else
				*need = (size_t)end;
			return 0;
		}
		pos = end;
		if (h.container && h.count > 0) {
			if (depth == max_depth) {
				*err = FORWARD_ERR_NESTING;
				return 0;
			}
			left[depth++] = h.count;
			pending += h.count;
			continue;
		}
		/* A value is complete: so may be the containers it ends. */
		while (depth > 0) {
			pending--;
			if (--left[depth - 1] > 0)
				break;
			depth--;
		}
	} while (depth > 0);
	if (pos > max_bytes) {
		*err = FORWARD_ERR_TOO_BIG;
		return 0;
	}
	return (size_t)pos;
}

struct forward *
forward_new(size_t max_message_bytes, size_t max_entries)
{
	struct forward *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->max_message_bytes = max_message_bytes;
	f->max_entries = max_entries;
	msgpack_unpacked_init(&f->un);
	return f;
}

void
forward_free(struct forward *f)
{
	if (f == NULL)
		return;
	msgpack_unpacked_destroy(&f->un);
	buf_free(&f->inflated);
	free(f);
}

size_t
forward_frame(struct forward *f, const char *buf, size_t len, bool eof)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t n;

	if (f->err != FORWARD_OK)
		return 0;
	if (len == 0)
		return 0;
	/* A message is an array: fail garbage at its first byte. */
	if (!((p[0] >= 0x92 && p[0] <= 0x94) || p[0] == 0xdc || p[0] == 0xdd)) {
		f->err = FORWARD_ERR_MALFORMED;
		return 0;
	}
	if (len < f->need && !eof)
		return 0; /* walked before: still short */
	n = mp_walk(p, len, FORWARD_MAX_DEPTH, SIZE_MAX, f->max_message_bytes,
	    &f->need, &f->err);
	if (n == 0 && f->err == FORWARD_OK && eof)
		f->err = FORWARD_ERR_TRUNCATED;
	if (n > 0)
		f->need = 0;
	return n;
}

size_t
forward_need(const struct forward *f)
{
	return f->need;
}

/* Decodes the value at f->msg + *off with msgpack-c; false: malformed. */
static bool
decode_at(struct forward *f, const char *base, size_t len, size_t *off)
{
	msgpack_unpack_return rc;

	rc = msgpack_unpack_next(&f->un, base, len, off);
	if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
		f->err = FORWARD_ERR_NOMEM;
	else if (rc != MSGPACK_UNPACK_SUCCESS &&
	    rc != MSGPACK_UNPACK_EXTRA_BYTES)
		f->err = FORWARD_ERR_MALFORMED;
	return f->err == FORWARD_OK;
}

static bool
key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	    memcmp(k->via.str.ptr, name, n) == 0;
}

/* The option map: chunk, compressed.  -1: an option we cannot follow. */
static int
read_options(struct forward *f, size_t off)
{
	const msgpack_object *o, *v;
	size_t need;
	uint32_t i;

	/* Walked first: msgpack-c allocates what a header declares. */
	if (mp_walk((const unsigned char *)f->msg + off, f->msg_len - off,
		FORWARD_MAX_DEPTH - 1, FORWARD_MAX_VALUES, SIZE_MAX, &need,
		&f->err) == 0 ||
	    !decode_at(f, f->msg, f->msg_len, &off))
		return -1;
	o = &f->un.data;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return -1;
	for (i = 0; i < o->via.map.size; i++) {
		v = &o->via.map.ptr[i].val;
		if (key_is(&o->via.map.ptr[i].key, "chunk")) {
			if (v->type != MSGPACK_OBJECT_STR ||
			    v->via.str.size == 0 ||
			    v->via.str.size > FORWARD_MAX_CHUNK)
				return -1;
			memcpy(f->chunk, v->via.str.ptr, v->via.str.size);
			f->chunk_len = v->via.str.size;
		} else if (key_is(&o->via.map.ptr[i].key, "compressed")) {
			if (key_is(v, "gzip"))
				f->gzip = true;
			else if (!key_is(v, "text"))
				return -1;
		}
	}
	return 0;
}

/*
 * Inflates the gzip member(s) of f->blob into f->inflated, at most
 * max_message_bytes (RFC 1952; members are concatenated, as gzip -c a b
 * writes them).
 */
static int
inflate_blob(struct forward *f)
{
	struct buf *b = &f->inflated;
	size_t max = f->max_message_bytes, room;
	z_stream zs;
	int rc;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		f->err = FORWARD_ERR_NOMEM;
		return -1;
	}
	buf_reset(b);
	zs.next_in = (Bytef *)(uintptr_t)f->blob;
	zs.avail_in = (uInt)f->blob_len;
	rc = Z_OK;
	while (zs.avail_in > 0 || rc != Z_STREAM_END) {
		if (rc == Z_STREAM_END && inflateReset(&zs) != Z_OK)
			break;
		if (b->len == b->cap) {
			if (b->len > max) {
				f->err = FORWARD_ERR_INFLATED;
				break;
			}
			room = b->cap < 64 * 1024 ? 64 * 1024 : b->cap;
			if (room > max + 1 - b->len)
				room = max + 1 - b->len;
			if (buf_reserve(b, room) == -1) {
				f->err = FORWARD_ERR_NOMEM;
				break;
			}
		}
		room = b->cap - b->len;
		if (room > max + 1 - b->len)
			room = max + 1 - b->len;
		zs.next_out = (Bytef *)b->data + b->len;
		zs.avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
		room = zs.avail_out;
		rc = inflate(&zs, Z_NO_FLUSH);
		b->len += room - zs.avail_out;
		if (b->len > max) {
			f->err = FORWARD_ERR_INFLATED;
			break;
		}
		if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
			f->err = FORWARD_ERR_GZIP; /* cut inside a member */
			break;
		}
		if (rc != Z_OK && rc != Z_STREAM_END) {
			f->err = rc == Z_MEM_ERROR ? FORWARD_ERR_NOMEM
						   : FORWARD_ERR_GZIP;
			break;
		}
	}
	inflateEnd(&zs);
	if (f->err != FORWARD_OK)
		return -1;
	f->blob = b->data;
	f->blob_len = b->len;
	return 0;
}

/*
 * Walks every entry of a packed blob (each a whole value, of at most
 * FORWARD_MAX_VALUES values, at most max_entries of them), so that a bad
 * one fails the message before any entry is queued.
 */
static int
walk_packed(struct forward *f)
{
	const unsigned char *p = (const unsigned char *)f->blob;
	size_t off = 0, n, need, count = 0;

	while (off < f->blob_len) {
		n = mp_walk(p + off, f->blob_len - off, FORWARD_MAX_DEPTH - 2,
		    FORWARD_MAX_VALUES, SIZE_MAX, &need, &f->err);
		if (n == 0) {
			if (f->err == FORWARD_OK)
				f->err = FORWARD_ERR_ENTRY; /* cut */
			return -1;
		}
		if (++count > f->max_entries) {
			f->err = FORWARD_ERR_ENTRIES;
			return -1;
		}
		off += n;
	}
	return 0;
}

/* The same for the entries array of Forward mode, at f->off. */
static int
walk_array(struct forward *f)
{
	const unsigned char *p = (const unsigned char *)f->msg;
	size_t off = f->off, n, need, i;

	if (f->left > f->max_entries) {
		f->err = FORWARD_ERR_ENTRIES;
		return -1;
	}
	for (i = 0; i < f->left; i++) {
		n = mp_walk(p + off, f->msg_len - off, FORWARD_MAX_DEPTH - 2,
		    FORWARD_MAX_VALUES, SIZE_MAX, &need, &f->err);
		if (n == 0) {
			if (f->err == FORWARD_OK)
				f->err = FORWARD_ERR_MALFORMED;
			return -1;
		}
		off += n;
	}
	return 0;
}

/* The second element decides the mode; sets the offsets of the parts. */
static int
begin_body(struct forward *f, size_t off, uint64_t n)
{
	const unsigned char *p = (const unsigned char *)f->msg;
	struct mp_head h;
	size_t vlen, need;
	uint64_t opts = 2;

	if (mp_header(p + off, f->msg_len - off, &h) != 1)
		return -1;
	/* Forward mode's entries are bounded one by one (walk_array()). */
	vlen = mp_walk(p + off, f->msg_len - off, FORWARD_MAX_DEPTH - 1,
	    h.kind == 'a' ? SIZE_MAX : FORWARD_MAX_VALUES, SIZE_MAX, &need,
	    &f->err);
	if (vlen == 0)
		return -1;
	if (h.kind == 'a') {
		f->mode = FORWARD_FORWARD;
		f->left = (size_t)h.count;
		f->off = off + h.len;
	} else if (h.kind == 's' || h.kind == 'b') {
		f->mode = FORWARD_PACKED;
		f->blob = f->msg + off + h.len;
		f->blob_len = (size_t)h.payload;
	} else {
		f->mode = FORWARD_MESSAGE;
		f->left = 1;
		f->time_off = off;
		opts = 3;
		off += vlen; /* the record */
		vlen = mp_walk(p + off, f->msg_len - off, FORWARD_MAX_DEPTH - 1,
		    FORWARD_MAX_VALUES, SIZE_MAX, &need, &f->err);
		if (vlen == 0)
			return -1;
	}
	if (n < opts || n > opts + 1)
		return -1;
	if (n == opts + 1 && read_options(f, off + vlen) == -1)
		return -1;
	if (f->gzip && f->mode != FORWARD_PACKED)
		return -1;
	if (f->gzip)
		f->mode = FORWARD_COMPRESSED;
	if (f->mode == FORWARD_COMPRESSED && inflate_blob(f) == -1)
		return -1;
	if (f->mode == FORWARD_FORWARD)
		return walk_array(f);
	if (f->mode == FORWARD_PACKED || f->mode == FORWARD_COMPRESSED)
		return walk_packed(f);
	return 0;
}

int
forward_begin(struct forward *f, const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	struct mp_head h, h2;
	size_t off;

	if (f->err != FORWARD_OK)
		return -1;
	f->msg = buf;
	f->msg_len = len;
	f->mode = FORWARD_MESSAGE;
	f->tag.ptr = NULL;
	f->tag.len = 0;
	f->left = f->entries = f->chunk_len = f->off = 0;
	f->gzip = false;
	f->blob = NULL;
	f->blob_len = 0;
	if (mp_header(p, len, &h) != 1 || h.kind != 'a')
		goto malformed;
	off = h.len;
	if (off >= len || mp_header(p + off, len - off, &h2) != 1 ||
	    h2.kind != 's')
		goto malformed;
	if (!decode_at(f, buf, len, &off))
		return -1;
	if (f->un.data.type != MSGPACK_OBJECT_STR)
		goto malformed;
	f->tag.ptr = f->un.data.via.str.ptr;
	f->tag.len = f->un.data.via.str.size;
	if (off < len && begin_body(f, off, h.count) == 0)
		return 0;
malformed:
	if (f->err == FORWARD_OK)
		f->err = FORWARD_ERR_MALFORMED;
	return -1;
}

/* --- an entry -> a record --- */

/* State of one entry's conversion; columns in scratch kept as offsets. */
struct conv {
	struct buf *sc;
	size_t message_off; /* SIZE_MAX: not in scratch */
	size_t fields_off;
};

static int put_json(struct buf *b, const msgpack_object *o);

static int
put(struct buf *b, const char *s, size_t n)
{
	return buf_append(b, s, n);
}

static int
put_string(struct buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, PARSER_JSON_ESCAPE_MAX(n) + 2) == -1)
		return -1;
	b->data[b->len++] = '"';
	b->len += parser_json_escape(b->data + b->len, s, n);
	b->data[b->len++] = '"';
	return 0;
}

/* RFC 4648 base64 of n bytes, as a JSON string. */
static int
put_base64(struct buf *b, const unsigned char *s, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t v;
	size_t i;
	char *d;

	if (buf_reserve(b, (n + 2) / 3 * 4 + 2) == -1)
		return -1;
	d = b->data + b->len;
	*d++ = '"';
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*d++ = tab[v >> 18];
		*d++ = tab[(v >> 12) & 63];
		*d++ = tab[(v >> 6) & 63];
		*d++ = tab[v & 63];
	}
	if (i < n) {
		v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		*d++ = tab[v >> 18];
		*d++ = tab[(v >> 12) & 63];
		*d++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*d++ = '=';
	}
	*d++ = '"';
	b->len = (size_t)(d - b->data);
	return 0;
}

static int
put_number(struct buf *b, const msgpack_object *o)
{
	char num[40];
	int n;

	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		n = snprintf(
		    num, sizeof(num), "%llu", (unsigned long long)o->via.u64);
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		n = snprintf(num, sizeof(num), "%lld", (long long)o->via.i64);
	else if (!isfinite(o->via.f64))
		n = snprintf(num, sizeof(num), "null");
	else
		n = snprintf(num, sizeof(num), "%.17g", o->via.f64);
	return put(b, num, (size_t)n);
}

/* A map key as a JSON string: a string as is, another value its JSON. */
static int
put_key(struct buf *b, const msgpack_object *k)
{
	struct buf tmp = { 0 };
	int rc;

	if (k->type == MSGPACK_OBJECT_STR)
		return put_string(b, k->via.str.ptr, k->via.str.size);
	if (k->type == MSGPACK_OBJECT_BIN)
		return put_json(b, k);
	rc = put_json(&tmp, k);
	if (rc == 0)
		rc = put_string(b, tmp.data, tmp.len);
	buf_free(&tmp);
	return rc;
}

/* One value as JSON (the walk bounded its depth). */
static int
put_json(struct buf *b, const msgpack_object *o)
{
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return put(b, "null", 4);
	case MSGPACK_OBJECT_BOOLEAN:
		return o->via.boolean ? put(b, "true", 4) : put(b, "false", 5);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return put_number(b, o);
	case MSGPACK_OBJECT_STR:
		return put_string(b, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return put_base64(
		    b, (const unsigned char *)o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_EXT:
		return put_base64(
		    b, (const unsigned char *)o->via.ext.ptr, o->via.ext.size);
	case MSGPACK_OBJECT_ARRAY:
		if (put(b, "[", 1) == -1)
			return -1;
		for (i = 0; i < o->via.array.size; i++)
			if ((i > 0 && put(b, ",", 1) == -1) ||
			    put_json(b, &o->via.array.ptr[i]) == -1)
				return -1;
		return put(b, "]", 1);
	case MSGPACK_OBJECT_MAP:
		if (put(b, "{", 1) == -1)
			return -1;
		for (i = 0; i < o->via.map.size; i++)
			if ((i > 0 && put(b, ",", 1) == -1) ||
			    put_key(b, &o->via.map.ptr[i].key) == -1 ||
			    put(b, ":", 1) == -1 ||
			    put_json(b, &o->via.map.ptr[i].val) == -1)
				return -1;
		return put(b, "}", 1);
	}
	return put(b, "null", 4);
}

/*
 * The entry's time: EventTime (ext 0, 8 bytes: seconds, nanoseconds,
 * big-endian), integer seconds or float seconds.  False when it is none
 * of these or out of range (the row then has no event time).
 */
static bool
entry_time(const msgpack_object *t, int64_t *us)
{
	const unsigned char *p;
	uint64_t ns;
	double d;

	if (t->type == MSGPACK_OBJECT_ARRAY && t->via.array.size > 0)
		t = &t->via.array.ptr[0]; /* Fluent Bit's [time, metadata] */
	switch (t->type) {
	case MSGPACK_OBJECT_EXT:
		if (t->via.ext.type != 0 || t->via.ext.size != 8)
			return false;
		p = (const unsigned char *)t->via.ext.ptr;
		ns = be(p + 4, 4);
		if (ns > 999999999)
			return false;
		*us = (int64_t)be(p, 4) * 1000000 + (int64_t)(ns / 1000);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (t->via.u64 > INT64_MAX / 1000000)
			return false;
		*us = (int64_t)t->via.u64 * 1000000;
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		if (t->via.i64 < INT64_MIN / 1000000)
			return false;
		*us = t->via.i64 * 1000000;
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		d = t->via.f64;
		if (!(d > -1e13 && d < 1e13))
			return false;
		*us = (int64_t)(d * 1e6);
		break;
	default:
		return false;
	}
	return parser_event_in_range(*us);
}

/* Severity from a level value: a name or digit string, 0..7, pino's
 * 10..60; -1 if none. */
static int
entry_severity(const msgpack_object *v)
{
	static const signed char pino[7] = { -1, 7, 7, 6, 4, 3, 2 };
	uint64_t u;

	if (v->type == MSGPACK_OBJECT_STR)
		return parser_level_name(v->via.str.ptr, v->via.str.size);
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -1;
	u = v->via.u64;
	if (u <= 7)
		return (int)u;
	if (u >= 10 && u <= 60 && u % 10 == 0)
		return pino[u / 10];
	return -1;
}

/* Which keys of the record feed columns: their index, or -1. */
struct picks {
	int64_t message, host, severity;
};

static void
pick_keys(const msgpack_object_map *m, struct picks *pk)
{
	static const char *const msg_keys[] = { "message", "msg", "log" };
	int rank = 3, sev_rank = 2, host_rank = 2;
	const msgpack_object *k, *v;
	uint32_t i;
	int j;

	pk->message = pk->host = pk->severity = -1;
	for (i = 0; i < m->size; i++) {
		k = &m->ptr[i].key;
		v = &m->ptr[i].val;
		for (j = 0; j < rank; j++)
			if (key_is(k, msg_keys[j])) {
				rank = j;
				pk->message = i;
			}
		if (v->type == MSGPACK_OBJECT_STR && host_rank > 0 &&
		    (key_is(k, "host") ||
			(host_rank > 1 && key_is(k, "hostname")))) {
			host_rank = key_is(k, "host") ? 0 : 1;
			pk->host = i;
		}
		if (sev_rank > 0 && entry_severity(v) >= 0 &&
		    (key_is(k, "level") ||
			(sev_rank > 1 && key_is(k, "severity")))) {
			sev_rank = key_is(k, "level") ? 0 : 1;
			pk->severity = i;
		}
	}
}

/* The record map -> message, host, severity and fields. */
static int
record_columns(struct record *rec, const msgpack_object_map *m, struct conv *cv)
{
	struct buf *sc = cv->sc;
	struct picks pk;
	const msgpack_object *v;
	bool any = false;
	uint32_t i;

	pick_keys(m, &pk);
	if (pk.message >= 0) {
		v = &m->ptr[pk.message].val;
		if (v->type == MSGPACK_OBJECT_STR) {
			rec->message.ptr = v->via.str.ptr;
			rec->message.len = v->via.str.size;
		} else {
			cv->message_off = sc->len;
			if (put_json(sc, v) == -1)
				return -1;
			rec->message.len = sc->len - cv->message_off;
		}
	}
	if (pk.host >= 0) {
		rec->host.ptr = m->ptr[pk.host].val.via.str.ptr;
		rec->host.len = m->ptr[pk.host].val.via.str.size;
	}
	if (pk.severity >= 0)
		rec->severity = entry_severity(&m->ptr[pk.severity].val);
	cv->fields_off = sc->len;
	for (i = 0; i < m->size; i++) {
		if ((int64_t)i == pk.message || (int64_t)i == pk.host ||
		    (int64_t)i == pk.severity)
			continue;
		if (put(sc, any ? "," : "{", 1) == -1 ||
		    put_key(sc, &m->ptr[i].key) == -1 ||
		    put(sc, ":", 1) == -1 || put_json(sc, &m->ptr[i].val) == -1)
			return -1;
		any = true;
	}
	if (!any)
		cv->fields_off = SIZE_MAX;
	else if (put(sc, "}", 1) == -1)
		return -1;
	else
		rec->fields.len = sc->len - cv->fields_off;
	return 0;
}

/*
 * One decoded entry into rec.  An odd one is stored rather than refused,
 * as a line that does not parse is stored plain: a record that is not a
 * map becomes the message (a string as is, else its JSON text); an entry
 * that is not [time, record] is the message whole, as JSON text.
 */
static int
entry_record(struct forward *f, const msgpack_object *time,
    const msgpack_object *map, const msgpack_object *whole, struct record *rec,
    struct buf *sc)
{
	struct conv cv = { sc, SIZE_MAX, SIZE_MAX };
	int rc = 0;

	record_clear_parsed(rec);
	buf_reset(sc);
	rec->app = f->tag;
	if (time != NULL) {
		rec->has_event_time = entry_time(time, &rec->event_us);
		if (!rec->has_event_time)
			rec->event_us = 0;
	}
	if (time != NULL && map->type == MSGPACK_OBJECT_MAP) {
		rc = record_columns(rec, &map->via.map, &cv);
	} else if (time != NULL && map->type == MSGPACK_OBJECT_STR) {
		f->odd++; /* [tag, time, "text"]: the text */
		rec->message.ptr = map->via.str.ptr;
		rec->message.len = map->via.str.size;
	} else {
		f->odd++;
		cv.message_off = 0;
		rc = put_json(sc, time != NULL ? map : whole);
		rec->message.len = sc->len;
	}
	if (rc == -1) {
		f->err = FORWARD_ERR_NOMEM;
		return -1;
	}
	if (cv.message_off != SIZE_MAX)
		rec->message.ptr = sc->data + cv.message_off;
	if (cv.fields_off != SIZE_MAX)
		rec->fields.ptr = sc->data + cv.fields_off;
	f->entries++;
	return 1;
}

/*
 * The message's entries are all taken: what it held goes, so that an idle
 * connection holds no decoding memory (memcached's rbuf_release).
 */
static int
message_done(struct forward *f)
{
	msgpack_unpacked_destroy(&f->un);
	if (f->inflated.cap > FORWARD_KEEP_BYTES)
		buf_free(&f->inflated);
	f->blob = NULL;
	f->blob_len = f->off = f->left = 0;
	return 0;
}

int
forward_next(struct forward *f, struct record *rec, struct buf *scratch)
{
	const msgpack_object *e;
	msgpack_object time;
	size_t off;

	if (f->err != FORWARD_OK)
		return -1;
	if (f->mode == FORWARD_MESSAGE) {
		if (f->left == 0)
			return message_done(f);
		f->left = 0;
		off = f->time_off;
		if (!decode_at(f, f->msg, f->msg_len, &off))
			return -1;
		time = f->un.data; /* a scalar: nothing in the zone */
		if (time.type == MSGPACK_OBJECT_ARRAY ||
		    time.type == MSGPACK_OBJECT_MAP)
			time.type = MSGPACK_OBJECT_NIL;
		if (!decode_at(f, f->msg, f->msg_len, &off))
			return -1;
		return entry_record(
		    f, &time, &f->un.data, &f->un.data, rec, scratch);
	}
	if (f->mode == FORWARD_FORWARD) {
		if (f->left == 0)
			return message_done(f);
		f->left--;
		if (!decode_at(f, f->msg, f->msg_len, &f->off))
			return -1;
	} else {
		if (f->off >= f->blob_len)
			return message_done(f);
		if (!decode_at(f, f->blob, f->blob_len, &f->off))
			return -1;
	}
	e = &f->un.data;
	if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
		return entry_record(f, NULL, NULL, e, rec, scratch);
	return entry_record(
	    f, &e->via.array.ptr[0], &e->via.array.ptr[1], e, rec, scratch);
}

int
forward_skip(struct forward *f, size_t n)
{
	const unsigned char *p;
	size_t len, need, k;

	if (f->mode == FORWARD_MESSAGE) {
		f->left = n > 0 ? 0 : f->left;
		f->entries += n;
		return 0;
	}
	p = (const unsigned char *)(f->mode == FORWARD_FORWARD ? f->msg
							       : f->blob);
	len = f->mode == FORWARD_FORWARD ? f->msg_len : f->blob_len;
	for (; n > 0; n--) {
		if (f->mode == FORWARD_FORWARD && f->left-- == 0)
			return -1;
		if (f->off >= len ||
		    (k = mp_walk(p + f->off, len - f->off, FORWARD_MAX_DEPTH,
			 SIZE_MAX, SIZE_MAX, &need, &f->err)) == 0)
			return -1;
		f->off += k;
		f->entries++;
	}
	return 0;
}

enum forward_mode
forward_mode(const struct forward *f)
{
	return f->mode;
}

uint64_t
forward_odd(const struct forward *f)
{
	return f->odd;
}

size_t
forward_entries(const struct forward *f)
{
	return f->entries;
}

const char *
forward_chunk(const struct forward *f, size_t *len)
{
	*len = f->chunk_len;
	return f->chunk_len > 0 ? f->chunk : NULL;
}

struct fixed_out {
	char *p;
	size_t len, cap;
};

static int
fixed_write(void *data, const char *buf, size_t len)
{
	struct fixed_out *o = data;

	if (len > o->cap - o->len)
		return -1;
	memcpy(o->p + o->len, buf, len);
	o->len += len;
	return 0;
}

size_t
forward_format_ack(char *out, const char *chunk, size_t len)
{
	struct fixed_out o = { out, 0, FORWARD_ACK_MAX };
	msgpack_packer pk;

	if (len > FORWARD_MAX_CHUNK)
		return 0;
	msgpack_packer_init(&pk, &o, fixed_write);
	if (msgpack_pack_map(&pk, 1) != 0 || msgpack_pack_str(&pk, 3) != 0 ||
	    msgpack_pack_str_body(&pk, "ack", 3) != 0 ||
	    msgpack_pack_str(&pk, len) != 0 ||
	    msgpack_pack_str_body(&pk, chunk, len) != 0)
		return 0;
	return o.len;
}

/* --- the shared-key handshake --- */

size_t
forward_ping(struct forward *f, const char *buf, size_t len, bool eof,
    struct forward_ping *p)
{
	const unsigned char *u = (const unsigned char *)buf;
	const msgpack_object *o;
	struct text *t[3] = { &p->hostname, &p->salt, &p->digest };
	size_t n, off = 0, i;

	if (f->err != FORWARD_OK || len == 0)
		return 0;
	if (u[0] != 0x96) { /* a fixarray of 6 */
		f->err = FORWARD_ERR_HANDSHAKE;
		return 0;
	}
	n = mp_walk(u, len, 1, 7, FORWARD_MAX_PING, &f->need, &f->err);
	if (n == 0) {
		if (f->err == FORWARD_OK && eof)
			f->err = FORWARD_ERR_TRUNCATED;
		else if (f->err != FORWARD_OK)
			f->err = FORWARD_ERR_HANDSHAKE;
		return 0;
	}
	f->need = 0;
	if (!decode_at(f, buf, n, &off))
		return 0;
	o = f->un.data.via.array.ptr;
	for (i = 0; i < 6; i++)
		if (o[i].type != MSGPACK_OBJECT_STR)
			break;
	if (i < 6 || !key_is(&o[0], "PING")) {
		f->err = FORWARD_ERR_HANDSHAKE;
		return 0;
	}
	for (i = 0; i < 3; i++) {
		t[i]->ptr = o[i + 1].via.str.ptr;
		t[i]->len = o[i + 1].via.str.size;
	}
	msgpack_unpacked_destroy(&f->un);
	return n;
}

static int
buf_write(void *data, const char *p, size_t len)
{
	return buf_append(data, p, len);
}

static int
pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

int
forward_format_helo(struct buf *out, const unsigned char *nonce, size_t len)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, buf_write);
	return (msgpack_pack_array(&pk, 2) | pack_cstr(&pk, "HELO") |
		   msgpack_pack_map(&pk, 3) | pack_cstr(&pk, "nonce") |
		   msgpack_pack_bin(&pk, len) |
		   msgpack_pack_bin_body(&pk, nonce, len) |
		   pack_cstr(&pk, "auth") | pack_cstr(&pk, "") |
		   pack_cstr(&pk, "keepalive") | msgpack_pack_true(&pk)) != 0
	    ? -1
	    : 0;
}

int
forward_format_pong(struct buf *out, bool ok, const char *reason,
    const char *hostname, const char *digest)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, buf_write);
	return (msgpack_pack_array(&pk, 5) | pack_cstr(&pk, "PONG") |
		   (ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) |
		   pack_cstr(&pk, reason) | pack_cstr(&pk, hostname) |
		   pack_cstr(&pk, digest)) != 0
	    ? -1
	    : 0;
}

enum forward_error
forward_err(const struct forward *f)
{
	return f->err;
}

void
forward_set_err(struct forward *f, enum forward_error err)
{
	if (f->err == FORWARD_OK)
		f->err = err;
}

static const char *const error_names[FORWARD_NERRORS] = {
	[FORWARD_OK] = "ok",
	[FORWARD_ERR_MALFORMED] = "malformed",
	[FORWARD_ERR_TOO_BIG] = "too_big",
	[FORWARD_ERR_NESTING] = "nesting",
	[FORWARD_ERR_ENTRIES] = "entries",
	[FORWARD_ERR_ENTRY] = "entry",
	[FORWARD_ERR_GZIP] = "gzip",
	[FORWARD_ERR_INFLATED] = "inflated_too_big",
	[FORWARD_ERR_HANDSHAKE] = "handshake",
	[FORWARD_ERR_UNANSWERED] = "unanswered",
	[FORWARD_ERR_TRUNCATED] = "truncated",
	[FORWARD_ERR_NOMEM] = "nomem",
};

static const char *const error_texts[FORWARD_NERRORS] = {
	[FORWARD_OK] = "no error",
	[FORWARD_ERR_MALFORMED] = "not a forward protocol message",
	[FORWARD_ERR_TOO_BIG] = "message longer than forward-max-message-bytes",
	[FORWARD_ERR_NESTING] = "values nested too deep",
	[FORWARD_ERR_ENTRIES] = "more entries than forward-max-entries",
	[FORWARD_ERR_ENTRY] = "an entry cut short or of too many values",
	[FORWARD_ERR_GZIP] = "compressed entries that are not gzip data",
	[FORWARD_ERR_INFLATED] = "entries inflating past the message limit",
	[FORWARD_ERR_HANDSHAKE] = "no PING with the shared key",
	[FORWARD_ERR_UNANSWERED] = "too many chunks answered and not read",
	[FORWARD_ERR_TRUNCATED] = "connection closed inside a message",
	[FORWARD_ERR_NOMEM] = "out of memory",
};

const char *
forward_error_name(enum forward_error err)
{
	return (unsigned)err < FORWARD_NERRORS ? error_names[err] : "unknown";
}

const char *
forward_error_text(enum forward_error err)
{
	return (unsigned)err < FORWARD_NERRORS ? error_texts[err] : "unknown";
}

const char *
forward_mode_name(enum forward_mode mode)
{
	static const char *const names[FORWARD_NMODES] = { "Message", "Forward",
		"PackedForward", "CompressedPackedForward" };

	return (unsigned)mode < FORWARD_NMODES ? names[mode] : "unknown";
}
