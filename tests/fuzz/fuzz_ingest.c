/*
 * libFuzzer target for the receive path: framing (every framing, split at
 * a point taken from the input) -> parsing -> COPY encoding.  Checks that
 * nothing crashes, that the framer never consumes more than it was given,
 * that every fields text is one valid JSON object (syslog structured data,
 * JSON, GELF, logfmt) and that every encoded row is a single line.  The
 * input is also decoded as a PROXY protocol header, whole and split as the
 * listener reads it, and the stream after a whole header is framed.
 * Inputs with the high bit of their first byte set also take
 * framer_decide() when the first piece leaves lines held
 * (framing-detect-timeout) and parse BSD timestamps in Europe/Berlin
 * (tz=).  The same bytes are also fed as RELP frames (relp.h) whose
 * syslog DATA goes the same way; the RELP decoder must never consume more
 * than it was given (and at EOF take all or fail).  And as a Fluent
 * forward stream (forward.h), split in two: a message found is never
 * longer than the bytes given, and each entry's record is encoded the
 * same way (its fields one valid JSON object).
 * The bytes are also an
 * HTTP request stream (http.h) in two pieces, whose bodies go to the JSON
 * body decoders (body_json.c), and a body fed to them directly: neither
 * may consume more than it was given, and every record they emit is
 * checked like a parsed line.  And as a Journal Export Format body
 * (body_journal.c), whose records take the same checks.
 * The bytes also drive
 * the rate limiter (ratelimit.h): rates, bursts, times and spends from
 * the input, keys from its bytes; tokens never pass the burst.
 * The input is also an OTLP body, protobuf and JSON (body_otlp.c): each
 * record's fields must be one JSON object and encode as above, and the
 * answer must fit.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "logsink/body.h"
#include "logsink/buf.h"
#include "logsink/copyenc.h"
#include "logsink/framer.h"
#include "logsink/parser.h"
#include "logsink/proxy.h"
#include "logsink/record.h"
#include "logsink/tzrule.h"
#include "../../src/parser_int.h"
#include "logsink/relp.h"
#include "logsink/forward.h"
#include "logsink/body.h"
#include "logsink/http.h"
#include "logsink/ratelimit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct buf scratch, scratch2, row, row2;
/* Every other input parses BSD timestamps in this zone (tz=). */
static struct tzrule *berlin;
static bool use_tz;

/* The fields text the parser made is one JSON object the scanner takes. */
static void
check_fields(const struct record *rec)
{
	struct record r2 = { 0 };
	struct pctx c = { &r2, &scratch2, 0, PARSER_NOOFF, PARSER_NOOFF,
		PARSER_NOOFF, PARSER_NOOFF, NULL };

	if (rec->fields.ptr == NULL)
		return;
	assert(rec->fields.len >= 2 && rec->fields.ptr[0] == '{');
	buf_reset(&scratch2);
	assert(parser_json(&c, rec->fields.ptr, rec->fields.len) !=
	    PARSER_NOMATCH);
}

/* A parsed record: its fields, its text and binary COPY rows. */
static void
check_record(const struct record *rec0)
{
	struct record rec = *rec0;
	struct record dec;
	size_t replaced, i, text_len;
	char peer[64];

	check_fields(&rec);
	/* The text row is one line without NUL. */
	buf_reset(&row);
	if (copyenc_row_text(&row, &rec, &replaced) == -1)
		return;
	assert(row.len > 0 && row.data[row.len - 1] == '\n');
	for (i = 0; i + 1 < row.len; i++)
		assert(row.data[i] != '\n' && row.data[i] != '\0');
	/* The binary row is whole and decodes to the same text row. */
	text_len = row.len;
	if (copyenc_row(&row, &rec, &replaced) == -1)
		return;
	assert(copyenc_row_size(row.data + text_len, row.len - text_len) ==
	    row.len - text_len);
	assert(copyenc_decode(row.data + text_len, row.len - text_len, &dec,
		   peer, sizeof(peer)) == 0);
	buf_reset(&row2);
	if (copyenc_row_text(&row2, &dec, &replaced) == -1)
		return;
	assert(replaced == 0);
	assert(
	    row2.len == text_len && memcmp(row2.data, row.data, text_len) == 0);
}

