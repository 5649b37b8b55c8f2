/*
 * http: the HTTP/1.1 request parser and response formatter
 * (include/logsink/http.h).  References are to RFC 9112 (HTTP/1.1
 * message syntax) and RFC 9110 (semantics).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "logsink/http.h"

/* A chunk size past this is refused (no body is ever that long; and no
 * shift or sum below can overflow). */
#define HTTP_CHUNK_SIZE_MAX (1ULL << 60)

void
http_parser_init(struct http_parser *p, const struct http_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->lim = *lim;
	if (p->lim.max_header_bytes < 64)
		p->lim.max_header_bytes = 64;
	if (p->lim.max_headers < 1)
		p->lim.max_headers = 1;
}

void
http_parser_next(struct http_parser *p)
{
	struct http_limits lim = p->lim;

	http_parser_init(p, &lim);
}

bool
http_in_body(const struct http_parser *p)
{
	return p->state >= HTTP_PS_LENGTH && p->state <= HTTP_PS_TRAILER;
}

static enum http_pstate
http_fail(struct http_parser *p, enum http_error err)
{
	p->err = err;
	p->state = HTTP_PS_ERROR;
	return p->state;
}

/* RFC 9110 section 5.6.2: tchar. */
static bool
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Copies s[0..n) trimmed of spaces and tabs into out (cap, cut). */
static void
copy_trimmed(char *out, size_t cap, const char *s, size_t n, bool lower)
{
	size_t i, k = 0;

	while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	for (i = 0; i < n && k + 1 < cap; i++)
		out[k++] = lower && s[i] >= 'A' && s[i] <= 'Z'
		    ? (char)(s[i] - 'A' + 'a')
		    : s[i];
	out[k] = '\0';
}

/* Whether v[0..n) equals the word w, ignoring case and spaces around. */
static bool
value_is(const char *v, size_t n, const char *w)
{
	char t[32];

	if (n >= sizeof(t) + 16)
		return false;
	copy_trimmed(t, sizeof(t), v, n, true);
	return strcmp(t, w) == 0;
}

/*
 * Content-Length (RFC 9112 section 6.3): digits only; a repeated field
 * must carry the same value.  Overflow-safe.
 */
static enum http_pstate
head_length(struct http_parser *p, const char *v, size_t n)
{
	uint64_t x = 0;
	size_t i = 0, d = 0;

	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, d++) {
		if (x > (UINT64_MAX - 9) / 10)
			return http_fail(p, HTTP_ERR_LENGTH);
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	if (d == 0 || i != n ||
	    (p->req.has_length && x != p->req.content_length))
		return http_fail(p, HTTP_ERR_LENGTH);
	p->req.has_length = true;
	p->req.content_length = x;
	return p->state;
}

/* Transfer-Encoding: only "chunked", once (RFC 9112 section 6.1). */
static enum http_pstate
head_transfer_coding(struct http_parser *p, const char *v, size_t n)
{
	if (p->req.chunked || !value_is(v, n, "chunked"))
		return http_fail(p, HTTP_ERR_TRANSFER_CODING);
	p->req.chunked = true;
	return p->state;
}

/* Connection: a list of options; "close" and "keep-alive" matter. */
static void
head_connection(struct http_parser *p, const char *v, size_t n)
{
	size_t i = 0, j;

	while (i < n) {
		for (j = i; j < n && v[j] != ','; j++)
			;
		if (value_is(v + i, j - i, "close"))
			p->req.keep_alive = false;
		else if (value_is(v + i, j - i, "keep-alive") &&
		    p->req.minor == 0)
			p->req.keep_alive = true;
		i = j + 1;
	}
}

static void
head_content_type(struct http_parser *p, const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n);

	copy_trimmed(p->req.content_type, sizeof(p->req.content_type), v,
	    semi != NULL ? (size_t)(semi - v) : n, true);
}

