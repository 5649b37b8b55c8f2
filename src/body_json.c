/*
 * body_json: HTTP bodies of JSON and text lines (body.h).
 *
 * body_json_lines (application/x-ndjson, text/plain, no Content-Type):
 * one record per line (LF, a CR before it dropped; empty lines skipped),
 * each line through parser_parse(PARSER_AUTO) exactly as a line on TCP,
 * so JSON lines get the same field mapping and other lines are parsed as
 * syslog, logfmt or plain text.
 *
 * body_json (application/json): a JSON array whose elements are one
 * record each, or a sequence of JSON values (one object, NDJSON, or
 * pretty-printed objects one after the other); each value's text goes to
 * the parser like a JSON line.  Values are found by a resumable
 * structural scan (strings, escapes, nesting up to max_depth), so a body
 * is never held whole: only the value being read, at most
 * max_entry_bytes.
 *
 * Errors: "entry-too-large" (a line or value over max_entry_bytes),
 * "too-deep" (nesting), "bad-json" (not an array or values; a bracket
 * that does not match; a control byte in a string; bytes after the
 * array).  The entries before an error are emitted.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/body.h"
#include "logsink/buf.h"
#include "logsink/clock.h"
#include "logsink/parser.h"
#include "logsink/record.h"

#define JSCAN_MAX_DEPTH 256

/* The scan of one JSON value, resumable: pos is relative to its start. */
struct jscan {
	size_t pos;
	int depth;
	bool in_str, esc, in_lit;
	char stack[JSCAN_MAX_DEPTH];
};

enum bj_mode {
	BJ_START,       /* before the first value: '[' or a value */
	BJ_ARRAY_FIRST, /* after '[': a value or ']' */
	BJ_ARRAY_VALUE, /* after ',': a value */
	BJ_ARRAY_SEP,   /* after a value: ',' or ']' */
	BJ_TAIL,        /* after ']': white space only */
	BJ_SEQ,         /* a sequence of values */
	BJ_LINES,       /* body_json_lines */
};

/* One body's state; owned by the listener's request. */
struct bj {
	struct body_limits lim;
	enum bj_mode mode;
	const char *err;
	struct jscan scan;
	struct record rec;
	struct buf scratch;
};

static void *
bj_new_mode(const struct body_limits *lim, enum bj_mode mode)
{
	struct bj *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->lim = *lim;
	if (s->lim.max_depth <= 0 || s->lim.max_depth > JSCAN_MAX_DEPTH)
		s->lim.max_depth = JSCAN_MAX_DEPTH;
	s->mode = mode;
	return s;
}

static void *
bj_new(const struct body_limits *lim)
{
	return bj_new_mode(lim, BJ_START);
}

static void *
bj_lines_new(const struct body_limits *lim)
{
	return bj_new_mode(lim, BJ_LINES);
}

static void
bj_free(void *st)
{
	struct bj *s = st;

	if (s == NULL)
		return;
	buf_free(&s->scratch);
	free(s);
}

static const char *
bj_error(const void *st)
{
	return ((const struct bj *)st)->err;
}

static uint64_t
bj_rejected(const void *st)
{
	(void)st;
	return 0;
}

/* One entry's text through the parser, as a TCP line. */
static bool
bj_emit(struct bj *s, const char *text, size_t n, body_record_cb cb, void *arg)
{
	bool more;

	record_clear_parsed(&s->rec);
	s->rec.received_us = clock_real_us(); /* for year-less timestamps */
	if (parser_parse(&s->rec, text, n, PARSER_AUTO, &s->scratch) == -1) {
		record_clear_parsed(&s->rec);
		s->rec.message.ptr = text; /* the plain message, unparsed */
		s->rec.message.len = n;
	}
	more = cb(arg, &s->rec);
	if (s->scratch.cap > 64 * 1024)
		buf_free(&s->scratch);
	return more;
}

static size_t
bj_fail(struct bj *s, const char *why, size_t len)
{
	s->err = why;
	return len;
}

/* body_json_lines: LF-terminated lines. */
static size_t
bj_lines(struct bj *s, const char *buf, size_t len, bool end, size_t *need,
    body_record_cb cb, void *arg)
{
	size_t off = 0, n, next;
	const char *lf;

	while (off < len) {
		lf = memchr(buf + off, '\n', len - off);
		if (lf == NULL && !end) {
			if (len - off > s->lim.max_entry_bytes)
				return bj_fail(s, "entry-too-large", len);
			if (off == 0)
				*need = len + 1;
			return off;
		}
		next = lf != NULL ? (size_t)(lf - buf) + 1 : len;
		n = (lf != NULL ? (size_t)(lf - buf) : len) - off;
		if (n > 0 && buf[off + n - 1] == '\r')
			n--;
		if (n > s->lim.max_entry_bytes)
			return bj_fail(s, "entry-too-large", len);
		if (n > 0 && !bj_emit(s, buf + off, n, cb, arg))
			return next;
		off = next;
	}
	return off;
}

static bool
is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static bool
is_lit(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '+' || ch == '.';
}

/* A closing bracket at depth > 0. */
static int
jscan_close(struct jscan *j, char ch)
{
	if (j->depth == 0 || j->stack[j->depth - 1] != (ch == '}' ? '{' : '['))
		return -1;
	j->depth--;
	return j->depth == 0 ? 1 : 0;
}

/*
 * Scans the value at buf[0..len) from j->pos: 1 when it ends at j->pos,
 * 0 when more bytes are needed, -1 when it is not JSON, -2 when nested
 * deeper than max_depth.
 */
