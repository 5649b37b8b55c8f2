/*
 * listener_http: HTTP ingest (proto=http) on the client machine of
 * listener.c.  The request parser (http.h) replaces the framer; a route
 * table picks a body decoder (body.h) by path and Content-Type; the body
 * is de-chunked, inflated (Content-Encoding gzip or deflate, zlib's
 * streaming inflate) and fed to the decoder as it arrives, in bounded
 * memory; each record it emits is queued as one line of the client's ack
 * reference, like a framed line.
 *
 * A request's records are lines [first, end) of the connection; its
 * answer (200, or the decoder's) is written by the ack drain once
 * ack_committed() reaches end: committed, or durable in the spool on an
 * ack=spooled listener.  Pipelined requests are answered in order; a
 * request without records once those before it are.  While the queue is
 * full the decoder is not fed and the connection is not read (the client
 * machine's pause), so a sender is slowed exactly like a TCP sender.
 *
 * Refusals (a status with Connection: close, the connection closed once
 * it is written) are counted by reason (logsink_http_errors_total) and
 * logged at most once per 10 s for all connections; what a refused
 * request queued before the refusal is still stored (at-least-once: the
 * sender resends the whole request).  Answers by endpoint and status:
 * logsink_http_requests_total.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "logsink/ack.h"
#include "logsink/body.h"
#include "logsink/body_journal.h"
#include "logsink/buf.h"
#include "logsink/clock.h"
#include "logsink/config.h"
#include "logsink/http.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/queue.h"

#include "listener_int.h"

/*
 * The endpoints: a request goes to the first entry whose path and media
 * type match (an empty type in types[] also takes a request without
 * Content-Type).  A path matching with no type: 415.  listen_path: the
 * listener's path= replaces the path.  unbounded: a streaming decoder
 * whose identity-coded bodies may exceed http-max-body-bytes (a journal
 * upload is one endless chunked body); compressed ones never may.
 */
struct http_route {
	const char *name; /* the endpoint label */
	const char *path;
	const char *const *types;
	const struct body_decoder *dec;
	bool listen_path;
	bool unbounded;
};

static const char *const json_types[] = { "application/json", NULL };
static const char *const otlp_proto_types[] = { "application/x-protobuf",
	NULL };
static const char *const lines_types[] = { "application/x-ndjson",
	"application/jsonlines", "application/jsonl", "application/x-jsonlines",
	"text/plain", "", NULL };
static const char *const journal_types[] = { "application/vnd.fdo.journal",
	NULL };

static const struct http_route http_routes[] = {
	{ "json", "/ingest", json_types, &body_json, true, false },
	{ "json", "/ingest", lines_types, &body_json_lines, true, false },
	/* OTLP/HTTP logs: protobuf or JSON by Content-Type (body_otlp.c) */
	{ "otlp", "/v1/logs", otlp_proto_types, &body_otlp_proto, false,
	    false },
	{ "otlp", "/v1/logs", json_types, &body_otlp_json, false, false },
	{ "journal", "/upload", journal_types, &body_journal, false, true },
};

#define HTTP_NROUTES (sizeof(http_routes) / sizeof(http_routes[0]))
_Static_assert(HTTP_NROUTES < METRICS_HTTP_ENDPOINTS, "metrics endpoints");

/* Requests read ahead of their answers, at most (pipelining). */
#define HTTP_MAX_PENDING      16
/* The answers written in one go, at most (as RELP's). */
#define HTTP_OUT_MAX_BYTES    (64 * 1024)
/* Plain body bytes kept ahead of a streaming decoder. */
#define HTTP_BODY_AHEAD_BYTES (64 * 1024)
/* A body buffer bigger than this is released between requests (idle
 * connections hold no big buffers; as listener.c's scratch). */
#define HTTP_BODY_KEEP_BYTES  (16 * 1024)
#define HTTP_ANSWER_BODY_MAX  4096
/* Retry-After of 429 (the queue drains in seconds) and 503 (a database
 * reconnects within reconnect-max-ms, 30 s by default). */
#define HTTP_RETRY_QUEUE_S    1
#define HTTP_RETRY_DB_S       5
#define HTTP_MAX_TOKENS       1000

/* The metrics index of route r: that of the first route of its name. */
static int
http_endpoint(const struct http_route *r)
{
	size_t i;

	for (i = 0; strcmp(http_routes[i].name, r->name) != 0; i++)
		;
	return (int)i + 1;
}

/* A listener's state (session_ops.listen); owned by ls->confs. */
struct http_listen {
	char path[256]; /* path=, for listen_path routes */
	char **tokens;  /* tokens=: bearer tokens; NULL: none needed */
	size_t ntokens;
};

/* One request read and waiting for its answer. */
struct http_pending {
	uint64_t first, end; /* its lines; answered once end is stored */
	int64_t due_ms;      /* http-answer-timeout */
	char *resp;          /* the whole answer; owned */
	size_t len;
	int status;
	int endpoint;
	bool close;
};

enum hc_state {
	HC_HEAD,   /* reading a request head (or idle between requests) */
	HC_BODY,   /* reading the body, feeding the decoder */
	HC_DRAIN,  /* the body is whole; the decoder has bytes left */
	HC_CLOSED, /* an answer with close is queued: input is dropped */
};