static void
head_coding(struct http_parser *p, const char *v, size_t n)
{
	enum http_coding c;

	if (value_is(v, n, "gzip") || value_is(v, n, "x-gzip"))
		c = HTTP_CODING_GZIP;
	else if (value_is(v, n, "deflate"))
		c = HTTP_CODING_DEFLATE;
	else if (value_is(v, n, "identity"))
		c = HTTP_CODING_IDENTITY;
	else
		c = HTTP_CODING_OTHER;
	/* Two codings (two fields): not supported. */
	if (p->req.coding != HTTP_CODING_IDENTITY && c != HTTP_CODING_IDENTITY)
		c = HTTP_CODING_OTHER;
	if (c != HTTP_CODING_IDENTITY)
		p->req.coding = c;
}

/* Authorization: Bearer TOKEN (RFC 6750 section 2.1). */
static void
head_authorization(struct http_parser *p, const char *v, size_t n)
{
	size_t i = 0, k;

	p->req.has_auth = true;
	p->req.bearer = false;
	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	if (n - i < 7 || strncasecmp(v + i, "bearer ", 7) != 0)
		return;
	i += 7;
	while (i < n && v[i] == ' ')
		i++;
	while (n > i && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	k = n - i;
	if (k == 0 || k >= sizeof(p->req.token))
		return;
	memcpy(p->req.token, v + i, k);
	p->req.token[k] = '\0';
	p->req.bearer = true;
}

/* One header field line name ":" OWS value OWS (RFC 9112 section 5). */
static enum http_pstate
head_field(struct http_parser *p, const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);
	size_t nl, i;
	const char *v;

	if (colon == NULL || colon == s)
		return http_fail(p, HTTP_ERR_HEADER); /* also obs-fold */
	nl = (size_t)(colon - s);
	for (i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)s[i]))
			return http_fail(p, HTTP_ERR_HEADER);
	for (i = nl + 1; i < n; i++)
		if (s[i] == '\0' || s[i] == '\r')
			return http_fail(p, HTTP_ERR_HEADER);
	v = colon + 1;
	n -= nl + 1;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(s, name, nl) == 0)
	if (IS("content-length"))
		return head_length(p, v, n);
	if (IS("transfer-encoding"))
		return head_transfer_coding(p, v, n);
	if (IS("connection"))
		head_connection(p, v, n);
	else if (IS("content-type"))
		head_content_type(p, v, n);
	else if (IS("content-encoding"))
		head_coding(p, v, n);
	else if (IS("authorization"))
		head_authorization(p, v, n);
	else if (IS("expect")) {
		if (!value_is(v, n, "100-continue"))
			return http_fail(p, HTTP_ERR_EXPECT);
		p->req.expect_continue = true;
	}
#undef IS
	return p->state;
}

static enum http_method
method_of(const char *s, size_t n)
{
	static const struct {
		const char *name;
		enum http_method m;
	} methods[] = { { "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD },
		{ "POST", HTTP_M_POST }, { "PUT", HTTP_M_PUT },
		{ "OPTIONS", HTTP_M_OPTIONS } };
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i].name) == n &&
		    memcmp(methods[i].name, s, n) == 0)
			return methods[i].m;
	return HTTP_M_OTHER;
}

/*
 * The request target (RFC 9112 section 3.2): origin-form "/path?query"
 * or absolute-form "http://host/path"; the path is kept.
 */
static enum http_pstate
head_target(struct http_parser *p, const char *t, size_t n)
{
	const char *q, *slash;
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)t[i] <= ' ' || t[i] == 0x7f)
			return http_fail(p, HTTP_ERR_REQUEST_LINE);
	if (n > 7 &&
	    (strncasecmp(t, "http://", 7) == 0 ||
		(n > 8 && strncasecmp(t, "https://", 8) == 0))) {
		i = t[4] == ':' ? 7 : 8;
		slash = memchr(t + i, '/', n - i);
		if (slash == NULL) {
			t = "/";
			n = 1;
		} else {
			n -= (size_t)(slash - t);
			t = slash;
		}
	}
	if (n == 0 || (t[0] != '/' && !(n == 1 && t[0] == '*')))
		return http_fail(p, HTTP_ERR_REQUEST_LINE);
	if ((q = memchr(t, '?', n)) != NULL)
		n = (size_t)(q - t);
	if (n >= sizeof(p->req.path))
		return http_fail(p, HTTP_ERR_URI_TOO_LONG);
	memcpy(p->req.path, t, n);
	p->req.path[n] = '\0';
	return p->state;
}

