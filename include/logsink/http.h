/*
 * http: an incremental HTTP/1.1 request parser (RFC 9112) and the
 * response formatter of the HTTP ingest listener (listener_http.c).
 *
 * Written here rather than taken from libevent's evhttp: evhttp buffers a
 * whole request body before calling back and writes its answer on its
 * own schedule, while an ingest request must be answered only once its
 * records are committed, with the body decoded as it arrives in bounded
 * memory (a journal upload is one endless chunked body).
 *
 * framer_feed()'s contract: each feed decodes a prefix of the contiguous
 * bytes buf[0..len) and returns its length; unconsumed bytes are fed
 * again with what arrived after them appended; when nothing could be
 * consumed, p->need says how many contiguous bytes the next step wants.
 * The head (request line and header fields) is taken whole once its
 * empty line has arrived (at most max_header_bytes; the search resumes
 * where it stopped, so a byte-by-byte sender costs linear time).  The
 * body is Content-Length bytes or chunked (RFC 9112 section 7.1: hex
 * sizes checked for overflow, extensions skipped, trailer fields read
 * and dropped); its bytes are handed out as spans of buf.
 *
 * Leaf module: no I/O, no logging, no globals.
 */
#ifndef LOGSINK_HTTP_H
#define LOGSINK_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_PATH_MAX  1024 /* longer request targets: 414 */
#define HTTP_TYPE_MAX  128  /* the media type of Content-Type */
#define HTTP_TOKEN_MAX 512  /* a bearer token; longer: no token */

enum http_method {
	HTTP_M_OTHER,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_OPTIONS,
};

enum http_coding {
	HTTP_CODING_IDENTITY,
	HTTP_CODING_GZIP,    /* gzip, x-gzip */
	HTTP_CODING_DEFLATE, /* the zlib format (RFC 9110 section 8.4.1.2) */
	HTTP_CODING_OTHER,   /* anything else, or more than one coding */
};

/* Why a request could not be parsed; each has its status. */
enum http_error {
	HTTP_ERR_NONE,
	HTTP_ERR_REQUEST_LINE,     /* 400: not METHOD SP TARGET SP VERSION */
	HTTP_ERR_HEADER,           /* 400: a malformed header field line */
	HTTP_ERR_HEADER_TOO_LARGE, /* 431: head over max_header_bytes */
	HTTP_ERR_TOO_MANY_HEADERS, /* 431: over max_headers fields */
	HTTP_ERR_URI_TOO_LONG,     /* 414: target over HTTP_PATH_MAX */
	HTTP_ERR_VERSION,          /* 505: not HTTP/1.0 or HTTP/1.1 */
	HTTP_ERR_LENGTH,           /* 400: bad or conflicting Content-Length,
				      or both it and Transfer-Encoding */
	HTTP_ERR_TRANSFER_CODING,  /* 501: a transfer coding but chunked */
	HTTP_ERR_EXPECT,           /* 417: an expectation but 100-continue */
	HTTP_ERR_CHUNK,            /* 400: a malformed chunk size or CRLF */
	HTTP_ERR_CHUNK_LINE,       /* 400: a chunk-size line or trailer field
				      over max_header_bytes */
	HTTP_ERR_CHUNK_SIZE,       /* 413: a chunk size past 2^60 */
	HTTP_ERR_TRUNCATED,        /* 400: the connection ended mid-request */
	HTTP_NERRORS,
};

/*
 * Why the listener refused or cut short a request beyond a parse error:
 * the reason label of logsink_http_errors_total, after the parse errors.
 */
enum http_refusal {
	HTTP_REF_UNAUTHORIZED = HTTP_NERRORS, /* 401 */
	HTTP_REF_NO_ROUTE,                    /* 404 */
	HTTP_REF_METHOD,                      /* 405 */
	HTTP_REF_NO_LENGTH,                   /* 411 */
	HTTP_REF_BODY_TOO_LARGE,              /* 413 */
	HTTP_REF_MEDIA_TYPE,                  /* 415 */
	HTTP_REF_CODING,                      /* 415: Content-Encoding */
	HTTP_REF_BAD_BODY,                    /* 400: the decoder's error() */
	HTTP_REF_ENTRY_TOO_LARGE,             /* 413: the decoder's */
	HTTP_REF_BAD_COMPRESSION,             /* 400: gzip/deflate data */
	HTTP_REF_QUEUE_FULL,                  /* 429 */
	HTTP_REF_DB_DOWN,                     /* 503: no database, no spool */
	HTTP_REF_NOMEM,                       /* 503 */
	HTTP_REF_ANSWER_TIMEOUT,              /* 503: http-answer-timeout */
	HTTP_REF_HEADER_TIMEOUT,              /* 408 */
	HTTP_REF_BODY_TIMEOUT,                /* 408 */
	HTTP_REF_SHUTDOWN,                    /* 503: a body cut by SIGTERM */
	HTTP_NREASONS,
};