static bool
on_msg(void *arg, const char *msg, size_t len, bool truncated)
{
	struct record rec = { .received_us = 1763700000000000LL,
		.peer = "127.0.0.1" };
	(void)arg;
	(void)truncated;
	assert(len > 0);
	if (parser_parse_tz(&rec, msg, len, PARSER_AUTO, use_tz ? berlin : NULL,
		&scratch) == -1)
		return true;
	check_record(&rec);
	return true;
}

/* body_decoder callback: stops after each record when arg is non-NULL. */
static bool
on_otlp_record(void *arg, struct record *rec)
{
	rec->received_us = 1763700000000000LL;
	rec->peer = "127.0.0.1";
	assert(rec->severity >= -1 && rec->severity <= 7);
	check_record(rec);
	return arg == NULL;
}

/*
 * The input as a whole body for dec (depth 16, records of 4 KiB), fed as
 * the HTTP glue does: nothing consumed before the end, then everything;
 * with stop, feeds of nothing resume after each record.
 */
static void
feed_otlp(
    const struct body_decoder *dec, const char *data, size_t size, bool stop)
{
	static const struct body_limits lim = { 4096, 1 << 20, 16 };
	char out[512];
	const char *ct;
	size_t need = 0, n;
	void *st = dec->new (&lim);
	int rounds = 0;

	if (st == NULL)
		return;
	assert(dec->feed(st, data, size / 2, false, &need, on_otlp_record,
		   stop ? &need : NULL) == 0);
	assert(need == SIZE_MAX);
	assert(dec->feed(st, data, size, true, &need, on_otlp_record,
		   stop ? &need : NULL) == size);
	while (stop && rounds++ < 1000)
		(void)dec->feed(st, "", 0, true, &need, on_otlp_record, &need);
	if (dec->error(st) == NULL) {
		n = dec->answer(st, out, sizeof(out), &ct);
		assert(n <= sizeof(out) && ct != NULL);
	}
	dec->free(st);
}

/* body_record_cb of the journal decoder; stops after every other entry. */
static bool
on_journal(void *arg, struct record *rec)
{
	unsigned *n = arg;

	rec->received_us = 1763700000000000LL;
	rec->peer = "127.0.0.1";
	assert(rec->host.ptr == NULL || rec->host.len <= 255);
	assert(rec->severity >= -1 && rec->severity <= 7);
	assert(rec->facility >= -1 && rec->facility <= 23);
	check_record(rec);
	return ++*n % 2 != 0;
}

/*
 * The input as a Journal Export Format body (body_journal.c) in two
 * pieces, fed as the HTTP glue does; the entry limit is small so that
 * cutting is reached.  The decoder must never consume more than it was
 * given, and must take everything after an error or at the end.
 */
static void
feed_journal(const char *data, size_t size, size_t cut)
{
	struct body_limits lim = { 200, 1 << 16, 32 };
	void *st = body_journal.new(&lim);
	struct buf pend = { 0 };
	size_t used, need, at = 0;
	unsigned n = 0;
	bool end;

	if (st == NULL)
		return;
	while (at <= size) {
		size_t to = at < cut ? cut : size;

		end = to == size;
		if (buf_append(&pend, data + at, to - at) == -1)
			break;
		at = to;
		do {
			used = body_journal.feed(st, pend.data, pend.len, end,
			    &need, on_journal, &n);
			assert(used <= pend.len);
			if (pend.len > 0)
				memmove(pend.data, pend.data + used,
				    pend.len - used);
			pend.len -= used;
		} while (used > 0);
		if (body_journal.error(st) != NULL)
			assert(pend.len == 0);
		if (end) {
			used = body_journal.feed(
			    st, NULL, 0, true, &need, on_journal, &n);
			assert(used == 0 && pend.len == 0);
			break;
		}
	}
	body_journal.free(st);
	buf_free(&pend);
}