/* METHOD SP request-target SP HTTP-version (RFC 9112 section 3). */
static enum http_pstate
head_request_line(struct http_parser *p, const char *s, size_t n)
{
	const char *sp1, *sp2;
	size_t ml, i;

	if ((sp1 = memchr(s, ' ', n)) == NULL || sp1 == s)
		return http_fail(p, HTTP_ERR_REQUEST_LINE);
	ml = (size_t)(sp1 - s);
	for (i = 0; i < ml; i++)
		if (!is_tchar((unsigned char)s[i]))
			return http_fail(p, HTTP_ERR_REQUEST_LINE);
	snprintf(p->req.method_text, sizeof(p->req.method_text), "%.*s",
	    (int)(ml < 15 ? ml : 15), s);
	p->req.method = method_of(s, ml);
	sp2 = memchr(sp1 + 1, ' ', n - ml - 1);
	if (sp2 == NULL)
		return http_fail(p, HTTP_ERR_REQUEST_LINE);
	i = (size_t)(s + n - (sp2 + 1)); /* the version's length */
	if (i != 8 || memcmp(sp2 + 1, "HTTP/", 5) != 0 || sp2[7] != '.' ||
	    sp2[6] < '0' || sp2[6] > '9' || sp2[8] < '0' || sp2[8] > '9')
		return http_fail(p, HTTP_ERR_REQUEST_LINE);
	if (sp2[6] != '1' || sp2[8] > '1')
		return http_fail(p, HTTP_ERR_VERSION);
	p->req.minor = sp2[8] - '0';
	p->req.keep_alive = p->req.minor == 1;
	return head_target(p, sp1 + 1, (size_t)(sp2 - sp1 - 1));
}

/* Where the next line of s[0..n) ends: the LF's index, or n. */
static size_t
line_end(const char *s, size_t n)
{
	const char *lf = memchr(s, '\n', n);

	return lf != NULL ? (size_t)(lf - s) : n;
}

/* The line s[0..n) without its CR before the LF. */
static size_t
line_len(const char *s, size_t n)
{
	return n > 0 && s[n - 1] == '\r' ? n - 1 : n;
}

/* Parses the whole head s[0..n) (ending in its empty line). */
static void
head_parse(struct http_parser *p, const char *s, size_t n)
{
	size_t off = 0, e, l;
	int nfields = 0;

	e = line_end(s, n);
	if (head_request_line(p, s, line_len(s, e)) == HTTP_PS_ERROR)
		return;
	for (off = e + 1; off < n; off = e + 1) {
		e = off + line_end(s + off, n - off);
		l = line_len(s + off, e - off);
		if (l == 0)
			break; /* the empty line */
		if (++nfields > p->lim.max_headers) {
			http_fail(p, HTTP_ERR_TOO_MANY_HEADERS);
			return;
		}
		if (head_field(p, s + off, l) == HTTP_PS_ERROR)
			return;
	}
	if (p->req.chunked && (p->req.has_length || p->req.minor == 0)) {
		/* RFC 9112 section 6.1: a request smuggling risk; refuse. */
		http_fail(p, HTTP_ERR_LENGTH);
		return;
	}
	if (p->req.chunked)
		p->state = HTTP_PS_CHUNK_SIZE;
	else if (p->req.has_length && p->req.content_length > 0)
		p->state = HTTP_PS_LENGTH;
	else
		p->state = HTTP_PS_DONE;
	p->remaining = p->req.content_length;
}

/*
 * The end of the empty line ending the head in buf[0..len), searched
 * from p->scanned; 0 if not there yet.
 */
static size_t
head_end(struct http_parser *p, const char *buf, size_t len)
{
	size_t i = p->scanned;
	const char *lf;

	while (i < len && (lf = memchr(buf + i, '\n', len - i)) != NULL) {
		i = (size_t)(lf - buf) + 1;
		if (i < len && buf[i] == '\n')
			return i + 1;
		if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
			return i + 2;
		if (i + 1 >= len) {
			i--; /* the LF again once more is here */
			break;
		}
	}
	p->scanned = i < len ? i : len;
	return 0;
}

