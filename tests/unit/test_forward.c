/*
 * Unit tests for the Fluent forward decoder: each mode (Message, Forward,
 * PackedForward, CompressedPackedForward with several gzip members),
 * EventTime and the other times, the record -> column mapping, the
 * limits and malformed input.  Streams are fed the way the listener does
 * (unconsumed bytes again with the next ones appended, eof on the last
 * feed): whole, split in two at every offset, and byte by byte; the
 * records and the final error must not depend on the split.
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
#include <msgpack.h>
#include <zlib.h>

#include "logsink/forward.h"

#define MAX_MSG (1 << 20)

/* ---- building messages ---- */

static void
pstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	assert_int_equal(msgpack_pack_str(pk, n), 0);
	assert_int_equal(msgpack_pack_str_body(pk, s, n), 0);
}

/* EventTime: ext 0, seconds and nanoseconds big-endian. */
static void
ptime(msgpack_packer *pk, uint32_t sec, uint32_t nsec)
{
	unsigned char b[8] = { sec >> 24, sec >> 16, sec >> 8, sec, nsec >> 24,
		nsec >> 16, nsec >> 8, nsec };

	assert_int_equal(msgpack_pack_ext(pk, 8, 0), 0);
	assert_int_equal(msgpack_pack_ext_body(pk, b, 8), 0);
}

/* {"message": msg, "host": "h1", "level": "warn", "n": i} */
static void
precord(msgpack_packer *pk, const char *msg, int i)
{
	msgpack_pack_map(pk, 4);
	pstr(pk, "message");
	pstr(pk, msg);
	pstr(pk, "host");
	pstr(pk, "h1");
	pstr(pk, "level");
	pstr(pk, "warn");
	pstr(pk, "n");
	msgpack_pack_int(pk, i);
}

static void
pchunk(msgpack_packer *pk, const char *chunk, const char *compressed)
{
	msgpack_pack_map(pk, compressed ? 2 : 1);
	pstr(pk, "chunk");
	pstr(pk, chunk);
	if (compressed) {
		pstr(pk, "compressed");
		pstr(pk, compressed);
	}
}

/* n packed entries [EventTime, record] into sb. */
static void
packed_entries(msgpack_sbuffer *sb, int first, int n)
{
	msgpack_packer pk;
	char m[32];
	int i;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	for (i = first; i < first + n; i++) {
		msgpack_pack_array(&pk, 2);
		ptime(&pk, 1700000000 + (uint32_t)i, 500000000);
		snprintf(m, sizeof(m), "p%d", i);
		precord(&pk, m, i);
	}
}

/* One gzip member of data (RFC 1952). */
static void
gzip_member(msgpack_sbuffer *out, const char *data, size_t len)
{
	z_stream zs;
	unsigned char tmp[65536];

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
			     Z_DEFAULT_STRATEGY),
	    Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)data;
	zs.avail_in = (uInt)len;
	do {
		zs.next_out = tmp;
		zs.avail_out = sizeof(tmp);
		assert_true(deflate(&zs, Z_FINISH) != Z_STREAM_ERROR);
		msgpack_sbuffer_write(
		    out, (char *)tmp, sizeof(tmp) - zs.avail_out);
	} while (zs.avail_out == 0);
	deflateEnd(&zs);
}

/* The four modes, one message each, in sb. */
static void
all_modes(msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	msgpack_sbuffer packed, gz;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	/* Message with chunk */
	msgpack_pack_array(&pk, 4);
	pstr(&pk, "app.msg");
	ptime(&pk, 1700000000, 123456789);
	precord(&pk, "hello", 1);
	pchunk(&pk, "c1", NULL);
	/* Forward: integer and float times */
	msgpack_pack_array(&pk, 2);
	pstr(&pk, "app.fwd");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint32(&pk, 1700000001);
	precord(&pk, "f1", 2);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_double(&pk, 1700000002.25);
	precord(&pk, "f2", 3);
	/* PackedForward (bin) */
	msgpack_sbuffer_init(&packed);
	packed_entries(&packed, 10, 3);
	msgpack_pack_array(&pk, 3);
	pstr(&pk, "app.packed");
	msgpack_pack_bin(&pk, packed.size);
	msgpack_pack_bin_body(&pk, packed.data, packed.size);
	pchunk(&pk, "c3", NULL);
	/* CompressedPackedForward: two gzip members */
	msgpack_sbuffer_init(&gz);
	gzip_member(&gz, packed.data, packed.size);
	msgpack_sbuffer_clear(&packed);
	packed_entries(&packed, 20, 2);
	gzip_member(&gz, packed.data, packed.size);
	msgpack_pack_array(&pk, 3);
	pstr(&pk, "app.gz");
	msgpack_pack_bin(&pk, gz.size);
	msgpack_pack_bin_body(&pk, gz.data, gz.size);
	pchunk(&pk, "c4", "gzip");
	msgpack_sbuffer_destroy(&packed);
	msgpack_sbuffer_destroy(&gz);
}