static int
jscan_run(struct jscan *j, const char *buf, size_t len, bool end, int max_depth)
{
	char ch;
	int rc;

	for (; j->pos < len; j->pos++) {
		ch = buf[j->pos];
		if (j->in_str) {
			if (j->esc)
				j->esc = false;
			else if (ch == '\\')
				j->esc = true;
			else if (ch == '"')
				j->in_str = false;
			else if ((unsigned char)ch < 0x20)
				return -1;
			if (!j->in_str && j->depth == 0) {
				j->pos++;
				return 1;
			}
			continue;
		}
		if (j->in_lit) {
			if (is_lit(ch))
				continue;
			j->in_lit = false;
			if (j->depth == 0)
				return 1; /* the delimiter is not the value's */
		}
		switch (ch) {
		case '{':
		case '[':
			if (j->depth >= max_depth)
				return -2;
			j->stack[j->depth++] = ch;
			break;
		case '}':
		case ']':
			if ((rc = jscan_close(j, ch)) != 0) {
				j->pos += rc > 0;
				return rc;
			}
			break;
		case '"':
			j->in_str = true;
			break;
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			break;
		case ',':
		case ':':
			if (j->depth == 0)
				return -1;
			break;
		default:
			if (!is_lit(ch))
				return -1;
			j->in_lit = true;
		}
	}
	if (end && j->in_lit && j->depth == 0) {
		j->in_lit = false;
		return 1;
	}
	return end ? -1 : 0;
}

/*
 * The value starting at buf[0]: emits it and returns its length; 0 when
 * more bytes are needed (*need set) or when it is refused (s->err).
 */
static size_t
bj_value(struct bj *s, const char *buf, size_t len, bool end, size_t *need,
    body_record_cb cb, void *arg, bool *more)
{
	int rc = jscan_run(&s->scan, buf, len, end, s->lim.max_depth);
	size_t n = s->scan.pos;

	*more = true;
	if (rc == 0) {
		if (len > s->lim.max_entry_bytes)
			s->err = "entry-too-large";
		*need = len + 1;
		return 0;
	}
	if (rc < 0) {
		s->err = rc == -2 ? "too-deep" : "bad-json";
		return 0;
	}
	if (n > s->lim.max_entry_bytes) {
		s->err = "entry-too-large";
		return 0;
	}
	memset(&s->scan, 0, sizeof(s->scan));
	*more = bj_emit(s, buf, n, cb, arg);
	return n;
}

/* The next byte that is not white space, from *off; false at the end. */
static bool
bj_skip_ws(const char *buf, size_t len, size_t *off)
{
	while (*off < len && is_ws(buf[*off]))
		(*off)++;
	return *off < len;
}

/* A value where the grammar wants one; false: stop. */
static bool
bj_step_value(struct bj *s, const char *buf, size_t len, bool end, size_t *off,
    size_t *need, body_record_cb cb, void *arg)
{
	size_t n;
	bool more;

	if (buf[*off] == ']' || buf[*off] == ',') {
		s->err = "bad-json";
		return false;
	}
	n = bj_value(s, buf + *off, len - *off, end, need, cb, arg, &more);
	if (n == 0) {
		if (*off > 0)
			*need = 0;
		return false;
	}
	*off += n;
	if (s->mode != BJ_SEQ)
		s->mode = BJ_ARRAY_SEP;
	return more;
}

/* One step of the array/sequence grammar at buf[off]; false: stop. */
static bool
bj_step(struct bj *s, const char *buf, size_t len, bool end, size_t *off,
    size_t *need, body_record_cb cb, void *arg)
{
	char ch = buf[*off];

	switch (s->mode) {
	case BJ_START:
		if (ch == '[') {
			s->mode = BJ_ARRAY_FIRST;
			(*off)++;
		} else {
			s->mode = BJ_SEQ;
		}
		return true;
	case BJ_ARRAY_SEP:
		if (ch != ',' && ch != ']') {
			s->err = "bad-json";
			return false;
		}
		s->mode = ch == ',' ? BJ_ARRAY_VALUE : BJ_TAIL;
		(*off)++;
		return true;
	case BJ_TAIL:
		s->err = "bad-json";
		return false;
	case BJ_ARRAY_FIRST:
		if (ch != ']')
			return bj_step_value(
			    s, buf, len, end, off, need, cb, arg);
		s->mode = BJ_TAIL;
		(*off)++;
		return true;
	case BJ_ARRAY_VALUE:
	case BJ_SEQ:
		return bj_step_value(s, buf, len, end, off, need, cb, arg);
	case BJ_LINES:
		break;
	}
	return false;
}

static size_t
bj_feed(void *st, const char *buf, size_t len, bool end, size_t *need,
    body_record_cb cb, void *arg)
{
	struct bj *s = st;
	size_t off = 0;

	*need = 0;
	if (s->err != NULL)
		return len;
	if (s->mode == BJ_LINES)
		return bj_lines(s, buf, len, end, need, cb, arg);
	while (bj_skip_ws(buf, len, &off)) {
		if (!bj_step(s, buf, len, end, &off, need, cb, arg))
			break;
	}
	if (s->err != NULL)
		return len;
	if (end && off == len && s->mode != BJ_TAIL && s->mode != BJ_SEQ &&
	    s->mode != BJ_START)
		return bj_fail(s, "bad-json", len); /* an unclosed array */
	return off;
}

const struct body_decoder body_json = {
	.name = "json",
	.new = bj_new,
	.free = bj_free,
	.feed = bj_feed,
	.error = bj_error,
	.answer = NULL,
	.rejected = bj_rejected,
};

const struct body_decoder body_json_lines = {
	.name = "json-lines",
	.new = bj_lines_new,
	.free = bj_free,
	.feed = bj_feed,
	.error = bj_error,
	.answer = NULL,
	.rejected = bj_rejected,
};
