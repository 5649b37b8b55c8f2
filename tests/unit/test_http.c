/*
 * Unit tests for the HTTP request parser (http.h), the response
 * formatter and the JSON body decoders (body_json.c).
 *
 * A driver emulates listener_http.c: unconsumed bytes are kept and fed
 * again with the next piece appended, heads and bodies alternate, and the
 * body spans are collected (optionally taken one byte at a time, giving
 * the rest back with http_unread()).  Every stream is fed whole, split in
 * two at every offset and byte by byte; each run must give the same
 * requests, bodies and error.
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

#include "logsink/body.h"
#include "logsink/http.h"
#include "logsink/record.h"

#define MAXREQ 8

struct result {
	int nreq;
	char path[MAXREQ][64];
	char body[MAXREQ][512];
	size_t blen[MAXREQ];
	bool keep_alive[MAXREQ], expect[MAXREQ];
	char type[MAXREQ][64];
	enum http_coding coding[MAXREQ];
	char token[MAXREQ][64];
	enum http_error err;
};

struct drv {
	struct http_parser p;
	char pend[8192];
	size_t plen;
	bool trickle; /* take one body byte per span, unread the rest */
	struct result r;
};

static void
drv_init(struct drv *d, size_t max_header, int max_headers, bool trickle)
{
	struct http_limits lim = { max_header, max_headers };

	memset(d, 0, sizeof(*d));
	http_parser_init(&d->p, &lim);
	d->trickle = trickle;
}

/* The request just parsed: its head fields. */
static void
drv_head(struct drv *d)
{
	struct result *r = &d->r;
	int i = r->nreq;

	assert_true(i < MAXREQ);
	snprintf(r->path[i], sizeof(r->path[i]), "%.63s", d->p.req.path);
	snprintf(
	    r->type[i], sizeof(r->type[i]), "%.63s", d->p.req.content_type);
	snprintf(r->token[i], sizeof(r->token[i]), "%.63s",
	    d->p.req.bearer ? d->p.req.token : "");
	r->keep_alive[i] = d->p.req.keep_alive;
	r->expect[i] = d->p.req.expect_continue;
	r->coding[i] = d->p.req.coding;
}

/* One feed round over what is pending; returns bytes consumed. */
static size_t
drv_step(struct drv *d, bool eof)
{
	struct result *r = &d->r;
	const char *data;
	size_t n, dlen, take;

	if (d->p.state == HTTP_PS_HEAD) {
		n = http_feed_head(&d->p, d->pend, d->plen, eof);
		if (d->p.state != HTTP_PS_HEAD && d->p.state != HTTP_PS_ERROR)
			drv_head(d);
	} else {
		n = http_feed_body(&d->p, d->pend, d->plen, eof, &data, &dlen);
		if (dlen > 0) {
			take = d->trickle ? 1 : dlen;
			assert_true(r->blen[r->nreq] + take <= 512);
			memcpy(r->body[r->nreq] + r->blen[r->nreq], data, take);
			r->blen[r->nreq] += take;
			http_unread(&d->p, dlen - take);
			n -= dlen - take;
		}
	}
	if (d->p.state == HTTP_PS_DONE) {
		r->nreq++;
		http_parser_next(&d->p);
	}
	if (d->p.state == HTTP_PS_ERROR)
		r->err = d->p.err;
	assert_true(n <= d->plen);
	memmove(d->pend, d->pend + n, d->plen - n);
	d->plen -= n;
	return n;
}

/* Appends a piece and feeds until nothing more is consumed. */
static void
drv_feed(struct drv *d, const char *s, size_t n, bool eof)
{
	assert_true(d->plen + n <= sizeof(d->pend));
	memcpy(d->pend + d->plen, s, n);
	d->plen += n;
	while (d->p.state != HTTP_PS_ERROR) {
		if (drv_step(d, eof) == 0 && d->p.state != HTTP_PS_DONE)
			break;
	}
}