static const char all_modes_want[] =
    "[c1]app.msg|hello|h1|4|1700000000123456|{\"n\":1}\n"
    "[]app.fwd|f1|h1|4|1700000001000000|{\"n\":2}\n"
    "[]app.fwd|f2|h1|4|1700000002250000|{\"n\":3}\n"
    "[c3]app.packed|p10|h1|4|1700000010500000|{\"n\":10}\n"
    "[c3]app.packed|p11|h1|4|1700000011500000|{\"n\":11}\n"
    "[c3]app.packed|p12|h1|4|1700000012500000|{\"n\":12}\n"
    "[c4]app.gz|p10|h1|4|1700000010500000|{\"n\":10}\n"
    "[c4]app.gz|p11|h1|4|1700000011500000|{\"n\":11}\n"
    "[c4]app.gz|p12|h1|4|1700000012500000|{\"n\":12}\n"
    "[c4]app.gz|p20|h1|4|1700000020500000|{\"n\":20}\n"
    "[c4]app.gz|p21|h1|4|1700000021500000|{\"n\":21}\n"
    "=4\n";

/* ---- feeding like the listener ---- */

struct out {
	char *log;
	size_t n, cap;
};

static void out_add(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_add(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (o->n + (size_t)k + 1 > o->cap) {
		o->cap = (o->n + (size_t)k + 1) * 2;
		o->log = realloc(o->log, o->cap);
		assert_non_null(o->log);
	}
	va_start(ap, fmt);
	vsnprintf(o->log + o->n, o->cap - o->n, fmt, ap);
	va_end(ap);
	o->n += (size_t)k;
}

static void
render(struct out *o, struct forward *f, const struct record *r)
{
	size_t clen;
	const char *chunk = forward_chunk(f, &clen);

	out_add(o, "[%.*s]%.*s|%.*s|%.*s|%d|%lld|%.*s\n", (int)clen,
	    chunk ? chunk : "", (int)r->app.len, r->app.ptr ? r->app.ptr : "",
	    (int)r->message.len, r->message.ptr ? r->message.ptr : "",
	    (int)r->host.len, r->host.ptr ? r->host.ptr : "", r->severity,
	    r->has_event_time ? (long long)r->event_us : -1LL,
	    r->fields.ptr ? (int)r->fields.len : 4,
	    r->fields.ptr ? r->fields.ptr : "NULL");
}

/*
 * Feeds in[0, len) in pieces of step bytes (0: whole; cut: split there
 * once); renders each record into o, then "=messages" or "!error".
 */
static enum forward_error
run(const char *in, size_t len, size_t step, size_t cut, struct out *o,
    size_t max_msg, size_t max_entries)
{
	struct forward *f = forward_new(max_msg, max_entries);
	struct buf sc = { 0 };
	struct record rec;
	char *pend = malloc(len + 1);
	size_t have = 0, next = 0, end, n, msgs = 0;
	enum forward_error err;
	bool eof;
	int rc;

	assert_non_null(f);
	memset(&rec, 0, sizeof(rec));
	while (true) {
		end = step ? next + step : cut ? (next < cut ? cut : len) : len;
		if (end > len)
			end = len;
		memcpy(pend + have, in + next, end - next);
		have += end - next;
		next = end;
		eof = next == len;
		while ((n = forward_frame(f, pend, have, eof)) > 0) {
			if (forward_begin(f, pend, n) == -1)
				break;
			while ((rc = forward_next(f, &rec, &sc)) == 1)
				render(o, f, &rec);
			if (rc == -1)
				break;
			memmove(pend, pend + n, have - n);
			have -= n;
			msgs++;
		}
		if (forward_err(f) != FORWARD_OK || eof)
			break;
	}
	err = forward_err(f);
	if (err == FORWARD_OK)
		out_add(o, "=%zu\n", msgs);
	else
		out_add(o, "!%s\n", forward_error_name(err));
	forward_free(f);
	buf_free(&sc);
	free(pend);
	return err;
}

/* The same output whole, at every cut and byte by byte. */
static void
check_splits(const char *in, size_t len, const char *want, size_t max_msg,
    size_t max_entries)
{
	struct out o = { 0 };
	size_t cut;

	run(in, len, 0, 0, &o, max_msg, max_entries);
	assert_string_equal(o.log, want);
	for (cut = 1; cut < len; cut++) {
		o.n = 0;
		run(in, len, 0, cut, &o, max_msg, max_entries);
		if (strcmp(o.log, want) != 0)
			fail_msg("cut at %zu: %s", cut, o.log);
	}
	o.n = 0;
	run(in, len, 1, 0, &o, max_msg, max_entries);
	assert_string_equal(o.log, want);
	free(o.log);
}

static void
test_modes(void **state)
{
	msgpack_sbuffer sb;

	(void)state;
	msgpack_sbuffer_init(&sb);
	all_modes(&sb);
	check_splits(sb.data, sb.size, all_modes_want, MAX_MSG, 1000);
	msgpack_sbuffer_destroy(&sb);
}

/* One Message-mode message with the given record; the rendered row. */
static void
check_record(void (*build)(msgpack_packer *), const char *want)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	pstr(&pk, "t");
	msgpack_pack_uint32(&pk, 1);
	build(&pk);
	check_splits(sb.data, sb.size, want, MAX_MSG, 10);
	msgpack_sbuffer_destroy(&sb);
}