size_t
http_feed_head(struct http_parser *p, const char *buf, size_t len, bool eof)
{
	size_t skip = 0, end;

	p->need = 0;
	if (p->state != HTTP_PS_HEAD)
		return 0;
	/* Empty lines before the request line (RFC 9112 section 2.2). */
	while (skip < len && (buf[skip] == '\r' || buf[skip] == '\n'))
		skip++;
	if (skip > 0) {
		p->scanned = 0;
		return skip;
	}
	if (len > 0 && (end = head_end(p, buf, len)) > 0) {
		if (end > p->lim.max_header_bytes) {
			http_fail(p, HTTP_ERR_HEADER_TOO_LARGE);
			return end;
		}
		head_parse(p, buf, end);
		p->scanned = 0;
		return end;
	}
	if (len > p->lim.max_header_bytes) {
		http_fail(p, HTTP_ERR_HEADER_TOO_LARGE);
		return len;
	}
	if (eof) {
		if (len > 0)
			http_fail(p, HTTP_ERR_TRUNCATED);
		return len;
	}
	p->need = len + 1;
	return 0;
}

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * chunk-size [ chunk-ext ] CRLF (RFC 9112 section 7.1): the size in hex,
 * then extensions we skip.  Sizes past HTTP_CHUNK_SIZE_MAX are refused
 * before they could overflow.
 */
static void
chunk_size_line(struct http_parser *p, const char *s, size_t n)
{
	uint64_t x = 0;
	size_t i;
	int d;

	for (i = 0; i < n && (d = hexval((unsigned char)s[i])) >= 0; i++) {
		if (x > (HTTP_CHUNK_SIZE_MAX >> 4)) {
			http_fail(p, HTTP_ERR_CHUNK_SIZE);
			return;
		}
		x = (x << 4) | (uint64_t)d;
	}
	if (i == 0 || (i < n && s[i] != ';' && s[i] != ' ' && s[i] != '\t')) {
		http_fail(p, HTTP_ERR_CHUNK);
		return;
	}
	for (; i < n; i++)
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n') {
			http_fail(p, HTTP_ERR_CHUNK);
			return;
		}
	if (x > HTTP_CHUNK_SIZE_MAX) {
		http_fail(p, HTTP_ERR_CHUNK_SIZE);
		return;
	}
	p->remaining = x;
	p->state = x == 0 ? HTTP_PS_TRAILER : HTTP_PS_CHUNK_DATA;
}

/*
 * One line of the chunked framing (a chunk size or a trailer field) at
 * buf[0..len): its length with the LF, or 0 with p->need set (or the
 * state ERROR when it outgrows the limit or the body ends).
 */
static size_t
framing_line(struct http_parser *p, const char *buf, size_t len, bool eof)
{
	const char *lf;
	size_t n, l;

	lf = len > p->scanned ? memchr(buf + p->scanned, '\n', len - p->scanned)
			      : NULL;
	if (lf == NULL) {
		p->scanned = len;
		if (len > p->lim.max_header_bytes)
			http_fail(p, HTTP_ERR_CHUNK_LINE);
		else if (eof)
			http_fail(p, HTTP_ERR_TRUNCATED);
		else
			p->need = len + 1;
		return 0;
	}
	p->scanned = 0;
	n = (size_t)(lf - buf) + 1;
	if (n > p->lim.max_header_bytes) {
		http_fail(p, HTTP_ERR_CHUNK_LINE);
		return n;
	}
	l = line_len(buf, n - 1);
	if (p->state == HTTP_PS_CHUNK_SIZE) {
		chunk_size_line(p, buf, l);
	} else if (l == 0) {
		p->state = HTTP_PS_DONE; /* the end of the trailer section */
	} else {
		p->trailer_bytes += n;
		if (p->trailer_bytes > p->lim.max_header_bytes)
			http_fail(p, HTTP_ERR_CHUNK_LINE);
		else if (memchr(buf, ':', l) == NULL)
			http_fail(p, HTTP_ERR_HEADER);
	}
	return n;
}