/* Feeds data in two pieces, keeping unconsumed bytes as the listener does. */
static void
feed_split(enum framer_mode mode, const char *data, size_t size, size_t cut)
{
	struct framer f;
	struct buf pend = { 0 };
	size_t used;

	framer_init(&f, 256, mode);
	if (buf_append(&pend, data, cut) == -1)
		return;
	used = framer_feed(&f, pend.data, pend.len, false, on_msg, NULL);
	assert(used <= pend.len);
	if (used > 0) {
		memmove(pend.data, pend.data + used, pend.len - used);
		pend.len -= used;
	}
	if (f.held && use_tz) { /* framing-detect-timeout passed */
		framer_decide(&f);
		used =
		    framer_feed(&f, pend.data, pend.len, false, on_msg, NULL);
		assert(used > 0 && used <= pend.len);
		memmove(pend.data, pend.data + used, pend.len - used);
		pend.len -= used;
	}
	if (buf_append(&pend, data + cut, size - cut) == 0) {
		used = framer_feed(&f, pend.data, pend.len, true, on_msg, NULL);
		assert(used == pend.len);
	}
	buf_free(&pend);
}

/*
 * The PROXY decoder (proxy.h): a prefix that is incomplete leaves the
 * verdict to the rest, a whole or bad prefix is the whole input's verdict
 * too (the listener consumes incomplete prefixes and never reads past a
 * header), and a whole header ends inside the input.
 */
static void
check_proxy(const uint8_t *data, size_t size, size_t cut)
{
	struct proxy_header h, hc;
	enum proxy_failure why, whyc;
	char err[256];
	int rc, rcc;
	size_t max = size > 0 && (data[0] & 1) ? PROXY_V2_MAX_BYTES : 1024;

	rc = proxy_parse(data, size, max, &h, &why, err, sizeof(err));
	assert(rc >= -1 && rc <= 1);
	if (rc == -1)
		assert((unsigned)why < PROXY_NFAILURES);
	if (rc == 1) {
		assert(h.len >= 15 && h.len <= size && h.len <= max);
		assert(h.version == 1 || h.version == 2);
		assert(h.local || h.src.ss_family == AF_INET ||
		    h.src.ss_family == AF_INET6);
		assert(proxy_parse(data, h.len - 1, max, &hc, &whyc, err,
			   sizeof(err)) == 0);
	}
	rcc = proxy_parse(data, cut, max, &hc, &whyc, err, sizeof(err));
	if (rcc == 1)
		assert(rc == 1 && hc.len == h.len);
	if (rcc == -1)
		assert(rc == -1 && whyc == why);
	if (rcc == 0 && rc == 1)
		assert(h.len >= cut); /* the consumed prefix was the header's */
	if (rc == 1 && h.len < size)
		feed_split(FRAMER_AUTO, (const char *)data + h.len,
		    size - h.len, (size - h.len) / 2);
}

/* relp_feed() callback: syslog DATA is parsed and encoded. */
static bool
on_relp(void *arg, uint32_t txnr, enum relp_command cmd, const char *data,
    size_t len)
{
	(void)arg;
	assert(txnr >= 1 && txnr <= RELP_TXNR_MAX);
	assert(len <= 256);
	if (cmd == RELP_CMD_SYSLOG && len > 0)
		on_msg(NULL, data, len, false);
	return true;
}

/*
 * The input as a RELP stream in two pieces; with open set, as if an open
 * with txnr 1 had come already (so syslog frames are reached without
 * one).
 */
static void
feed_relp(const char *data, size_t size, size_t cut, bool open)
{
	struct relp r;
	struct buf pend = { 0 };
	size_t used;

	relp_init(&r, 256);
	if (open) {
		r.open = true;
		r.last_txnr = 1;
	}
	if (buf_append(&pend, data, cut) == -1)
		return;
	used = relp_feed(&r, pend.data, pend.len, false, on_relp, NULL);
	assert(used <= pend.len);
	assert(
	    r.err != RELP_OK || used == pend.len || r.need > pend.len - used);
	if (used > 0) {
		memmove(pend.data, pend.data + used, pend.len - used);
		pend.len -= used;
	}
	if (r.err == RELP_OK &&
	    buf_append(&pend, data + cut, size - cut) == 0) {
		used = relp_feed(&r, pend.data, pend.len, true, on_relp, NULL);
		assert(used <= pend.len);
		assert(r.err != RELP_OK || used == pend.len);
	}
	buf_free(&pend);
}

/*
 * The bytes as a Fluent forward stream in two pieces (the listener keeps
 * unconsumed bytes and appends the next read; the second piece ends with
 * EOF): each message found lies within the bytes given, its entries are
 * records like any other, and the decoder ends with no error or one.
 */