static void
run_split(const char *in, size_t len, size_t cut, size_t step, bool trickle,
    size_t max_header, struct result *out)
{
	struct drv *d = calloc(1, sizeof(*d));
	size_t off = 0, n;

	assert_non_null(d);
	drv_init(d, max_header, 20, trickle);
	if (cut > 0) {
		drv_feed(d, in, cut, false);
		off = cut;
	}
	while (off < len) {
		n = step == 0 || len - off < step ? len - off : step;
		drv_feed(d, in + off, n, false);
		off += n;
	}
	drv_feed(d, "", 0, true);
	*out = d->r;
	free(d);
}

/* Whole, every split, byte by byte, trickled: all the same as whole. */
static void
check_all(const char *in, size_t len, size_t max_header, struct result *want)
{
	struct result *got = calloc(1, sizeof(*got));
	size_t cut;

	assert_non_null(got);
	run_split(in, len, 0, 0, false, max_header, want);
	for (cut = 1; cut < len; cut++) {
		run_split(in, len, cut, 0, cut % 2 == 0, max_header, got);
		assert_int_equal(got->nreq, want->nreq);
		assert_int_equal(got->err, want->err);
		assert_memory_equal(got, want, sizeof(*got));
	}
	run_split(in, len, 0, 1, false, max_header, got);
	assert_memory_equal(got, want, sizeof(*got));
	run_split(in, len, 0, 1, true, max_header, got);
	assert_memory_equal(got, want, sizeof(*got));
	free(got);
}

#define S(x) x, sizeof(x) - 1

static void
test_pipelined_length_and_chunked(void **state)
{
	static const char in[] =
	    "\r\nPOST /ingest?x=1 HTTP/1.1\r\nHost: a\r\n"
	    "Content-Type: Application/X-NDJSON; charset=utf-8\r\n"
	    "Content-Length: 11\r\nAuthorization: Bearer  tok-1 \r\n\r\n"
	    "hello world"
	    "POST /u HTTP/1.1\nTransfer-Encoding: chunked\n"
	    "Content-Encoding: gzip\nExpect: 100-continue\n"
	    "Connection: close\n\n"
	    "5;ext=1\r\nabcde\r\n0A\r\n0123456789\r\n000\r\n"
	    "X-Trailer: 1\r\n\r\n"
	    "GET http://h:80/abs/path HTTP/1.0\r\n\r\n";
	struct result *r = calloc(1, sizeof(*r));

	(void)state;
	check_all(S(in), 1024, r);
	assert_int_equal(r->err, HTTP_ERR_NONE);
	assert_int_equal(r->nreq, 3);
	assert_string_equal(r->path[0], "/ingest");
	assert_string_equal(r->type[0], "application/x-ndjson");
	assert_string_equal(r->token[0], "tok-1");
	assert_true(r->keep_alive[0]);
	assert_int_equal(r->blen[0], 11);
	assert_memory_equal(r->body[0], "hello world", 11);
	assert_string_equal(r->path[1], "/u");
	assert_false(r->keep_alive[1]);
	assert_true(r->expect[1]);
	assert_int_equal(r->coding[1], HTTP_CODING_GZIP);
	assert_int_equal(r->blen[1], 15);
	assert_memory_equal(r->body[1], "abcde0123456789", 15);
	assert_string_equal(r->path[2], "/abs/path");
	assert_false(r->keep_alive[2]);
	free(r);
}

/* One stream, its expected error after nreq whole requests. */
static void
expect_error(const char *in, size_t len, size_t max_header, int nreq,
    enum http_error err)
{
	struct result *r = calloc(1, sizeof(*r));