/* The CRLF after a chunk's data (a bare LF is taken too). */
static size_t
chunk_end(struct http_parser *p, const char *buf, size_t len, bool eof)
{
	if (len >= 1 && buf[0] == '\n') {
		p->state = HTTP_PS_CHUNK_SIZE;
		return 1;
	}
	if (len >= 2 && buf[0] == '\r' && buf[1] == '\n') {
		p->state = HTTP_PS_CHUNK_SIZE;
		return 2;
	}
	if (len >= 2 || (len == 1 && buf[0] != '\r'))
		http_fail(p, HTTP_ERR_CHUNK);
	else if (eof)
		http_fail(p, HTTP_ERR_TRUNCATED);
	else
		p->need = len + 1;
	return 0;
}

size_t
http_feed_body(struct http_parser *p, const char *buf, size_t len, bool eof,
    const char **data, size_t *dlen)
{
	size_t off = 0, n;
	uint64_t k;

	*data = NULL;
	*dlen = 0;
	p->need = 0;
	for (;;) {
		switch (p->state) {
		case HTTP_PS_LENGTH:
		case HTTP_PS_CHUNK_DATA:
			if (off == len) {
				if (eof)
					http_fail(p, HTTP_ERR_TRUNCATED);
				return off;
			}
			k = len - off < p->remaining ? len - off : p->remaining;
			*data = buf + off;
			*dlen = (size_t)k;
			p->remaining -= k;
			p->data_state = p->state;
			if (p->remaining == 0)
				p->state = p->state == HTTP_PS_LENGTH
				    ? HTTP_PS_DONE
				    : HTTP_PS_CHUNK_END;
			return off + (size_t)k;
		case HTTP_PS_CHUNK_SIZE:
		case HTTP_PS_TRAILER:
			n = framing_line(p, buf + off, len - off, eof);
			break;
		case HTTP_PS_CHUNK_END:
			n = chunk_end(p, buf + off, len - off, eof);
			break;
		default:
			return off;
		}
		off += n;
		if (n == 0 || p->state == HTTP_PS_ERROR)
			return off;
		p->need = 0;
	}
}

void
http_unread(struct http_parser *p, size_t n)
{
	if (n == 0)
		return;
	p->remaining += n;
	p->state = p->data_state;
}

const char *
http_error_name(enum http_error err)
{
	static const char *const names[HTTP_NERRORS] = {
		[HTTP_ERR_NONE] = "ok",
		[HTTP_ERR_REQUEST_LINE] = "bad-request-line",
		[HTTP_ERR_HEADER] = "bad-header",
		[HTTP_ERR_HEADER_TOO_LARGE] = "header-too-large",
		[HTTP_ERR_TOO_MANY_HEADERS] = "too-many-headers",
		[HTTP_ERR_URI_TOO_LONG] = "uri-too-long",
		[HTTP_ERR_VERSION] = "bad-version",
		[HTTP_ERR_LENGTH] = "bad-length",
		[HTTP_ERR_TRANSFER_CODING] = "bad-transfer-coding",
		[HTTP_ERR_EXPECT] = "bad-expect",
		[HTTP_ERR_CHUNK] = "bad-chunk",
		[HTTP_ERR_CHUNK_LINE] = "chunk-line-too-long",
		[HTTP_ERR_CHUNK_SIZE] = "chunk-too-large",
		[HTTP_ERR_TRUNCATED] = "truncated",
	};

	return (unsigned)err < HTTP_NERRORS ? names[err] : "unknown";
}

const char *
http_reason_name(int reason)
{
	static const char *const names[HTTP_NREASONS - HTTP_NERRORS] = {
		"unauthorized",
		"no-route",
		"method",
		"no-length",
		"body-too-large",
		"media-type",
		"content-encoding",
		"bad-body",
		"entry-too-large",
		"bad-compression",
		"queue-full",
		"db-down",
		"out-of-memory",
		"answer-timeout",
		"header-timeout",
		"body-timeout",
		"shutdown",
	};

	if (reason >= 0 && reason < HTTP_NERRORS)
		return http_error_name((enum http_error)reason);
	if (reason >= HTTP_NERRORS && reason < HTTP_NREASONS)
		return names[reason - HTTP_NERRORS];
	return "unknown";
}