/* msg beats log; host beats hostname; pino level; nested values. */
static void
rec_mixed(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 9);
	pstr(pk, "log");
	pstr(pk, "L");
	pstr(pk, "msg");
	pstr(pk, "M");
	pstr(pk, "hostname");
	pstr(pk, "hn");
	pstr(pk, "host");
	pstr(pk, "h");
	pstr(pk, "level");
	msgpack_pack_int(pk, 50);
	pstr(pk, "a");
	msgpack_pack_array(pk, 3);
	msgpack_pack_nil(pk);
	msgpack_pack_true(pk);
	msgpack_pack_int(pk, -7);
	pstr(pk, "b");
	msgpack_pack_bin(pk, 4);
	msgpack_pack_bin_body(pk, "\x00\x01\xfe\xff", 4);
	pstr(pk, "q\"\n");
	pstr(pk, "x\x01");
	msgpack_pack_int(pk, 5); /* a key that is not a string */
	msgpack_pack_map(pk, 1);
	pstr(pk, "inf");
	msgpack_pack_double(pk, 1.0 / 0.0);
}

static void
test_mapping(void **state)
{
	(void)state;
	check_record(rec_mixed,
	    "[]t|M|h|3|1000000|{\"log\":\"L\",\"hostname\":\"hn\","
	    "\"a\":[null,true,-7],\"b\":\"AAH+/w==\",\"q\\\"\\n\":"
	    "\"x\\u0001\",\"5\":{\"inf\":null}}\n=1\n");
}

/* A non-string message is its JSON; a level name unknown stays. */
static void
rec_odd_values(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 3);
	pstr(pk, "message");
	msgpack_pack_map(pk, 1);
	pstr(pk, "k");
	msgpack_pack_int(pk, 1);
	pstr(pk, "level");
	pstr(pk, "loud");
	pstr(pk, "host");
	msgpack_pack_int(pk, 3);
}

static void
rec_empty(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 0);
}

static void
rec_not_map(msgpack_packer *pk)
{
	pstr(pk, "just text");
}