	check_all(in, len, max_header, r);
	assert_int_equal(r->nreq, nreq);
	assert_int_equal(r->err, err);
	free(r);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error(S("GET / HTTP/2.0\r\n\r\n"), 1024, 0, HTTP_ERR_VERSION);
	expect_error(S("GET / FOO\r\n\r\n"), 1024, 0, HTTP_ERR_REQUEST_LINE);
	expect_error(
	    S("GET  / HTTP/1.1\r\n\r\n"), 1024, 0, HTTP_ERR_REQUEST_LINE);
	expect_error(
	    S("GET nopath HTTP/1.1\r\n\r\n"), 1024, 0, HTTP_ERR_REQUEST_LINE);
	expect_error(
	    S("G@T / HTTP/1.1\r\n\r\n"), 1024, 0, HTTP_ERR_REQUEST_LINE);
	expect_error(
	    S("GET / HTTP/1.1\r\nNo colon\r\n\r\n"), 1024, 0, HTTP_ERR_HEADER);
	expect_error(S("GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n"), 1024, 0,
	    HTTP_ERR_HEADER);
	expect_error(S("GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n"), 1024, 0,
	    HTTP_ERR_HEADER);
	expect_error(S("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), 1024,
	    0, HTTP_ERR_LENGTH);
	expect_error(S("POST / HTTP/1.1\r\nContent-Length: "
		       "99999999999999999999999\r\n\r\n"),
	    1024, 0, HTTP_ERR_LENGTH);
	expect_error(S("POST / HTTP/1.1\r\nContent-Length: 1\r\n"
		       "Content-Length: 2\r\n\r\n"),
	    1024, 0, HTTP_ERR_LENGTH);
	expect_error(S("POST / HTTP/1.1\r\nContent-Length: 1\r\n"
		       "Transfer-Encoding: chunked\r\n\r\n"),
	    1024, 0, HTTP_ERR_LENGTH);
	expect_error(S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
	    1024, 0, HTTP_ERR_LENGTH);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, "
		       "chunked\r\n\r\n"),
	    1024, 0, HTTP_ERR_TRANSFER_CODING);
	expect_error(S("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n"), 1024, 0,
	    HTTP_ERR_EXPECT);
	expect_error(S("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"), 1024,
	    0, HTTP_ERR_TRUNCATED);
	expect_error(
	    S("POST / HTTP/1.1\r\nHost: x"), 1024, 0, HTTP_ERR_TRUNCATED);
}

static void
test_chunked_edges(void **state)
{
	(void)state;
	/* Overflow-safe sizes: 2^64 + 1 in hex, and many digits of 0. */
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "10000000000000001\r\n"),
	    1024, 0, HTTP_ERR_CHUNK_SIZE);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "ffffffffffffffffffff\r\n"),
	    1024, 0, HTTP_ERR_CHUNK_SIZE);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "00000000000000000000000000000001\r\nx\r\n0\r\n\r\n"),
	    1024, 1, HTTP_ERR_NONE);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "zz\r\n"),
	    1024, 0, HTTP_ERR_CHUNK);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "\r\n"),
	    1024, 0, HTTP_ERR_CHUNK);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "2\r\nabX\r\n"),
	    1024, 0, HTTP_ERR_CHUNK);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "2\r\nab\r\n0\r\nnot a field\r\n\r\n"),
	    1024, 0, HTTP_ERR_HEADER);
	expect_error(S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "2\r\nab\r\n"),
	    1024, 0, HTTP_ERR_TRUNCATED);
}