/* The session of a proto=http client, in c->sess; owned by it. */
struct http_conn {
	struct http_parser p;
	enum hc_state st;
	const struct http_route *route;
	int endpoint; /* metrics index: route + 1, 0 before routing */
	void *dst;    /* the decoder's state for this body, or NULL */
	size_t dec_need;
	bool stopped; /* the decoder stopped at a full queue */
	bool oom;     /* a record was not queued: answer 503 */
	z_stream z;
	bool z_on, z_end;
	struct buf body; /* plain body bytes [body_off, body.len) */
	size_t body_off;
	uint64_t body_total; /* plain bytes of this body so far */
	uint64_t first;      /* c->queued when the request began */
	struct http_pending pend[HTTP_MAX_PENDING];
	int phead, npend;
	struct event *ev; /* the deadlines */
	int64_t armed_ms;
	int64_t head_since_ms, progress_ms, idle_since_ms;
	int64_t linger_until_ms; /* after a refusal, or 0 */
	bool in_feed;
	bool shutdown;
	const char *end_reason;
	uint64_t journal_cut; /* body_journal_entries_cut() counted so far */
	bool cut_logged;      /* a cut journal entry was logged */
};

static struct http_conn *
http_of(const struct client *c)
{
	return c->sess;
}

static const char *const hc_state_names[] = { "HEAD", "BODY", "DRAIN",
	"CLOSED" };

/* The only writer of the session's state; logs "old -> new" at debug. */
static void
http_set_state(struct client *c, enum hc_state st)
{
	struct http_conn *h = http_of(c);

	assert((unsigned)st <= HC_CLOSED);
	if (h->st != st)
		log_debug("%s: http %s -> %s", c->name, hc_state_names[h->st],
		    hc_state_names[st]);
	h->st = st;
}

static const struct http_listen *
http_conf(const struct client *c)
{
	return c->sess_conf;
}

/* ------------------------------------------------------------------ */
/* listeners: path=, tokens= */

static void
http_listen_free(void *arg)
{
	struct http_listen *hl = arg;
	size_t i;

	if (hl == NULL)
		return;
	for (i = 0; i < hl->ntokens; i++) {
		explicit_bzero(hl->tokens[i], strlen(hl->tokens[i]));
		free(hl->tokens[i]);
	}
	free(hl->tokens);
	free(hl);
}

/* Reads tokens= FILE: one bearer token a line; '#' lines and blank
 * lines are skipped. */
static int
http_load_tokens(
    struct http_listen *hl, const char *path, char *err, size_t errlen)
{
	FILE *fp;
	char line[HTTP_TOKEN_MAX + 2], *s, **t;
	size_t n;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "tokens=%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		n = strcspn(line, "\r\n");
		if (line[n] == '\0' && !feof(fp)) {
			snprintf(err, errlen,
			    "tokens=%s: a line longer than %d "
			    "bytes",
			    path, HTTP_TOKEN_MAX - 1);
			goto fail;
		}
		line[n] = '\0';
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		if (hl->ntokens >= HTTP_MAX_TOKENS ||
		    (t = reallocarray(
			 hl->tokens, hl->ntokens + 1, sizeof(*t))) == NULL) {
			snprintf(err, errlen,
			    "tokens=%s: more than %d tokens "
			    "or out of memory",
			    path, HTTP_MAX_TOKENS);
			goto fail;
		}
		hl->tokens = t;
		if ((t[hl->ntokens] = strdup(s)) == NULL) {
			snprintf(err, errlen, "tokens=%s: out of memory", path);
			goto fail;
		}
		hl->ntokens++;
	}
	explicit_bzero(line, sizeof(line));
	fclose(fp);
	if (hl->ntokens == 0) {
		snprintf(err, errlen, "tokens=%s: no token in the file", path);
		return -1;
	}
	return 0;
fail:
	explicit_bzero(line, sizeof(line));
	fclose(fp);
	return -1;
}