static void
feed_forward(const char *data, size_t size, size_t cut)
{
	struct forward *f = forward_new(64 * 1024, 1000);
	struct record rec = { .received_us = 1763700000000000LL,
		.peer = "127.0.0.1" };
	struct buf pend = { 0 };
	size_t n, piece;
	int rc;

	if (f == NULL)
		return;
	for (piece = 0; piece < 2; piece++) {
		if (buf_append(&pend, data + (piece ? cut : 0),
			piece ? size - cut : cut) == -1)
			break;
		while (pend.len > 0 &&
		    (n = forward_frame(f, pend.data, pend.len, piece == 1)) >
			0) {
			assert(n <= pend.len);
			if (forward_begin(f, pend.data, n) == -1)
				break;
			while ((rc = forward_next(f, &rec, &scratch)) == 1)
				check_record(&rec);
			if (rc == -1)
				break;
			memmove(pend.data, pend.data + n, pend.len - n);
			pend.len -= n;
		}
		if (forward_err(f) != FORWARD_OK)
			break;
	}
	assert((unsigned)forward_err(f) < FORWARD_NERRORS);
	forward_free(f);
	/* The same bytes as the handshake's PING. */
	if ((f = forward_new(64 * 1024, 1000)) != NULL) {
		struct forward_ping p;

		n = forward_ping(f, data, size, true, &p);
		assert(n <= size);
		if (n > 0)
			assert(p.hostname.ptr >= data &&
			    p.digest.ptr + p.digest.len <= data + n);
		forward_free(f);
	}
	buf_free(&pend);
}

/* A body decoder's record: fields and COPY rows as for a line. */
static bool
on_body_rec(void *arg, struct record *rec)
{
	(void)arg;
	rec->received_us = 1763700000000000LL;
	rec->peer = "127.0.0.1";
	check_record(rec);
	return true;
}

/* Feeds pend to a body decoder until it stops consuming. */
static void
body_drain(const struct body_decoder *dec, void *st, struct buf *pend, bool end)
{
	size_t used, need;

	do {
		used = dec->feed(st, pend->data != NULL ? pend->data : "",
		    pend->len, end, &need, on_body_rec, NULL);
		assert(used <= pend->len);
		if (used > 0) {
			memmove(
			    pend->data, pend->data + used, pend->len - used);
			pend->len -= used;
		}
	} while (used > 0 && dec->error(st) == NULL);
	if (end && dec->error(st) == NULL)
		assert(pend->len == 0);
}

/* data as a body of dec, in two pieces. */
static void
feed_body(
    const struct body_decoder *dec, const char *data, size_t size, size_t cut)
{
	struct body_limits lim = { 256, 4096, 16 };
	struct buf pend = { 0 };
	void *st = dec->new (&lim);

	if (st == NULL)
		return;
	if (data == NULL) /* an empty body's buffer */
		data = "";
	if (buf_append(&pend, data, cut) == 0) {
		body_drain(dec, st, &pend, false);
		if (buf_append(&pend, data + cut, size - cut) == 0)
			body_drain(dec, st, &pend, true);
	}
	dec->free(st);
	buf_free(&pend);
}

/* One feed round of the HTTP parser over pend; the bytes consumed. */
static size_t
http_round(struct http_parser *p, struct buf *pend, struct buf *body, bool eof)
{
	const char *d;
	size_t n, dlen;

	if (p->state == HTTP_PS_HEAD) {
		n = http_feed_head(
		    p, pend->data != NULL ? pend->data : "", pend->len, eof);
	} else {
		n = http_feed_body(p, pend->data != NULL ? pend->data : "",
		    pend->len, eof, &d, &dlen);
		assert(dlen <= n);
		if (dlen > 0) {
			assert(d + dlen == pend->data + n);
			if (body->len < 65536 &&
			    buf_append(body, d, dlen) == -1)
				dlen = 0;
		}
	}
	assert(n <= pend->len);
	if (n > 0) {
		memmove(pend->data, pend->data + n, pend->len - n);
		pend->len -= n;
	}
	if (p->state == HTTP_PS_DONE) {
		feed_body(p->req.content_type[0] == 'a' ? &body_json
							: &body_json_lines,
		    body->data, body->len, body->len / 2);
		buf_reset(body);
		http_parser_next(p);
		return n > 0 ? n : 1;
	}
	return n;
}