static void
test_limits(void **state)
{
	char big[2048];
	int n;

	(void)state;
	/* A head over the limit, with its end and without. */
	n = snprintf(
	    big, sizeof(big), "GET / HTTP/1.1\r\nX: %0300d\r\n\r\n", 0);
	expect_error(big, (size_t)n, 200, 0, HTTP_ERR_HEADER_TOO_LARGE);
	n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: %0300d", 0);
	expect_error(big, (size_t)n, 200, 0, HTTP_ERR_HEADER_TOO_LARGE);
	expect_error(S("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), 1024,
	    1, HTTP_ERR_NONE);
	/* A chunk-size line longer than the head limit (extensions). */
	n = snprintf(big, sizeof(big),
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;%0300d\r\n",
	    0);
	expect_error(big, (size_t)n, 200, 0, HTTP_ERR_CHUNK_LINE);
	/* A path too long for HTTP_PATH_MAX. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	memcpy(big + 1500, " HTTP/1.1\r\n\r\n", 13);
	expect_error(big, 1513, 2048, 0, HTTP_ERR_URI_TOO_LONG);
}

static void
test_too_many_headers(void **state)
{
	struct http_parser p;
	struct http_limits lim = { 4096, 2 };
	static const char in[] =
	    "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

	(void)state;
	http_parser_init(&p, &lim);
	assert_int_equal(http_feed_head(&p, S(in), false), sizeof(in) - 1);
	assert_int_equal(p.state, HTTP_PS_ERROR);
	assert_int_equal(p.err, HTTP_ERR_TOO_MANY_HEADERS);
	assert_int_equal(http_error_status(p.err), 431);
}

static void
test_response_and_tokens(void **state)
{
	char out[512], date[30];
	struct http_answer a = { 503, NULL, 5, "X-A: b\r\n", true, NULL };
	size_t n;

	(void)state;
	n = http_format_response(out, sizeof(out), &a, "busy\n", 5);
	out[n] = '\0';
	assert_string_equal(out,
	    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\n"
	    "X-A: b\r\nConnection: close\r\n\r\nbusy\n");
	a = (struct http_answer){ 200, NULL, 0, NULL, false, NULL };
	n = http_format_response(out, sizeof(out), &a, NULL, 0);
	out[n] = '\0';
	assert_string_equal(
	    out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(http_format_response(out, 20, &a, NULL, 0), 0);
	http_date(date, 1764633600); /* 2025-12-02 00:00:00 UTC */
	assert_string_equal(date, "Tue, 02 Dec 2025 00:00:00 GMT");
	a.date = date;
	n = http_format_response(out, sizeof(out), &a, NULL, 0);
	out[n] = '\0';
	assert_string_equal(out,
	    "HTTP/1.1 200 OK\r\nDate: Tue, 02 Dec 2025 00:00:00 GMT\r\n"
	    "Content-Length: 0\r\n\r\n");
	assert_true(http_token_equal("abc", 3, "abc", 3));
	assert_false(http_token_equal("abd", 3, "abc", 3));
	assert_false(http_token_equal("ab", 2, "abc", 3));
	assert_false(http_token_equal("abcd", 4, "abc", 3));
	assert_int_equal(http_status_code(http_status_index(415)), 415);
	assert_int_equal(http_status_index(299), HTTP_NSTATUS - 1);
	assert_string_equal(
	    http_reason_name(HTTP_REF_QUEUE_FULL), "queue-full");
	assert_string_equal(http_reason_name(HTTP_ERR_CHUNK), "bad-chunk");
}

/* ------------------------------------------------------------------ */
/* body_json */

struct recs {
	int n;
	char msg[64][128];
	int stop_every; /* the callback stops after every k-th record */
};

static bool
on_rec(void *arg, struct record *rec)
{
	struct recs *r = arg;

	assert_true(r->n < 64);
	snprintf(r->msg[r->n], sizeof(r->msg[r->n]), "%.*s",
	    (int)rec->message.len, rec->message.ptr ? rec->message.ptr : "");
	r->n++;
	return r->stop_every == 0 || r->n % r->stop_every != 0;
}

/* Feeds body through dec in pieces of step (0: whole) as the listener
 * does; returns the decoder's error or NULL. */
static const char *
decode(const struct body_decoder *dec, const char *body, size_t len,
    size_t step, int stop_every, struct recs *r)
{
	struct body_limits lim = { 64, 4096, 4 };
	void *st = dec->new (&lim);
	char buf[4096];
	size_t have = 0, off = 0, n, used, need;
	const char *err;
	bool end;
	int before;

	assert_non_null(st);
	memset(r, 0, sizeof(*r));
	r->stop_every = stop_every;
	for (;;) {
		n = step == 0 ? len - off : step;
		if (n > len - off)
			n = len - off;
		memcpy(buf + have, body + off, n);
		have += n;
		off += n;
		end = off == len;
		/* Until no progress; after a stop the caller feeds again
		 * (possibly with nothing new). */
		for (;;) {
			before = r->n;
			used = dec->feed(st, buf, have, end, &need, on_rec, r);
			assert_true(used <= have);
			memmove(buf, buf + used, have - used);
			have -= used;
			if (dec->error(st) != NULL ||
			    (used == 0 && r->n == before))
				break;
		}
		if (end || dec->error(st) != NULL)
			break;
	}
	err = dec->error(st);
	if (err == NULL)
		assert_int_equal(have, 0);
	dec->free(st);
	return err;
}

static void
check_decode(const struct body_decoder *dec, const char *body, size_t len,
    const char *want_err, int want_n, const char *const *want)
{
	struct recs *r = calloc(1, sizeof(*r));
	const char *err;
	size_t step;
	int i, stop;

	assert_non_null(r);
	for (stop = 0; stop <= 1; stop++)
		for (step = 0; step <= len; step += step < 8 ? 1 : 7) {
			err = decode(dec, body, len, step, stop, r);
			if (want_err == NULL)
				assert_null(err);
			else
				assert_string_equal(err, want_err);
			assert_int_equal(r->n, want_n);
			for (i = 0; i < want_n && want != NULL; i++)
				assert_string_equal(r->msg[i], want[i]);
			if (step == 0 && len == 0)
				break;
		}
	free(r);
}

static void
test_json_lines(void **state)
{
	static const char *const want[] = { "one", "plain two", "three" };
	static const char in[] = "{\"message\":\"one\"}\r\n\nplain two\n"
				 "{\"msg\":\"three\"}";

	(void)state;
	check_decode(&body_json_lines, S(in), NULL, 3, want);
	check_decode(&body_json_lines, "", 0, NULL, 0, NULL);
	check_decode(&body_json_lines,
	    S("ok\n0123456789012345678901234567890"
	      "1234567890123456789012345678901234\n"),
	    "entry-too-large", 1, NULL);
}

static void
test_json_array_and_values(void **state)
{
	static const char *const want[] = { "a", "b\"]", "c" };
	static const char arr[] = " [ {\"message\":\"a\"},\n{\"message\":"
				  "\"b\\\"]\"}, {\"message\" : \"c\"} ] \n";
	static const char seq[] = "{\"message\":\"a\"}\n{\n \"message\": "
				  "\"b\\\"]\"\n}{\"message\":\"c\"}";

	(void)state;
	check_decode(&body_json, S(arr), NULL, 3, want);
	check_decode(&body_json, S(seq), NULL, 3, NULL);
	check_decode(&body_json, S("[]"), NULL, 0, NULL);
	check_decode(&body_json, S("  "), NULL, 0, NULL);
	check_decode(&body_json, S("[1, \"s\", true]"), NULL, 3, NULL);
	check_decode(
	    &body_json, S("[{\"message\":\"a\"},]"), "bad-json", 1, NULL);
	check_decode(&body_json, S("[{]"), "bad-json", 0, NULL);
	check_decode(&body_json, S("[{\"a\":1}"), "bad-json", 1, NULL);
	check_decode(&body_json, S("[{\"a\":1}] x"), "bad-json", 1, NULL);
	check_decode(&body_json, S("[[[[[[1]]]]]]"), "too-deep", 0, NULL);
	check_decode(&body_json, S("[\"a\x01\"]"), "bad-json", 0, NULL);
	check_decode(&body_json,
	    S("[{\"message\":\"0123456789012345678901234567890123456789"
	      "0123456789012345678901234\"}]"),
	    "entry-too-large", 0, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_length_and_chunked),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_chunked_edges),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_response_and_tokens),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_json_array_and_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