static int
http_listen_new(struct listeners *ls, const struct listen_spec *spec,
    void **conf, char *err, size_t errlen)
{
	struct http_listen *hl;
	size_t i;

	(void)ls;
	if ((hl = calloc(1, sizeof(*hl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(hl->path, sizeof(hl->path), "%s", spec->http_path);
	if (spec->http_tokens[0] != '\0' &&
	    http_load_tokens(hl, spec->http_tokens, err, errlen) == -1) {
		http_listen_free(hl);
		return -1;
	}
	for (i = 0; i < HTTP_NROUTES; i++)
		if (http_endpoint(&http_routes[i]) == (int)i + 1)
			metrics.http_endpoints[i + 1] = http_routes[i].name;
	metrics.http_endpoints[0] = "none";
	*conf = hl;
	return 0;
}

/* ------------------------------------------------------------------ */
/* answers */

/* A refusal's log line: one per 10 s for all connections. */
static void
http_log_refusal(struct client *c, int reason, int status, const char *detail)
{
	uint64_t n;

	metrics.http_errors[reason]++;
	if (!ratelog_due(&c->ls->http_err_log, clock_mono_ms(), 1, &n))
		return;
	log_warnx("%s: HTTP request refused: %d reason=%s%s%s method=%.15s "
		  "path=%.200s (%llu such refusals since the last such "
		  "message)",
	    c->name, status, http_reason_name(reason),
	    detail != NULL ? " " : "", detail != NULL ? detail : "",
	    http_of(c)->p.req.method_text, http_of(c)->p.req.path,
	    (unsigned long long)n);
}

/*
 * Records the decoder refused inside a good body (body.h rejected(): OTLP
 * partial success, the reason in the answer): counted, and logged under
 * the refusals' limit of one line per 10 s.
 */
static void
http_log_partial(struct client *c, uint64_t n)
{
	uint64_t total;

	metrics.http_records_refused += n;
	if (!ratelog_due(&c->ls->http_err_log, clock_mono_ms(), 1, &total))
		return;
	log_warnx("%s: HTTP request partly refused: %llu record(s) not "
		  "stored, the others are (%s; the answer says why; %llu "
		  "refusals since the last such message)",
	    c->name, (unsigned long long)n, http_of(c)->route->dec->name,
	    (unsigned long long)total);
}

/* Queues the answer of the request that ends at line end. */
static void
http_push(struct client *c, const struct http_answer *a, const char *body,
    size_t blen, uint64_t end)
{
	struct http_conn *h = http_of(c);
	struct http_pending *pe;
	struct http_answer ad = *a;
	size_t cap = blen + 512, n;
	char *resp, date[30];

	if (h->npend == HTTP_MAX_PENDING)
		fatalx("%s: http: more than %d answers pending", c->name,
		    HTTP_MAX_PENDING);
	http_date(date, clock_real_us() / 1000000);
	ad.date = date;
	if ((resp = malloc(cap)) == NULL ||
	    (n = http_format_response(resp, cap, &ad, body, blen)) == 0) {
		free(resp);
		log_warnx(
		    "%s: out of memory for an HTTP answer; closing", c->name);
		c->err = ENOMEM;
		resp = NULL;
		n = 0;
	}
	pe = &h->pend[(h->phead + h->npend) % HTTP_MAX_PENDING];
	pe->first = h->first;
	pe->end = end;
	pe->due_ms = clock_mono_ms() + c->ls->set.http_answer_timeout_ms;
	pe->resp = resp;
	pe->len = n;
	pe->status = a->status;
	pe->endpoint = h->endpoint;
	pe->close = a->close;
	h->npend++;
}

/* Frees the oldest pending answer. */
static void
http_pop(struct http_conn *h)
{
	free(h->pend[h->phead].resp);
	h->pend[h->phead].resp = NULL;
	h->phead = (h->phead + 1) % HTTP_MAX_PENDING;
	h->npend--;
}

/* Reads the rest of the input again on the next loop pass (the machine
 * has it framed only when bytes arrive). */
static void
http_read_again(struct client *c)
{
	if (c->state == CL_READING &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		bufferevent_trigger(c->bev, EV_READ,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void http_arm(struct client *c);

/*
 * Writes the answers whose lines are stored, in order; keeps c->acked
 * (the lines answered) for the machine: lines are due while a request
 * holding them waits.
 */
static void
http_send_answers(struct client *c)
{
	struct http_conn *h = http_of(c);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint64_t committed = ack_committed(c->ack);
	struct http_pending *pe;
	bool was_full = h->npend == HTTP_MAX_PENDING;

	while (h->npend > 0 && c->err == 0) {
		pe = &h->pend[h->phead];
		if (pe->end > committed ||
		    evbuffer_get_length(out) >= HTTP_OUT_MAX_BYTES)
			break;
		if (evbuffer_add(out, pe->resp, pe->len) == -1) {
			log_warnx(
			    "%s: out of memory for HTTP answers", c->name);
			c->err = ENOMEM;
			break;
		}
		metrics.http_requests[pe->endpoint]
				     [http_status_index(pe->status)]++;
		http_pop(h);
	}
	c->acked = h->npend > 0 ? h->pend[h->phead].first : c->queued;
	c->ack_pending = h->npend > 0 && h->pend[h->phead].end <= committed;
	if (was_full && h->npend < HTTP_MAX_PENDING && !h->in_feed)
		http_read_again(c);
	http_arm(c);
}

/* The decoder's state and the inflater of the request, freed. */
static void
http_body_free(struct http_conn *h)
{
	if (h->dst != NULL)
		h->route->dec->free(h->dst);
	h->dst = NULL;
	h->journal_cut = 0;
	if (h->z_on)
		inflateEnd(&h->z);
	h->z_on = h->z_end = false;
	h->body_off = 0;
	if (h->body.cap > HTTP_BODY_KEEP_BYTES)
		buf_free(&h->body);
	buf_reset(&h->body);
	h->stopped = h->oom = false;
}

/* No more input: the peer's end (or ours) once the answers are out. */
static void
http_stop_reading(struct client *c)
{
	http_set_state(c, HC_CLOSED);
	http_of(c)->linger_until_ms = 0;
	c->eof = true;
	bufferevent_disable(c->bev, EV_READ);
}

/*
 * After a refusal: the rest of what the client sends is read and dropped
 * until it closes, at most http-body-timeout (a lingering close, RFC 9112
 * section 9.6): closing with its unread body in our socket would reset
 * the connection, and the client could lose the answer before reading it.
 */
static void
http_linger(struct client *c)
{
	struct http_conn *h = http_of(c);

	http_set_state(c, HC_CLOSED);
	if (c->eof)
		return;
	h->linger_until_ms = clock_mono_ms() + c->ls->set.http_body_timeout_ms;
}

/*
 * Refuses the current request: status (Retry-After when retry_s > 0)
 * after the answers before it, then the connection closes.  What it
 * queued is stored all the same.
 */
static void
http_refuse(
    struct client *c, int status, int reason, int retry_s, const char *detail)
{
	struct http_conn *h = http_of(c);
	struct http_answer a = { status, NULL, retry_s, NULL, true, NULL };
	char body[300];
	int n;

	if (h->st == HC_CLOSED)
		return;
	if (status == 401)
		a.fields = "WWW-Authenticate: Bearer realm=\"logsink\"\r\n";
	else if (status == 405)
		a.fields = "Allow: POST\r\n";
	http_log_refusal(c, reason, status, detail);
	n = snprintf(body, sizeof(body), "%d %s: %s%s%s\n", status,
	    http_reason(status), http_reason_name(reason),
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	if (n < 0)
		n = 0;
	http_body_free(h);
	if (h->npend == HTTP_MAX_PENDING)
		http_pop(h); /* cannot be: parsing stops first */
	http_push(c, &a, body,
	    (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, c->queued);
	h->end_reason = http_reason_name(reason);
	http_linger(c);
}

/*
 * A parse error's refusal.  A request cut by the end of the input is
 * answered 503 with Retry-After, not 400: at shutdown that end is ours
 * (the client should resend), and a peer that closed cannot read it.
 */
static void
http_refuse_parse(struct client *c, enum http_error err)
{
	if (err == HTTP_ERR_TRUNCATED)
		http_refuse(c, 503, (int)err, HTTP_RETRY_DB_S, NULL);
	else
		http_refuse(c, http_error_status(err), (int)err, 0, NULL);
}

/* ------------------------------------------------------------------ */
/* the body */

/* One record of the decoder -> the queue, as client_message() does. */
/*
 * Journal entries over max-line-bytes are stored cut (body_journal.h):
 * counted as cut lines, logged once per connection like a long TCP line.
 */
static void
http_journal_cut(struct client *c)
{
	struct http_conn *h = http_of(c);
	uint64_t n = body_journal_entries_cut(h->dst);

	if (n == h->journal_cut)
		return;
	metrics.lines_truncated += n - h->journal_cut;
	h->journal_cut = n;
	if (!h->cut_logged)
		log_warnx("%s: journal entry longer than max-line-bytes (%zu) "
			  "stored cut (fields has logsink_cut); later ones on "
			  "this connection are only counted",
		    c->name, c->ls->set.max_line_bytes);
	h->cut_logged = true;
}

static bool
http_on_record(void *arg, struct record *rec)
{
	struct client *c = arg;
	struct http_conn *h = http_of(c);
	struct queue *q = c->ls->q;
	size_t replaced;

	rec->received_us = c->rec.received_us;
	rec->peer = c->rec.peer;
	rec->tls_subject = c->rec.tls_subject;
	c->lines++;
	metrics.lines_received++;
	metrics.http_records++;
	metrics.bytes_received += rec->message.len;
	if (queue_append_acked(
		q, rec, &replaced, c->ack, c->queued, c->ack_spooled) == -1) {
		metrics.lines_dropped_oom++;
		h->oom = true; /* the sender must resend: 503 */
	} else {
		c->queued++;
		if (replaced > 0) {
			metrics.lines_sanitized++;
			metrics.bytes_replaced += replaced;
		}
	}
	if (h->route->dec == &body_journal)
		http_journal_cut(c);
	if (queue_full(q)) {
		h->stopped = true;
		return false;
	}
	return true;
}

/* The request is whole and decoded: its answer waits for its lines. */
static void
http_complete(struct client *c)
{
	struct http_conn *h = http_of(c);
	const struct body_decoder *dec = h->route->dec;
	struct http_answer a = { 200, NULL, 0, NULL, !h->p.req.keep_alive,
		NULL };
	char body[HTTP_ANSWER_BODY_MAX];
	size_t blen = 0;

	if (h->oom) {
		a.status = 503;
		a.retry_after_s = HTTP_RETRY_DB_S;
		a.close = true;
		http_log_refusal(c, HTTP_REF_NOMEM, 503, NULL);
	} else if (dec->answer != NULL) {
		blen = dec->answer(h->dst, body, sizeof(body), &a.content_type);
	}
	if (!h->oom && dec->rejected != NULL && dec->rejected(h->dst) > 0)
		http_log_partial(c, dec->rejected(h->dst));
	http_push(c, &a, body, blen, c->queued);
	http_body_free(h);
	http_parser_next(&h->p);
	http_set_state(c, HC_HEAD);
	h->endpoint = 0;
	h->idle_since_ms = clock_mono_ms();
	if (a.close) {
		h->end_reason = "http-close";
		http_stop_reading(c);
	} else if (!h->in_feed) {
		http_read_again(c); /* a pipelined request */
	}
	http_send_answers(c);
}

/* The decoder's error as a refusal: 413 for "...-too-large", else 400. */
static void
http_decoder_failed(struct client *c, const char *why)
{
	size_t n = strlen(why);
	bool large = n >= 9 && strcmp(why + n - 9, "too-large") == 0;

	http_refuse(c, large ? 413 : 400,
	    large ? HTTP_REF_ENTRY_TOO_LARGE : HTTP_REF_BAD_BODY, 0, why);
}

/* The body bytes the decoder may see next: all of them once whole. */
static bool
http_body_end(const struct http_conn *h)
{
	return h->st == HC_DRAIN;
}

/*
 * Feeds the decoder what the body buffer holds while the queue has room;
 * completes the request once the body is whole and decoded.
 */
static void
http_pump(struct client *c)
{
	struct http_conn *h = http_of(c);
	const struct body_decoder *dec;
	size_t n, avail, need;
	const char *why;
	bool end;

	while (h->dst != NULL && (h->st == HC_BODY || h->st == HC_DRAIN)) {
		dec = h->route->dec;
		avail = h->body.len - h->body_off;
		end = http_body_end(h);
		if ((avail == 0 && !end && !h->stopped) || queue_full(c->ls->q))
			break;
		if (h->dec_need == SIZE_MAX && !end && !h->stopped)
			break; /* a whole-body decoder waits for the end */
		h->stopped = false;
		need = 0;
		n = dec->feed(h->dst,
		    h->body.data != NULL ? h->body.data + h->body_off : "",
		    avail, end, &need, http_on_record, c);
		h->body_off += n;
		h->dec_need = need;
		if ((why = dec->error(h->dst)) != NULL) {
			http_decoder_failed(c, why);
			return;
		}
		if (h->stopped)
			continue;
		if (end && h->body_off == h->body.len) {
			http_complete(c);
			return;
		}
		if (n == 0) {
			if (end) {
				http_decoder_failed(c, "undecoded-bytes");
				return;
			}
			break;
		}
	}
	if (h->body_off > 0 && h->body_off == h->body.len) {
		h->body_off = 0;
		buf_reset(&h->body);
	} else if (h->body_off > HTTP_BODY_AHEAD_BYTES) {
		memmove(h->body.data, h->body.data + h->body_off,
		    h->body.len - h->body_off);
		h->body.len -= h->body_off;
		h->body_off = 0;
	}
}

/* The body bytes the buffer may take now (0: feed the decoder first). */
static size_t
http_body_room(const struct client *c)
{
	const struct http_conn *h = http_of(c);
	size_t held = h->body.len - h->body_off, want;

	if (h->dec_need == SIZE_MAX)
		want = c->ls->set.http_max_body_bytes + 1;
	else
		want = h->dec_need > HTTP_BODY_AHEAD_BYTES
		    ? h->dec_need
		    : HTTP_BODY_AHEAD_BYTES;
	return want > held ? want - held : 0;
}

/* Whether the body outgrew http-max-body-bytes (refused if so). */
static bool
http_body_over(struct client *c)
{
	struct http_conn *h = http_of(c);

	if (h->body_total <= c->ls->set.http_max_body_bytes ||
	    (h->route->unbounded && !h->z_on))
		return false;
	http_refuse(c, 413, HTTP_REF_BODY_TOO_LARGE, 0,
	    h->z_on ? "decompressed body over http-max-body-bytes"
		    : "body over http-max-body-bytes");
	return true;
}

/*
 * Inflates data[0..len) into the body buffer, at most room bytes out;
 * returns the input bytes taken, or -1 (refused: bad data).  Gzip
 * members may follow each other (RFC 1952 section 2.2).
 */
static ssize_t
http_inflate(struct client *c, const char *data, size_t len, size_t room)
{
	struct http_conn *h = http_of(c);
	size_t out, chunk;
	int rc;

	h->z.next_in = (Bytef *)(uintptr_t)data;
	h->z.avail_in = (uInt)len;
	while (h->z.avail_in > 0 && room > 0) {
		if (h->z_end) {
			if (inflateReset(&h->z) != Z_OK)
				return -1;
			h->z_end = false;
		}
		chunk = room < 16384 ? room : 16384;
		if (buf_reserve(&h->body, chunk) == -1) {
			h->oom = true;
			return -1;
		}
		h->z.next_out = (Bytef *)(h->body.data + h->body.len);
		h->z.avail_out = (uInt)chunk;
		rc = inflate(&h->z, Z_NO_FLUSH);
		out = chunk - h->z.avail_out;
		h->body.len += out;
		h->body_total += out;
		room -= out;
		if (rc == Z_STREAM_END)
			h->z_end = true;
		else if (rc != Z_OK && !(rc == Z_BUF_ERROR && out > 0))
			return -1;
	}
	return (ssize_t)(len - h->z.avail_in);
}

/* Takes a span of body bytes; returns how many (0: the buffer is full). */
static size_t
http_take(struct client *c, const char *data, size_t dlen)
{
	struct http_conn *h = http_of(c);
	size_t room = http_body_room(c), take;
	ssize_t r;

	if (h->z_on) {
		if ((r = http_inflate(c, data, dlen, room)) == -1) {
			if (h->oom)
				http_refuse(c, 503, HTTP_REF_NOMEM,
				    HTTP_RETRY_DB_S, NULL);
			else
				http_refuse(c, 400, HTTP_REF_BAD_COMPRESSION, 0,
				    h->z.msg);
			return dlen;
		}
		take = (size_t)r;
	} else {
		take = dlen < room ? dlen : room;
		if (buf_append(&h->body, data, take) == -1) {
			http_refuse(
			    c, 503, HTTP_REF_NOMEM, HTTP_RETRY_DB_S, NULL);
			return dlen;
		}
		h->body_total += take;
	}
	if (!http_body_over(c))
		http_pump(c);
	return take;
}

/* HC_BODY: framing and body bytes of buf; the bytes consumed. */
static size_t
http_body_step(struct client *c, const char *buf, size_t len, bool eof)
{
	struct http_conn *h = http_of(c);
	const char *data;
	size_t n, dlen, took;

	if (http_body_room(c) == 0) {
		http_pump(c);
		if (h->st != HC_BODY || http_body_room(c) == 0)
			return 0;
	}
	n = http_feed_body(&h->p, buf, len, eof, &data, &dlen);
	if (h->p.state == HTTP_PS_ERROR) {
		http_refuse_parse(c, h->p.err);
		return len;
	}
	if (dlen > 0) {
		h->progress_ms = clock_mono_ms();
		took = http_take(c, data, dlen);
		if (h->st != HC_BODY)
			return len; /* refused */
		http_unread(&h->p, dlen - took);
		n -= dlen - took;
	}
	if (h->p.state == HTTP_PS_DONE) {
		if (h->z_on && !h->z_end) {
			http_refuse(c, 400, HTTP_REF_BAD_COMPRESSION, 0,
			    "the compressed data ends early");
			return len;
		}
		http_set_state(c, HC_DRAIN);
		http_pump(c);
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* the head */

static bool
type_in(const char *type, const char *const *types)
{
	for (; *types != NULL; types++)
		if (strcmp(type, *types) == 0)
			return true;
	return false;
}

/* The route of the request, or NULL; *by_path: the first route with its
 * path (the endpoint label), or NULL. */
static const struct http_route *
http_route_of(const struct client *c, const struct http_request *req,
    const struct http_route **by_path)
{
	const struct http_listen *hl = http_conf(c);
	const char *path;
	size_t i;

	*by_path = NULL;
	for (i = 0; i < HTTP_NROUTES; i++) {
		path = http_routes[i].listen_path && hl->path[0] != '\0'
		    ? hl->path
		    : http_routes[i].path;
		if (strcmp(req->path, path) != 0)
			continue;
		if (*by_path == NULL)
			*by_path = &http_routes[i];
		if (type_in(req->content_type, http_routes[i].types))
			return &http_routes[i];
	}
	return NULL;
}

/* Whether the request carries one of the listener's tokens (or none is
 * needed).  Every token is compared, in time independent of the match. */
static bool
http_authorized(const struct client *c, const struct http_request *req)
{
	const struct http_listen *hl = http_conf(c);
	size_t i, tlen = strlen(req->token);
	bool ok = false;

	if (hl->ntokens == 0)
		return true;
	if (!req->bearer)
		return false;
	for (i = 0; i < hl->ntokens; i++)
		ok |= http_token_equal(
		    req->token, tlen, hl->tokens[i], strlen(hl->tokens[i]));
	return ok;
}

/* Why the request is refused before its body is read, or 0. */
static int
http_check_head(struct client *c, const struct http_request *req,
    const struct http_route **route, int *status)
{
	struct listeners *ls = c->ls;
	const struct http_route *by_path;

	*route = http_route_of(c, req, &by_path);
	if (by_path != NULL)
		http_of(c)->endpoint = http_endpoint(by_path);
	if (by_path == NULL)
		return *status = 404, HTTP_REF_NO_ROUTE;
	if (req->method != HTTP_M_POST && req->method != HTTP_M_PUT)
		return *status = 405, HTTP_REF_METHOD;
	if (!http_authorized(c, req))
		return *status = 401, HTTP_REF_UNAUTHORIZED;
	if (!req->chunked && !req->has_length)
		return *status = 411, HTTP_REF_NO_LENGTH;
	if (*route == NULL)
		return *status = 415, HTTP_REF_MEDIA_TYPE;
	if (req->coding == HTTP_CODING_OTHER)
		return *status = 415, HTTP_REF_CODING;
	if (req->has_length &&
	    req->content_length > ls->set.http_max_body_bytes &&
	    !(*route)->unbounded)
		return *status = 413, HTTP_REF_BODY_TOO_LARGE;
	if (ls->can_store != NULL && !ls->can_store(ls->can_store_arg))
		return *status = 503, HTTP_REF_DB_DOWN;
	if (queue_full(ls->q))
		return *status = 429, HTTP_REF_QUEUE_FULL;
	return 0;
}

/* The decoder and the inflater of an accepted request; -1: no memory. */
static int
http_body_start(struct client *c)
{
	struct http_conn *h = http_of(c);
	struct body_limits lim = { c->ls->set.max_line_bytes,
		c->ls->set.http_max_body_bytes, c->ls->set.http_max_depth };

	h->body_total = 0;
	h->body_off = 0;
	h->dec_need = 0;
	if ((h->dst = h->route->dec->new (&lim)) == NULL)
		return -1;
	if (h->p.req.coding == HTTP_CODING_GZIP ||
	    h->p.req.coding == HTTP_CODING_DEFLATE) {
		memset(&h->z, 0, sizeof(h->z));
		/* 32: zlib or gzip header, detected. */
		if (inflateInit2(&h->z, 15 + 32) != Z_OK)
			return -1;
		h->z_on = true;
	}
	return 0;
}

/* The head is taken: route, check, start the body (or refuse). */
static void
http_request_start(struct client *c)
{
	struct http_conn *h = http_of(c);
	const struct http_request *req = &h->p.req;
	const struct http_route *route;
	int reason, status, retry;
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	h->head_since_ms = 0;
	h->first = c->queued;
	h->endpoint = 0;
	if (h->p.state == HTTP_PS_ERROR) {
		http_refuse_parse(c, h->p.err);
		return;
	}
	if ((reason = http_check_head(c, req, &route, &status)) != 0) {
		retry = status == 503 ? HTTP_RETRY_DB_S
		    : status == 429   ? HTTP_RETRY_QUEUE_S
				      : 0;
		http_refuse(c, status, reason, retry, NULL);
		return;
	}
	h->route = route;
	h->endpoint = http_endpoint(route);
	if (http_body_start(c) == -1) {
		http_refuse(c, 503, HTTP_REF_NOMEM, HTTP_RETRY_DB_S, NULL);
		return;
	}
	if (req->expect_continue && h->npend == 0 &&
	    h->p.state != HTTP_PS_DONE &&
	    evbuffer_add(
		bufferevent_get_output(c->bev), cont, sizeof(cont) - 1) == -1)
		log_warnx("%s: out of memory for 100 Continue", c->name);
	h->progress_ms = clock_mono_ms();
	http_set_state(c, h->p.state == HTTP_PS_DONE ? HC_DRAIN : HC_BODY);
	if (h->st == HC_DRAIN)
		http_pump(c);
}

/* ------------------------------------------------------------------ */
/* session_ops */

static void http_timer_cb(evutil_socket_t fd, short what, void *arg);

static int
http_client_new(struct client *c)
{
	struct http_conn *h;
	struct http_limits lim = { c->ls->set.http_max_header_bytes,
		c->ls->set.http_max_headers };

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -1;
	c->sess = h;
	http_parser_init(&h->p, &lim);
	if ((h->ev = evtimer_new(c->ls->base, http_timer_cb, c)) == NULL) {
		free(h);
		c->sess = NULL;
		return -1;
	}
	h->idle_since_ms = clock_mono_ms();
	h->endpoint = 0;
	http_arm(c); /* http-keepalive-timeout from the start */
	return 0;
}

static void
http_client_free(struct client *c)
{
	struct http_conn *h = c->sess;

	if (h == NULL)
		return;
	if (h->route != NULL)
		http_body_free(h);
	while (h->npend > 0)
		http_pop(h);
	buf_free(&h->body);
	if (h->ev != NULL)
		event_free(h->ev);
	free(h);
	c->sess = NULL;
}

static size_t
http_client_feed(
    struct client *c, const char *buf, size_t len, bool eof, size_t *need)
{
	struct http_conn *h = http_of(c);
	size_t used = 0, n;

	*need = 0;
	h->in_feed = true;
	while (used < len || eof) {
		if (h->st == HC_CLOSED) {
			used = len; /* after a closing answer: dropped */
			break;
		}
		if (h->st == HC_DRAIN || h->npend == HTTP_MAX_PENDING)
			break;
		if (h->st == HC_BODY) {
			n = http_body_step(c, buf + used, len - used, eof);
			if (n == 0)
				*need = h->p.need;
			used += n;
			if (n == 0)
				break;
			continue;
		}
		if (h->head_since_ms == 0 && used < len)
			h->head_since_ms = clock_mono_ms();
		n = http_feed_head(&h->p, buf + used, len - used, eof);
		used += n;
		if (h->p.state != HTTP_PS_HEAD)
			http_request_start(c);
		else if (n == 0) {
			*need = h->p.need;
			break;
		}
	}
	h->in_feed = false;
	return used;
}

static void
http_client_check(struct client *c)
{
	struct http_conn *h = http_of(c);

	if (!h->in_feed && (h->st == HC_BODY || h->st == HC_DRAIN))
		http_pump(c); /* resumed: the decoder goes on */
	if (h->st == HC_BODY && c->eof && h->p.state != HTTP_PS_ERROR &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
		http_refuse_parse(c, HTTP_ERR_TRUNCATED);
	http_send_answers(c);
}

static void
http_client_send_acks(struct client *c)
{
	http_send_answers(c);
}

static const char *
http_client_finish(struct client *c, const char *reason)
{
	struct http_conn *h = http_of(c);

	http_send_answers(c);
	if (h->shutdown && (h->st == HC_BODY || h->st == HC_DRAIN))
		http_refuse(c, 503, HTTP_REF_SHUTDOWN, HTTP_RETRY_DB_S, NULL);
	if (h->shutdown)
		http_send_answers(c);
	if (h->ev != NULL)
		event_del(h->ev);
	return h->end_reason != NULL ? h->end_reason : reason;
}

static void
http_client_shutdown(struct client *c)
{
	http_of(c)->shutdown = true;
}

/* ------------------------------------------------------------------ */
/* deadlines */

/* The earliest deadline of c and what it is for, or 0. */
static int64_t
http_deadline(const struct client *c, int *what)
{
	const struct http_conn *h = http_of(c);
	const struct listener_settings *set = &c->ls->set;
	int64_t t = 0;

	*what = 0;
#define EARLIER(when, w)                                                       \
	do {                                                                   \
		if (t == 0 || (when) < t) {                                    \
			t = (when);                                            \
			*what = (w);                                           \
		}                                                              \
	} while (0)
	if (h->npend > 0)
		EARLIER(h->pend[h->phead].due_ms, HTTP_REF_ANSWER_TIMEOUT);
	if (h->st == HC_HEAD && h->head_since_ms != 0)
		EARLIER(h->head_since_ms + set->http_header_timeout_ms,
		    HTTP_REF_HEADER_TIMEOUT);
	else if (h->st == HC_HEAD && h->npend == 0)
		EARLIER(h->idle_since_ms + set->http_keepalive_timeout_ms, -1);
	if (h->st == HC_BODY)
		EARLIER(h->progress_ms + set->http_body_timeout_ms,
		    HTTP_REF_BODY_TIMEOUT);
	if (h->st == HC_CLOSED && h->linger_until_ms != 0)
		EARLIER(h->linger_until_ms, -2);
#undef EARLIER
	return t;
}

/* (Re)arms the timer for the earliest deadline. */
static void
http_arm(struct client *c)
{
	struct http_conn *h = http_of(c);
	int64_t t, ms;
	int what;
	struct timeval tv;

	if (c->state == CL_CLOSING)
		t = 0;
	else
		t = http_deadline(c, &what);
	if (t == h->armed_ms)
		return;
	h->armed_ms = t;
	if (t == 0) {
		event_del(h->ev);
		return;
	}
	ms = t - clock_mono_ms();
	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000 + 1000);
	if (evtimer_add(h->ev, &tv) == -1)
		log_warnx("%s: evtimer_add: HTTP timeouts off", c->name);
}

/* http-answer-timeout: 503 for the oldest request, the rest dropped. */
static void
http_answer_timeout(struct client *c)
{
	struct http_conn *h = http_of(c);
	struct http_answer a = { 503, NULL, HTTP_RETRY_DB_S, NULL, true, NULL };
	static const char body[] = "503 Service Unavailable: answer-timeout: "
				   "not stored within http-answer-timeout; "
				   "it may still be stored\n";
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char resp[512], date[30];
	size_t n;
	int endpoint = h->pend[h->phead].endpoint;

	http_date(date, clock_real_us() / 1000000);
	a.date = date;
	http_log_refusal(c, HTTP_REF_ANSWER_TIMEOUT, 503, NULL);
	while (h->npend > 0)
		http_pop(h);
	http_body_free(h);
	n = http_format_response(
	    resp, sizeof(resp), &a, body, sizeof(body) - 1);
	if (n > 0 && evbuffer_add(out, resp, n) == 0)
		metrics.http_requests[endpoint][http_status_index(503)]++;
	c->acked = c->queued; /* given up */
	c->ack_pending = false;
	h->end_reason = "answer-timeout";
	http_stop_reading(c);
}

static void
http_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	struct http_conn *h = http_of(c);
	int why;
	int64_t t;

	(void)fd;
	(void)what;
	h->armed_ms = 0;
	if (c->state == CL_CLOSING)
		return;
	t = http_deadline(c, &why);
	if (t == 0 || t > clock_mono_ms()) {
		http_arm(c);
		return;
	}
	if (why == HTTP_REF_BODY_TIMEOUT && c->state != CL_READING) {
		h->progress_ms = clock_mono_ms(); /* the wait is ours */
		http_arm(c);
		return;
	}
	if (why == HTTP_REF_ANSWER_TIMEOUT) {
		http_answer_timeout(c);
	} else if (why == -1) {
		h->end_reason = "keepalive-timeout";
		http_stop_reading(c);
	} else if (why == -2) {
		http_stop_reading(c); /* lingered long enough */
	} else {
		metrics.connections_timed_out++;
		http_refuse(c, 408, why, 0, NULL);
		http_stop_reading(c); /* a slow sender: no lingering */
	}
	client_dispatch(c, c->state == CL_ACKWAIT ? CLE_ACKED : CLE_EOF);
}

const struct session_ops http_session = {
	.proto = "http",
	.start = http_client_new,
	.free = http_client_free,
	.feed = http_client_feed,
	.check = http_client_check,
	.send_acks = http_client_send_acks,
	.finish = http_client_finish,
	.shutdown = http_client_shutdown,
	.listen = http_listen_new,
	.listen_free = http_listen_free,
};