int
http_error_status(enum http_error err)
{
	switch (err) {
	case HTTP_ERR_NONE:
		return 200;
	case HTTP_ERR_HEADER_TOO_LARGE:
	case HTTP_ERR_TOO_MANY_HEADERS:
		return 431;
	case HTTP_ERR_URI_TOO_LONG:
		return 414;
	case HTTP_ERR_VERSION:
		return 505;
	case HTTP_ERR_TRANSFER_CODING:
		return 501;
	case HTTP_ERR_EXPECT:
		return 417;
	case HTTP_ERR_CHUNK_SIZE:
		return 413;
	default:
		return 400;
	}
}

static const struct {
	int status;
	const char *reason;
} statuses[HTTP_NSTATUS - 1] = {
	{ 200, "OK" },
	{ 204, "No Content" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 408, "Request Timeout" },
	{ 411, "Length Required" },
	{ 413, "Content Too Large" },
	{ 414, "URI Too Long" },
	{ 415, "Unsupported Media Type" },
	{ 417, "Expectation Failed" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 503, "Service Unavailable" },
	{ 505, "HTTP Version Not Supported" },
};

int
http_status_index(int status)
{
	int i;

	for (i = 0; i < HTTP_NSTATUS - 1; i++)
		if (statuses[i].status == status)
			return i;
	return HTTP_NSTATUS - 1;
}

int
http_status_code(int index)
{
	return index >= 0 && index < HTTP_NSTATUS - 1 ? statuses[index].status
						      : 0;
}

const char *
http_reason(int status)
{
	int i = http_status_index(status);

	return i < HTTP_NSTATUS - 1 ? statuses[i].reason : "Unknown";
}

size_t
http_format_response(char *out, size_t cap, const struct http_answer *a,
    const char *body, size_t blen)
{
	int n;
	char retry[48] = "", type[160] = "", date[48] = "";

	if (a->date != NULL)
		snprintf(date, sizeof(date), "Date: %s\r\n", a->date);
	if (a->retry_after_s > 0)
		snprintf(retry, sizeof(retry), "Retry-After: %d\r\n",
		    a->retry_after_s);
	if (blen > 0)
		snprintf(type, sizeof(type), "Content-Type: %s\r\n",
		    a->content_type != NULL ? a->content_type
					    : "text/plain; charset=utf-8");
	n = snprintf(out, cap,
	    "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n%s%s%s%s\r\n",
	    a->status, http_reason(a->status), date, blen, type, retry,
	    a->fields != NULL ? a->fields : "",
	    a->close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= cap || cap - (size_t)n < blen)
		return 0;
	if (blen > 0)
		memcpy(out + n, body, blen);
	return (size_t)n + blen;
}

void
http_date(char out[30], int64_t t)
{
	static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
		"Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[96];
	int n;

	if (gmtime_r(&tt, &tm) == NULL || tm.tm_year > 8099 ||
	    tm.tm_year < -1899) {
		tt = 0; /* out of range: the epoch */
		if (gmtime_r(&tt, &tm) == NULL)
			memset(&tm, 0, sizeof(tm));
	}
	n = snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    wd[(unsigned)tm.tm_wday % 7], tm.tm_mday,
	    mon[(unsigned)tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
	if (n < 0 || n > 29)
		n = 0;
	memcpy(out, buf, (size_t)n);
	out[n] = '\0';
}

bool
http_token_equal(
    const char *token, size_t tlen, const char *secret, size_t slen)
{
	size_t i;
	unsigned char diff = tlen != slen;

	/* Every byte of the secret is looked at whatever the token. */
	for (i = 0; i < slen; i++)
		diff |= (unsigned char)(secret[i] ^ (i < tlen ? token[i] : 0));
	return diff == 0;
}