static void
test_mapping_odd(void **state)
{
	(void)state;
	check_record(rec_odd_values,
	    "[]t|{\"k\":1}||-1|1000000|{\"level\":\"loud\",\"host\":3}\n=1\n");
	check_record(rec_empty, "[]t|||-1|1000000|NULL\n=1\n");
	/* [t, 1, "just text"]: the text */
	check_record(rec_not_map, "[]t|just text||-1|1000000|NULL\n=1\n");
	/* Forward entries that are not [time, record]: the entry as JSON */
	check_splits("\x92\xa1t\x92\x05\x91\x01", 7,
	    "[]t|5||-1|-1|NULL\n[]t|[1]||-1|-1|NULL\n=1\n", MAX_MSG, 10);
}

/* Fluent Bit's [[time, metadata], record]; a negative and a bad time. */
static void
test_times(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	(void)state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	pstr(&pk, "fb");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_array(&pk, 2);
	ptime(&pk, 1700000000, 999999999);
	msgpack_pack_map(&pk, 0);
	precord(&pk, "meta", 1);
	msgpack_pack_array(&pk, 2);
	ptime(&pk, 1, 1000000000); /* nanoseconds out of range */
	precord(&pk, "badns", 2);
	msgpack_pack_array(&pk, 2);
	pstr(&pk, "yesterday");
	precord(&pk, "strtime", 3);
	check_splits(sb.data, sb.size,
	    "[]fb|meta|h1|4|1700000000999999|{\"n\":1}\n"
	    "[]fb|badns|h1|4|-1|{\"n\":2}\n"
	    "[]fb|strtime|h1|4|-1|{\"n\":3}\n=1\n",
	    MAX_MSG, 10);
	msgpack_sbuffer_destroy(&sb);
}

/* An error after good messages: those are taken, then the error. */
static void
check_error(const char *bad, size_t badlen, const char *want, size_t max_msg,
    size_t max_entries)
{
	msgpack_sbuffer sb;
	char *in;
	size_t len;

	msgpack_sbuffer_init(&sb);
	all_modes(&sb);
	len = sb.size + badlen;
	in = malloc(len);
	assert_non_null(in);
	memcpy(in, sb.data, sb.size);
	memcpy(in + sb.size, bad, badlen);
	{
		char w[4096];
		size_t k = strlen(all_modes_want) - 3; /* without "=4\n" */

		snprintf(w, sizeof(w), "%.*s%s", (int)k, all_modes_want, want);
		check_splits(in, len, w, max_msg, max_entries);
	}
	free(in);
	msgpack_sbuffer_destroy(&sb);
}

static void
test_malformed(void **state)
{
	(void)state;
	check_error("GET / HTTP/1.1\r\n", 16, "!malformed\n", MAX_MSG, 1000);
	/* truncated: a message cut by EOF */
	check_error("\x93\xa1t\xce", 4, "!truncated\n", MAX_MSG, 1000);
	/* 0xc1 is never used */
	check_error("\x92\xa1t\xc1", 4, "!malformed\n", MAX_MSG, 1000);
	/* a tag that is not a string */
	check_error("\x93\x01\x01\x80", 4, "!malformed\n", MAX_MSG, 1000);
	/* too few, too many elements */
	check_error("\x92\xa1t\x01", 4, "!malformed\n", MAX_MSG, 1000);
	check_error("\x94\xa1t\x90\x80\x80", 6, "!malformed\n", MAX_MSG, 1000);
	/* an option that is not a map; a chunk that is not a string */
	check_error("\x93\xa1t\x90\x01", 5, "!malformed\n", MAX_MSG, 1000);
	check_error("\x93\xa1t\x90\x81\xa5"
		    "chunk\x01",
	    12, "!malformed\n", MAX_MSG, 1000);
	/* compressed: "gzip" on Forward mode; not gzip data */
	check_error("\x93\xa1t\x90\x81\xaa"
		    "compressed\xa4gzip",
	    21, "!malformed\n", MAX_MSG, 1000);
	check_error("\x93\xa1t\xc4\x03xyz\x81\xaa"
		    "compressed\xa4gzip",
	    25, "!gzip\n", MAX_MSG, 1000);
	/* PackedForward with an entry cut short */
	check_error("\x92\xa1t\xc4\x02\x92\x01", 7, "!entry\n", MAX_MSG, 1000);
}