/* The input as an HTTP request stream in two pieces. */
static void
feed_http(const char *data, size_t size, size_t cut)
{
	struct http_limits lim = { 512, 16 };
	struct http_parser p;
	struct buf pend = { 0 }, body = { 0 };
	int i;

	http_parser_init(&p, &lim);
	if (buf_append(&pend, data, cut) == 0) {
		for (i = 0; i < 100000 && p.state != HTTP_PS_ERROR; i++)
			if (http_round(&p, &pend, &body, false) == 0)
				break;
		if (p.state != HTTP_PS_ERROR &&
		    buf_append(&pend, data + cut, size - cut) == 0)
			for (i = 0; i < 100000 && p.state != HTTP_PS_ERROR; i++)
				if (http_round(&p, &pend, &body, true) == 0)
					break;
	}
	/* At the end: all taken, or an error, or a clean end. */
	if (p.state == HTTP_PS_ERROR)
		assert((unsigned)p.err < HTTP_NERRORS &&
		    http_error_status(p.err) >= 400);
	else
		assert(pend.len == 0 && p.state == HTTP_PS_HEAD);
	buf_free(&pend);
	buf_free(&body);
}

/* n (<= 8) bytes at p as a number, little-endian. */
static uint64_t
le_bytes(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * Token buckets driven by the input (after 8 bytes of rate and burst, 16
 * bytes a step: key length and up to 3 key bytes, a clock step and its
 * shift, a spend): extreme rates, bursts, clock jumps and debts must
 * stay in range (UBSan checks the arithmetic), tokens within the burst.
 */
static void
check_ratelimit(const uint8_t *p, size_t size)
{
	const uint8_t *end = p + size;
	struct ratelimit *rl;
	uint32_t rate, burst;
	int64_t now = 0;
	size_t keylen;

	if (size < 8)
		return;
	rl = ratelimit_new(4);
	assert(rl != NULL);
	rate = (uint32_t)le_bytes(p, 4);
	burst = (uint32_t)le_bytes(p + 4, 4);
	ratelimit_set(rl, rate, burst);
	for (p += 8; end - p >= 16; p += 16) {
		keylen = (size_t)(p[0] % 3) + 1;
		now += (int64_t)(le_bytes(p + 4, 4) >> (p[8] & 31));
		assert(ratelimit_tokens(rl, p + 1, keylen, now, NULL) <=
		    (burst > 0 ? burst : 1));
		assert(ratelimit_wait_ms(rl, p + 1, keylen, now) >= 1);
		ratelimit_spend(rl, p + 1, keylen, le_bytes(p + 9, 7));
	}
	ratelimit_free(rl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut;
	int mode;

	if (size < 1)
		return 0;
	if (berlin == NULL) {
		char err[256];

		berlin =
		    tzrule_new("Europe/Berlin", 1763700000, err, sizeof(err));
		assert(berlin != NULL);
	}
	use_tz = (data[0] & 0x80) != 0;
	cut = data[0] % size;
	for (mode = FRAMER_AUTO; mode <= FRAMER_OCTET; mode++)
		feed_split((enum framer_mode)mode, (const char *)data + 1,
		    size - 1, cut < size - 1 ? cut : size - 1);
	feed_relp((const char *)data + 1, size - 1,
	    cut < size - 1 ? cut : size - 1, data[0] & 1);
	feed_journal(
	    (const char *)data + 1, size - 1, cut < size - 1 ? cut : size - 1);
	/* The parser on the whole input as one message, too. */
	on_msg(NULL, (const char *)data, size, false);
	check_proxy(data + 1, size - 1, cut < size - 1 ? cut : size - 1);
	feed_forward(
	    (const char *)data + 1, size - 1, cut < size - 1 ? cut : size - 1);
	feed_http(
	    (const char *)data + 1, size - 1, cut < size - 1 ? cut : size - 1);
	feed_body(data[0] & 2 ? &body_json : &body_json_lines,
	    (const char *)data + 1, size - 1, cut < size - 1 ? cut : size - 1);
	check_ratelimit(data, size);
	feed_otlp(
	    &body_otlp_proto, (const char *)data + 1, size - 1, data[0] & 2);
	feed_otlp(
	    &body_otlp_json, (const char *)data + 1, size - 1, data[0] & 2);
	return 0;
}