/* A name for an enum http_error or enum http_refusal value. */
const char *http_reason_name(int reason);

struct http_limits {
	size_t max_header_bytes; /* the head; also a chunk-size line and
				    the trailer section */
	int max_headers;
};

/* The head of one request, valid once http_feed_head() took it. */
struct http_request {
	enum http_method method;
	char method_text[16];     /* for log lines; cut */
	char path[HTTP_PATH_MAX]; /* the path, without the query */
	int minor;                /* HTTP/1.minor: 0 or 1 */
	bool keep_alive;          /* 1.1 unless "close"; 1.0 if "keep-alive" */
	bool expect_continue;
	bool chunked;
	bool has_length;
	uint64_t content_length;
	char content_type[HTTP_TYPE_MAX]; /* lowercased, no parameters; "" */
	enum http_coding coding;          /* Content-Encoding */
	bool has_auth;                    /* an Authorization field came */
	bool bearer;                      /* ... and token holds its token */
	char token[HTTP_TOKEN_MAX];
};

enum http_pstate {
	HTTP_PS_HEAD,
	HTTP_PS_LENGTH,     /* Content-Length body bytes */
	HTTP_PS_CHUNK_SIZE, /* a chunk-size line */
	HTTP_PS_CHUNK_DATA,
	HTTP_PS_CHUNK_END, /* the CRLF after chunk data */
	HTTP_PS_TRAILER,   /* trailer fields up to the empty line */
	HTTP_PS_DONE,      /* the request is whole */
	HTTP_PS_ERROR,     /* p->err says why */
};

/* Embedded in its connection; holds no memory. */
struct http_parser {
	struct http_limits lim;
	enum http_pstate state;
	enum http_error err;
	size_t need;        /* contiguous bytes wanted when 0 was consumed */
	size_t scanned;     /* head or line bytes searched without its end */
	uint64_t remaining; /* body or chunk bytes still to come */
	size_t trailer_bytes;
	enum http_pstate data_state; /* where the last span came from */
	struct http_request req;
};

void http_parser_init(struct http_parser *p, const struct http_limits *lim);
/* Ready for the next request on the connection (keeps the limits). */
void http_parser_next(struct http_parser *p);

/*
 * HEAD: takes the head once whole (leading empty lines are skipped, RFC
 * 9112 section 2.2).  Then state is LENGTH or CHUNK_SIZE (a body
 * follows), DONE (none) or ERROR.  eof: no byte follows buf; an
 * unfinished head is then TRUNCATED (nothing at all: need 0, state HEAD).
 */
size_t http_feed_head(
    struct http_parser *p, const char *buf, size_t len, bool eof);
/*
 * The body states: consumes framing and at most one span of body bytes,
 * *data and *dlen (a part of buf; *dlen 0: none), which end the consumed
 * prefix.  At DONE the request is whole; ERROR: p->err.
 */
size_t http_feed_body(struct http_parser *p, const char *buf, size_t len,
    bool eof, const char **data, size_t *dlen);
/*
 * Gives back the last n bytes of the span just returned: they come again
 * in the next feed (the consumer could not take them).
 */
void http_unread(struct http_parser *p, size_t n);
/* True while the parser is in one of the body states. */
bool http_in_body(const struct http_parser *p);

/* "bad-request-line", ...: for metric labels and log lines. */
const char *http_error_name(enum http_error err);
/* The status a parse error is answered with. */
int http_error_status(enum http_error err);
/* "OK", "Bad Request", ...; "Unknown" for others. */
const char *http_reason(int status);

/*
 * The statuses the listener answers with, for the metric's code label:
 * http_status_index(status) in 0 .. HTTP_NSTATUS - 1 (the last: other).
 */
#define HTTP_NSTATUS 19
int http_status_index(int status);
int http_status_code(int index);

/* The header fields of an answer beyond the status line. */
struct http_answer {
	int status;
	const char *content_type; /* NULL: no body or text/plain */
	int retry_after_s;        /* > 0: Retry-After */
	const char *fields;       /* more header lines, each ending in CRLF
				     ("WWW-Authenticate: Bearer\r\n"), or NULL */
	bool close;               /* Connection: close */
	const char *date;         /* an IMF-fixdate for Date:, or NULL */
};

/*
 * Formats an HTTP/1.1 response with body[0..blen) into out (cap bytes):
 * the status line, Date, Content-Length, the fields of a, the body.  Returns
 * its length, or 0 if it does not fit.
 */
size_t http_format_response(char *out, size_t cap, const struct http_answer *a,
    const char *body, size_t blen);

/* The IMF-fixdate of t (RFC 9110 section 5.6.7) into out[30]. */
void http_date(char out[30], int64_t t);

/* Length-independent comparison of a token with a secret of slen bytes. */
bool http_token_equal(
    const char *token, size_t tlen, const char *secret, size_t slen);

#endif