static void
test_limits(void **state)
{
	char deep[64];
	int i;

	(void)state;
	/* declared lengths past the limit fail at once, before the bytes */
	check_error(
	    "\x93\xa1t\xdb\xff\xff\xff\xff", 8, "!too_big\n", MAX_MSG, 1000);
	check_error(
	    "\x92\xa1t\xdd\xff\xff\xff\xff", 8, "!too_big\n", MAX_MSG, 1000);
	check_error(
	    "\x92\xa1t\xdf\x7f\xff\xff\xff", 8, "!too_big\n", MAX_MSG, 1000);
	/* nesting */
	memcpy(deep, "\x92\xa1t", 3);
	for (i = 3; i < 60; i++)
		deep[i] = '\x91';
	deep[60] = '\x01';
	check_error(deep, 61, "!nesting\n", MAX_MSG, 1000);
	/* entries: the 3-entry PackedForward message has too many */
	{
		msgpack_sbuffer sb;
		struct out o = { 0 };

		msgpack_sbuffer_init(&sb);
		all_modes(&sb);
		assert_int_equal(run(sb.data, sb.size, 0, 0, &o, MAX_MSG, 2),
		    FORWARD_ERR_ENTRIES);
		assert_non_null(strstr(o.log, "app.fwd|f2"));
		assert_null(strstr(o.log, "app.packed"));
		/* the whole stream over a 200-byte limit */
		o.n = 0;
		assert_int_equal(run(sb.data, sb.size, 0, 0, &o, 200, 1000),
		    FORWARD_ERR_TOO_BIG);
		free(o.log);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* 8 MiB of zeros in 8 KiB of gzip against a 1 MiB limit. */
static void
test_gzip_bomb(void **state)
{
	msgpack_sbuffer gz, sb;
	msgpack_packer pk;
	struct out o = { 0 };
	char *zeros = calloc(1, 8 << 20);

	(void)state;
	assert_non_null(zeros);
	msgpack_sbuffer_init(&gz);
	gzip_member(&gz, zeros, 8 << 20);
	free(zeros);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	pstr(&pk, "bomb");
	msgpack_pack_bin(&pk, gz.size);
	msgpack_pack_bin_body(&pk, gz.data, gz.size);
	pchunk(&pk, "b", "gzip");
	assert_true(sb.size < 64 * 1024);
	assert_int_equal(run(sb.data, sb.size, 0, 0, &o, MAX_MSG, 1000),
	    FORWARD_ERR_INFLATED);
	assert_string_equal(o.log, "!inflated_too_big\n");
	free(o.log);
	msgpack_sbuffer_destroy(&gz);
	msgpack_sbuffer_destroy(&sb);
}

/* An entry of more than FORWARD_MAX_VALUES values. */
static void
test_entry_values(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct out o = { 0 };
	uint32_t i;

	(void)state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	pstr(&pk, "t");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_map(&pk, 1);
	pstr(&pk, "a");
	msgpack_pack_array(&pk, FORWARD_MAX_VALUES);
	for (i = 0; i < FORWARD_MAX_VALUES; i++)
		msgpack_pack_int(&pk, 1);
	assert_int_equal(
	    run(sb.data, sb.size, 0, 0, &o, MAX_MSG, 1000), FORWARD_ERR_ENTRY);
	free(o.log);
	msgpack_sbuffer_destroy(&sb);
}

/* Begun again after the queue filled: the entries taken are passed. */
static void
test_skip(void **state)
{
	msgpack_sbuffer sb, packed;
	msgpack_packer pk;
	struct forward *f = forward_new(MAX_MSG, 100);
	struct buf sc = { 0 };
	struct record rec;
	size_t n;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	msgpack_sbuffer_init(&packed);
	packed_entries(&packed, 0, 3);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	pstr(&pk, "s");
	msgpack_pack_str(&pk, packed.size);
	msgpack_pack_str_body(&pk, packed.data, packed.size);
	n = forward_frame(f, sb.data, sb.size, false);
	assert_int_equal(n, sb.size);
	assert_int_equal(forward_begin(f, sb.data, n), 0);
	assert_int_equal(forward_next(f, &rec, &sc), 1);
	assert_int_equal(forward_begin(f, sb.data, n), 0);
	assert_int_equal(forward_skip(f, 2), 0);
	assert_int_equal(forward_next(f, &rec, &sc), 1);
	assert_int_equal(rec.message.len, 2);
	assert_memory_equal(rec.message.ptr, "p2", 2);
	assert_int_equal(forward_next(f, &rec, &sc), 0);
	assert_int_equal(forward_begin(f, sb.data, n), 0);
	assert_int_equal(forward_skip(f, 4), -1);
	forward_free(f);
	buf_free(&sc);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&packed);
}

static void
test_ack(void **state)
{
	char a[FORWARD_ACK_MAX], chunk[FORWARD_MAX_CHUNK];
	size_t n;

	(void)state;
	n = forward_format_ack(a, "abc", 3);
	assert_int_equal(n, 9);
	assert_memory_equal(a,
	    "\x81\xa3"
	    "ack\xa3"
	    "abc",
	    9);
	memset(chunk, 'x', sizeof(chunk));
	n = forward_format_ack(a, chunk, sizeof(chunk));
	assert_int_equal(n, 5 + 2 + sizeof(chunk));
	assert_int_equal((unsigned char)a[5], 0xd9); /* str8 */
	assert_int_equal(forward_format_ack(a, chunk, sizeof(chunk) + 1), 0);
}

/* HELO and PONG as the specification writes them; the PING parsed. */
static void
test_handshake(void **state)
{
	const unsigned char nonce[FORWARD_NONCE_BYTES] = { 1, 2, 3 };
	struct forward *f = forward_new(MAX_MSG, 10);
	struct buf b = { 0 };
	struct forward_ping p;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked u;
	size_t off = 0, cut;

	(void)state;
	assert_int_equal(forward_format_helo(&b, nonce, sizeof(nonce)), 0);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, b.data, b.len, &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(u.data.via.array.size, 2);
	assert_int_equal(u.data.via.array.ptr[1].via.map.size, 3);
	assert_int_equal(
	    u.data.via.array.ptr[1].via.map.ptr[0].val.via.bin.size, 16);
	b.len = 0;
	assert_int_equal(forward_format_pong(&b, false, "no", "h", ""), 0);
	assert_memory_equal(b.data, "\x95\xa4PONG\xc2\xa2no\xa1h\xa0", 13);
	msgpack_unpacked_destroy(&u);
	buf_free(&b);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 6);
	pstr(&pk, "PING");
	pstr(&pk, "client");
	pstr(&pk, "salt");
	pstr(&pk, "digest");
	pstr(&pk, "");
	pstr(&pk, "");
	for (cut = 0; cut < sb.size; cut++) {
		assert_int_equal(forward_ping(f, sb.data, cut, false, &p), 0);
		assert_int_equal(forward_err(f), FORWARD_OK);
	}
	assert_int_equal(forward_ping(f, sb.data, sb.size, false, &p), sb.size);
	assert_int_equal(p.hostname.len, 6);
	assert_memory_equal(p.hostname.ptr, "client", 6);
	assert_memory_equal(p.salt.ptr, "salt", 4);
	assert_memory_equal(p.digest.ptr, "digest", 6);
	/* a message instead of a PING; a PING cut by EOF */
	assert_int_equal(forward_ping(f, "\x92\xa1t\x90", 4, false, &p), 0);
	assert_int_equal(forward_err(f), FORWARD_ERR_HANDSHAKE);
	forward_free(f);
	f = forward_new(MAX_MSG, 10);
	assert_int_equal(forward_ping(f, sb.data, sb.size - 1, true, &p), 0);
	assert_int_equal(forward_err(f), FORWARD_ERR_TRUNCATED);
	forward_free(f);
	msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_mapping),
		cmocka_unit_test(test_mapping_odd),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_entry_values),
		cmocka_unit_test(test_skip),
		cmocka_unit_test(test_ack),
		cmocka_unit_test(test_handshake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
