/*
 * listener: accepting TCP clients and reading their lines
 * (see include/logsink/listener.h).
 *
 * Client machine:  READING <-> PAUSED (queue full / room again)
 *                  READING/PAUSED --EOF or error, input framed--> closed
 *                  HANDSHAKE (tls=on) --done--> READING or PAUSED
 *                  HANDSHAKE --failed or tls-handshake-timeout--> closed
 * A client that hit EOF while paused keeps its buffered input until the
 * queue has room, so no line that reached us is lost to back-pressure.
 * On a TLS connection libevent's OpenSSL bufferevent does the record
 * layer: the input buffer holds the plaintext, framed as on plain TCP.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "logsink/clock.h"
#include "logsink/config.h"
#include "logsink/framer.h"
#include "logsink/iptable.h"
#include "logsink/listener.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/parser.h"
#include "logsink/record.h"
#include "logsink/tls.h"

/*
 * Largest single read per client.  Measured (docs/performance.md): 16 and
 * 256 KiB cost the same instructions per line and gave no consistent rate
 * difference; bigger reads would only let busy connections hold more.
 * SO_RCVBUF is left to the kernel's autotuning (a fixed 1 MiB gave no
 * consistent gain); TCP_NODELAY is moot for a receiver.
 */
#define READ_CHUNK_BYTES       (64 * 1024)
#define LISTEN_BACKLOG         1024
#define ACCEPT_RETRY_MS        1000
#define SWEEP_INTERVAL_MS      1000
#define REFUSE_LOG_INTERVAL_MS 10000
#define TLS_LOG_INTERVAL_MS    10000
#define TLS_MAX_ERRORS         8
#define TLS_RECORD_BYTES       16384 /* most plaintext in a TLS record */

enum cl_state {
	CL_HANDSHAKE, /* tls=on: the TLS handshake is under way */
	CL_READING,
	CL_PAUSED,
	CL_ACKWAIT,  /* ack=commit: EOF read, waiting for the last commits */
	CL_FLUSHING, /* closing once the output (acks) is written */
};

static const char *const cl_state_names[] = { "HANDSHAKE", "READING", "PAUSED",
	"ACKWAIT", "FLUSHING" };

enum cl_event {
	CLE_READ,
	CLE_EOF,
	CLE_ERROR,
	CLE_PAUSE,
	CLE_RESUME,
	CLE_ACKED,     /* more of its lines committed */
	CLE_WRITTEN,   /* its output buffer drained */
	CLE_CONNECTED, /* the TLS handshake completed */
};

static const char *const cl_event_names[] = {
	"READ",
	"EOF",
	"ERROR",
	"PAUSE",
	"RESUME",
	"ACKED",
	"WRITTEN",
	"CONNECTED",
};

/*
 * A sender's acknowledgement state (ack=commit).  Referenced by its client
 * and by every queued batch that holds a run of its lines, so it outlives
 * a client that disconnects before its lines commit.
 */
struct ackref {
	int refs;
	struct client *c;   /* NULL once the client is gone */
	uint64_t appended;  /* lines queued so far: the next line's number */
	uint64_t committed; /* lines 0 .. committed - 1 are all stored */
	/* Runs stored out of order (batches commit in parallel), sorted;
	 * merged into committed once the gap before them closes. */
	struct ack_span {
		uint64_t first, end;
	} * spans;
	size_t nspans, capspans;
};

/* One TCP client; owned by its listeners set, freed by client_close(). */
struct client {
	struct client *prev, *next;
	struct listeners *ls;
	uint64_t id;
	enum cl_state state;
	struct bufferevent *bev;
	struct framer fr;
	bool eof; /* peer closed or failed; input may still hold lines */
	int err;  /* errno of a read error, for the close log line */
	char addr[INET6_ADDRSTRLEN];      /* "ip" for the peer column */
	char name[INET6_ADDRSTRLEN + 32]; /* "c42 ip:port" for log lines */
	struct sockaddr_storage sa;
	int64_t last_read_ms;     /* for idle-timeout */
	int64_t partial_since_ms; /* an unfinished message waits, or 0 */
	enum parser_format format;
	struct record rec;
	struct buf scratch; /* the parser's, reused for every message */
	uint64_t lines, bytes;
	uint64_t bad_frames;  /* fr.bad_frames already counted */
	struct ackref *ack;   /* NULL unless the listener says ack=commit
				 or ack=spooled */
	bool ack_spooled;     /* ack=spooled */
	uint64_t queued;      /* lines accepted into the queue */
	bool ack_pending;     /* an "ok N" waits for the output to drain */
	bool tls;             /* bev is an OpenSSL bufferevent */
	int64_t accepted_ms;  /* for tls-handshake-timeout */
	char *tls_subject;    /* verified client certificate, or NULL; owned */
	struct event *ev_end; /* TLS: EOF/error handled on the next pass */
	enum cl_event end_ev;
};

/* One bound socket; owned by its listeners set. */
struct listen_sock {
	struct listeners *ls;
	struct evconnlistener *evl;
	enum framer_mode framing;
	enum parser_format format;
	int ack; /* enum config_ack */
	bool tls;
	struct cidr allow[CONFIG_MAX_ALLOW];
	int nallow;
	char name[300];
};

/* Owned by main; freed by listeners_free(). */
struct listeners {
	struct event_base *base;
	struct queue *q;
	struct listener_settings set;
	struct listen_sock **socks;
	size_t nsocks;
	struct event *ev_accept_retry;
	struct event *ev_sweep;
	struct iptable *per_ip;
	int64_t refuse_logged_ms;
	uint64_t refused_unlogged;
	int handshaking; /* clients in CL_HANDSHAKE */
	struct client *clients;
	uint64_t next_id;
	bool paused;
	int64_t paused_since_ms;
	struct tls_ctx *tls; /* for new TLS connections; owned, may be NULL */
	int tls_handshake_timeout_ms;
	int64_t tls_fail_logged_ms;
	uint64_t tls_fail_unlogged;
};

static void client_dispatch(struct client *c, enum cl_event ev);
static void ackref_release(struct ackref *a);

static void
client_set_state(struct client *c, enum cl_state state)
{
	log_debug("%s: %s -> %s", c->name, cl_state_names[c->state],
	    cl_state_names[state]);
	if (c->state == CL_HANDSHAKE && state != CL_HANDSHAKE)
		c->ls->handshaking--;
	c->state = state;
}

/* framer callback: one message -> one queued record. */
static bool
on_message(void *arg, const char *msg, size_t len, bool truncated)
{
	struct client *c = arg;
	struct queue *q = c->ls->q;
	size_t replaced;

	if (parser_parse(&c->rec, msg, len, c->format, &c->scratch) == -1)
		log_warn("%s: parser scratch buffer", c->name);
	c->lines++;
	metrics.lines_received++;
	metrics.bytes_received += len;
	if (truncated) {
		metrics.lines_truncated++;
		if (c->fr.truncated == 1)
			log_warnx("%s: line longer than max-line-bytes (%zu) "
				  "truncated; later ones on this connection "
				  "are only counted",
			    c->name, c->ls->set.max_line_bytes);
	}
	if (queue_append_acked(q, &c->rec, &replaced, c->ack,
		c->ack != NULL ? c->ack->appended : 0, c->ack_spooled) == -1) {
		metrics.lines_dropped_oom++;
		log_warn("%s: line dropped, out of memory", c->name);
		return true;
	}
	c->queued++;
	if (c->ack != NULL)
		c->ack->appended++;
	if (replaced > 0) {
		metrics.lines_sanitized++;
		metrics.bytes_replaced += replaced;
	}
	return !queue_full(q);
}

/*
 * Frames what the input buffer holds.  The framer works on contiguous
 * memory: complete lines are taken from the first chunk in place; a line
 * that spans chunks is made contiguous with evbuffer_pullup() up to its
 * end (or all of what is there, when its end has not arrived).
 */
static void
client_frame_input(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v;
	struct evbuffer_ptr nl;
	size_t len, used;
	ssize_t want;
	char term;
	uint64_t lines_before = c->lines;

	c->rec.received_us = clock_real_us();
	while (!queue_full(c->ls->q) && (len = evbuffer_get_length(in)) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = framer_feed(&c->fr, v.iov_base, v.iov_len,
		    c->eof && v.iov_len == len, on_message, c);
		if (used > 0) {
			c->bytes += used;
			evbuffer_drain(in, used);
			continue;
		}
		if (v.iov_len == len)
			break; /* the message's end has not arrived */
		if (c->fr.need > v.iov_len) {
			want = c->fr.need < len ? (ssize_t)c->fr.need : -1;
		} else {
			term = framer_terminator(&c->fr);
			nl = evbuffer_search(in, &term, 1, NULL);
			want = nl.pos >= 0 ? (ssize_t)nl.pos + 1 : -1;
		}
		if (evbuffer_pullup(in, want) == NULL)
			break;
	}
	/* The age of the unfinished message: it starts when the last
	 * complete one ended (partial-line-timeout). */
	if (evbuffer_get_length(in) == 0)
		c->partial_since_ms = 0;
	else if (c->partial_since_ms == 0 || c->lines != lines_before)
		c->partial_since_ms = clock_mono_ms();
	if (c->fr.bad_frames != c->bad_frames) {
		if (c->bad_frames == 0)
			log_warnx("%s: octet-counting frame without a valid "
				  "length (or cut off by EOF); continuing with "
				  "LF framing; later ones are only counted",
			    c->name);
		metrics.bad_frames += c->fr.bad_frames - c->bad_frames;
		c->bad_frames = c->fr.bad_frames;
	}
}

static void
client_close(struct client *c, const char *reason)
{
	struct listeners *ls = c->ls;
	size_t left = evbuffer_get_length(bufferevent_get_input(c->bev));

	if (left > 0)
		log_warnx("%s: closing with %zu unread bytes (%s)", c->name,
		    left, reason);
	log_debug("%s: closed reason=%s lines=%llu bytes=%llu", c->name, reason,
	    (unsigned long long)c->lines, (unsigned long long)c->bytes);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ls->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->ev_end != NULL)
		event_free(c->ev_end);
	bufferevent_free(c->bev); /* and with it the SSL, if any */
	buf_free(&c->scratch);
	free(c->tls_subject);
	if (c->ack != NULL) {
		c->ack->c = NULL;
		ackref_release(c->ack);
	}
	iptable_del(ls->per_ip, (struct sockaddr *)&c->sa);
	metrics.connections_open--;
	if (c->state == CL_HANDSHAKE)
		ls->handshaking--;
	free(c);
}

static void
pause_all(struct listeners *ls)
{
	struct client *c;

	if (ls->paused)
		return;
	ls->paused = true;
	ls->paused_since_ms = clock_mono_ms();
	metrics.backpressure_since_ms = ls->paused_since_ms;
	metrics.backpressure_events++;
	log_notice("queue full (%zu bytes, %llu lines): pausing reads from "
		   "clients until it drains",
	    queue_bytes(ls->q), (unsigned long long)queue_lines(ls->q));
	for (c = ls->clients; c != NULL; c = c->next)
		client_dispatch(c, CLE_PAUSE);
}

/* Closes now, or once the output buffer (acks) has been written. */
static void
client_finish(struct client *c, const char *reason)
{
	if (c->err != 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		client_close(c, c->err ? strerror(c->err) : reason);
		return;
	}
	client_set_state(c, CL_FLUSHING);
}

/* At EOF: with acks, wait until every queued line has committed. */
static void
client_eof(struct client *c)
{
	if (c->ack != NULL && c->err == 0 && c->ack->committed < c->queued) {
		client_set_state(c, CL_ACKWAIT);
		return;
	}
	client_finish(c, "eof");
}

/* Reading: frame what arrived; at EOF frame the rest and finish. */
static void
handle_reading_input(struct client *c)
{
	client_frame_input(c);
	if (queue_full(c->ls->q)) {
		pause_all(c->ls);
		return;
	}
	if (c->eof)
		client_eof(c);
}

/*
 * Writes "ok N" (N: the connection's lines committed so far).  Only one
 * ack is ever buffered: while the client has not read the last one, later
 * ones coalesce into the newest count, so a client that stops reading
 * costs no memory.
 */
static void
client_send_ack(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (evbuffer_get_length(out) > 0) {
		c->ack_pending = true;
		return;
	}
	c->ack_pending = false;
	evbuffer_add_printf(
	    out, "ok %llu\n", (unsigned long long)c->ack->committed);
}

static void
handle_acked(struct client *c)
{
	if (c->err != 0)
		return;
	client_send_ack(c);
	if (c->state == CL_ACKWAIT && c->ack->committed >= c->queued)
		client_finish(c, "eof");
}

static void
handle_written(struct client *c)
{
	if (c->ack_pending) {
		client_send_ack(c);
		return;
	}
	if (c->state == CL_FLUSHING)
		client_close(c, "eof");
}

/*
 * libevent 2.1 reads a TLS connection only when its socket is readable:
 * plaintext OpenSSL decrypted before reading was paused (queue full)
 * stays inside the SSL object after the resume until the client sends
 * more, which a client waiting for its acks never does.  This moves it
 * into the input buffer.
 */
static void
client_tls_pending(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct ssl_st *ssl = bufferevent_openssl_get_ssl(c->bev);
	struct evbuffer_iovec v;
	int n;

	while (evbuffer_reserve_space(in, TLS_RECORD_BYTES, &v, 1) == 1) {
		if ((n = tls_read_pending(ssl, v.iov_base, v.iov_len)) <= 0)
			break;
		v.iov_len = (size_t)n;
		if (evbuffer_commit_space(in, &v, 1) == -1)
			break;
		log_debug(
		    "%s: %d bytes decrypted before the pause", c->name, n);
	}
}

/*
 * A TLS handshake failed (or timed out): counted by reason and logged,
 * at most once per TLS_LOG_INTERVAL_MS with the count in between.
 */
static void
tls_failed(struct client *c, enum tls_failure why, const char *text)
{
	struct listeners *ls = c->ls;
	int64_t now = clock_mono_ms();

	metrics.tls_handshake_failures[why]++;
	ls->tls_fail_unlogged++;
	if (ls->tls_fail_logged_ms == 0 ||
	    now - ls->tls_fail_logged_ms >= TLS_LOG_INTERVAL_MS) {
		log_warnx("%s: TLS handshake failed (%s): %s (%llu such "
			  "failures since the last message, this one "
			  "included; later ones within 10 s are only counted)",
		    c->name, tls_failure_name(why), text,
		    (unsigned long long)ls->tls_fail_unlogged);
		ls->tls_fail_unlogged = 0;
		ls->tls_fail_logged_ms = now;
	}
	client_close(c, "tls-handshake-failed");
}

/* EOF or an error before the handshake completed: find out why. */
static void
handle_handshake_error(struct client *c)
{
	unsigned long errs[TLS_MAX_ERRORS], e;
	size_t n = 0;
	char why[256];
	enum tls_failure f;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		if (n < TLS_MAX_ERRORS)
			errs[n++] = e;
	f = tls_failure(bufferevent_openssl_get_ssl(c->bev), errs, n, c->err,
	    why, sizeof(why));
	tls_failed(c, f, why);
}

/* The handshake completed: note the client certificate, start reading. */
static void
handle_handshake_done(struct client *c)
{
	struct ssl_st *ssl = bufferevent_openssl_get_ssl(c->bev);

	metrics.tls_handshakes++;
	c->tls_subject = tls_peer_subject(ssl);
	c->rec.tls_subject.ptr = c->tls_subject;
	c->rec.tls_subject.len =
	    c->tls_subject != NULL ? strlen(c->tls_subject) : 0;
	log_debug("%s: TLS handshake done: %s subject=%s", c->name,
	    tls_conn_version(ssl),
	    c->tls_subject != NULL ? c->tls_subject : "(none)");
	c->last_read_ms = clock_mono_ms();
	if (c->ls->paused) {
		bufferevent_disable(c->bev, EV_READ);
		client_set_state(c, CL_PAUSED);
		return;
	}
	client_set_state(c, CL_READING);
	handle_reading_input(c); /* what came with the handshake */
}

static void
client_dispatch(struct client *c, enum cl_event ev)
{
	if (c->state == CL_HANDSHAKE) {
		switch (ev) {
		case CLE_CONNECTED:
			handle_handshake_done(c);
			return;
		case CLE_EOF:
		case CLE_ERROR:
			handle_handshake_error(c);
			return;
		case CLE_READ:
		case CLE_PAUSE:
		case CLE_WRITTEN:
			return; /* reading is decided once it is done */
		default:
			fatalx("%s: event %s in state %s", c->name,
			    cl_event_names[ev], cl_state_names[c->state]);
		}
	}
	switch (ev) {
	case CLE_READ:
		if (c->state != CL_READING)
			break; /* bytes stay buffered until resumed */
		handle_reading_input(c);
		break;
	case CLE_EOF:
	case CLE_ERROR:
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
		if (c->state == CL_READING)
			handle_reading_input(c);
		else if (ev == CLE_ERROR && c->state != CL_PAUSED)
			client_close(c, strerror(c->err)); /* peer gone */
		break;
	case CLE_ACKED:
		handle_acked(c);
		break;
	case CLE_WRITTEN:
		handle_written(c);
		break;
	case CLE_PAUSE:
		if (c->state == CL_READING) {
			bufferevent_disable(c->bev, EV_READ);
			client_set_state(c, CL_PAUSED);
		}
		break;
	case CLE_RESUME:
		if (c->state != CL_PAUSED)
			fatalx("%s: event %s in state %s", c->name,
			    cl_event_names[ev], cl_state_names[c->state]);
		client_set_state(c, CL_READING);
		if (!c->eof)
			bufferevent_enable(c->bev, EV_READ);
		if (c->tls)
			client_tls_pending(c);
		handle_reading_input(c);
		break;
	default:
		fatalx("%s: event %d in state %s", c->name, (int)ev,
		    cl_state_names[c->state]);
	}
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	(void)bev;
	c->last_read_ms = clock_mono_ms();
	client_dispatch(c, CLE_READ);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	client_dispatch(arg, CLE_WRITTEN);
}

static void
client_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	client_dispatch(c, c->end_ev);
}

/*
 * The end of an established TLS connection, handled on the next loop
 * pass: libevent 2.1's OpenSSL bufferevent reports EOF (or an error)
 * from inside the read that found it, before the plaintext that read
 * decrypted is in the input buffer, so the last lines of a sender that
 * closes right after writing would be missed.  Without memory for the
 * event, the end is handled at once (those lines may be lost).
 */
static void
client_end_later(struct client *c, enum cl_event ev)
{
	c->end_ev = ev;
	if (c->ev_end == NULL)
		c->ev_end = evtimer_new(c->ls->base, client_end_cb, c);
	if (c->ev_end == NULL) {
		log_warnx("%s: evtimer_new failed; closing at once", c->name);
		client_dispatch(c, ev);
		return;
	}
	bufferevent_disable(c->bev, EV_READ);
	event_active(c->ev_end, EV_TIMEOUT, 0);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	enum cl_event ev;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		client_dispatch(c, CLE_CONNECTED);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		c->err = EVUTIL_SOCKET_ERROR();
		if (c->err == 0)
			c->err = EPIPE;
		ev = CLE_ERROR;
	} else if (what & BEV_EVENT_EOF) {
		ev = CLE_EOF;
	} else {
		return;
	}
	if (c->tls && c->state != CL_HANDSHAKE)
		client_end_later(c, ev);
	else
		client_dispatch(c, ev);
}

/*
 * A TLS handshake still unfinished after tls-handshake-timeout (or, when
 * that is 0, idle-timeout) is given up: a client that connects and sends
 * nothing, or half a ClientHello, holds no connection slot for long.
 */
static void
sweep_handshake(struct listeners *ls, struct client *c, int64_t now)
{
	int limit = ls->tls_handshake_timeout_ms;

	if (limit == 0)
		limit = ls->set.idle_timeout_ms;
	if (limit == 0 || now - c->accepted_ms < limit)
		return;
	metrics.connections_timed_out++;
	tls_failed(c, TLS_FAILURE_TIMEOUT,
	    ls->tls_handshake_timeout_ms > 0
		? "not finished within tls-handshake-timeout"
		: "not finished within idle-timeout");
}

/*
 * Once a second: close connections idle past idle-timeout, and those
 * whose unfinished message has waited past partial-line-timeout (a
 * slowloris sender); what they sent is framed and stored first.  Paused
 * clients are exempt: the wait is ours, not theirs.
 */
static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listeners *ls = arg;
	struct client *c, *next;
	int64_t now = clock_mono_ms();
	const char *why;

	(void)fd;
	(void)what;
	for (c = ls->clients; c != NULL; c = next) {
		next = c->next;
		if (c->state == CL_HANDSHAKE) {
			sweep_handshake(ls, c, now);
			continue;
		}
		if (c->state != CL_READING || c->eof)
			continue;
		why = NULL;
		if (ls->set.partial_line_timeout_ms > 0 &&
		    c->partial_since_ms != 0 &&
		    now - c->partial_since_ms >=
			ls->set.partial_line_timeout_ms)
			why = "partial-line-timeout";
		else if (ls->set.idle_timeout_ms > 0 &&
		    now - c->last_read_ms >= ls->set.idle_timeout_ms)
			why = "idle-timeout";
		if (why == NULL)
			continue;
		metrics.connections_timed_out++;
		log_info("%s: closing: %s", c->name, why);
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
		client_frame_input(c);
		if (queue_full(ls->q)) {
			pause_all(ls);
			continue;
		}
		client_close(c, why);
	}
}

void
listeners_resume(struct listeners *ls)
{
	struct client *c, *next;

	if (!ls->paused)
		return;
	ls->paused = false;
	metrics.backpressure_ms +=
	    (uint64_t)(clock_mono_ms() - ls->paused_since_ms);
	metrics.backpressure_since_ms = 0;
	log_notice("queue below resume level (%zu bytes): reading again",
	    queue_bytes(ls->q));
	for (c = ls->clients; c != NULL && !ls->paused; c = next) {
		next = c->next;
		if (c->state == CL_PAUSED)
			client_dispatch(c, CLE_RESUME);
	}
}

/* Formats the peer for the peer column ("ip") and log lines. */
static void
client_name(struct client *c, const struct sockaddr *sa, socklen_t salen)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
		NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, sizeof(host), "unknown");
		snprintf(serv, sizeof(serv), "0");
		c->rec.peer = NULL; /* the peer column stays NULL */
	}
	host[strcspn(host, "%")] = '\0'; /* inet has no zone index */
	snprintf(
	    c->addr, sizeof(c->addr), "%.*s", (int)sizeof(c->addr) - 1, host);
	snprintf(c->name, sizeof(c->name),
	    sa->sa_family == AF_INET6 ? "c%llu [%s]:%.5s" : "c%llu %s:%.5s",
	    (unsigned long long)c->id, c->addr, serv);
}

/* Why a new connection may not stay, or NULL if it may. */
static const char *
refuse_reason(const struct listen_sock *sock, const struct sockaddr *sa)
{
	const struct listeners *ls = sock->ls;
	int i;

	if (sock->nallow > 0) {
		for (i = 0; i < sock->nallow; i++)
			if (cidr_match(&sock->allow[i], sa))
				break;
		if (i == sock->nallow)
			return "not in the listener's allow list";
	}
	if (metrics.connections_open >= (uint64_t)ls->set.max_connections)
		return "max-connections reached";
	if (sock->tls && ls->handshaking >= ls->set.max_tls_handshakes)
		return "tls-max-handshakes reached (too many TLS handshakes "
		       "under way)";
	return NULL;
}

/* Closes a refused connection at once; logs at most every 10 s. */
static void
refuse(struct listeners *ls, int fd, const struct sockaddr *sa, socklen_t salen,
    const char *why)
{
	char host[NI_MAXHOST];
	int64_t now = clock_mono_ms();

	close(fd);
	metrics.connections_refused++;
	ls->refused_unlogged++;
	if (now - ls->refuse_logged_ms < REFUSE_LOG_INTERVAL_MS)
		return;
	if (getnameinfo(
		sa, salen, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(host, sizeof(host), "unknown");
	log_warnx("refused connection from %s: %s (%llu refused since the "
		  "last such message)",
	    host, why, (unsigned long long)ls->refused_unlogged);
	ls->refused_unlogged = 0;
	ls->refuse_logged_ms = now;
}

/*
 * The client's bufferevent, owning fd from now on except on failure (NULL:
 * the caller closes fd).  On a tls=on listener, an OpenSSL one in the
 * accepting state, made from the current context: a SIGHUP reload that
 * replaces the context leaves the connections made before on theirs.
 */
static struct bufferevent *
client_bev_new(struct listeners *ls, const struct listen_sock *sock,
    struct client *c, int fd)
{
	struct bufferevent *bev;
	struct ssl_st *ssl;

	if (!sock->tls) {
		bev =
		    bufferevent_socket_new(ls->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL)
			log_warnx("%s: bufferevent_socket_new failed", c->name);
		return bev;
	}
	if (ls->tls == NULL || (ssl = tls_conn_new(ls->tls)) == NULL) {
		log_warnx("%s: connection dropped: no TLS context (out of "
			  "memory?)",
		    c->name);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(ls->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		log_warnx("%s: bufferevent_openssl_socket_new failed", c->name);
		tls_conn_free(ssl);
		return NULL;
	}
	/* A sender that closes without close_notify ends its stream as a
	 * plain TCP sender does (its last line is stored). */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c->tls = true;
	return bev;
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listen_sock *sock = arg;
	struct listeners *ls = sock->ls;
	struct client *c = NULL;
	const char *why;
	int n;

	(void)evl;
	if ((why = refuse_reason(sock, sa)) != NULL) {
		refuse(ls, fd, sa, (socklen_t)salen, why);
		return;
	}
	if ((n = iptable_add(ls->per_ip, sa)) == -1 ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("accept: client dropped");
		if (n != -1)
			iptable_del(ls->per_ip, sa);
		close(fd);
		return;
	}
	if (ls->set.max_per_ip > 0 && n > ls->set.max_per_ip) {
		iptable_del(ls->per_ip, sa);
		free(c);
		refuse(ls, fd, sa, (socklen_t)salen,
		    "max-connections-per-ip reached");
		return;
	}
	c->ls = ls;
	c->id = ++ls->next_id;
	memcpy(&c->sa, sa,
	    (size_t)salen < sizeof(c->sa) ? (size_t)salen : sizeof(c->sa));
	c->last_read_ms = clock_mono_ms();
	c->rec.peer = c->addr;
	client_name(c, sa, (socklen_t)salen);
	framer_init(&c->fr, ls->set.max_line_bytes, sock->framing);
	c->format = sock->format;
	c->accepted_ms = c->last_read_ms;
	if ((c->bev = client_bev_new(ls, sock, c, fd)) == NULL) {
		iptable_del(ls->per_ip, sa);
		close(fd);
		free(c);
		return;
	}
	bufferevent_setcb(
	    c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	if (sock->ack) {
		if ((c->ack = calloc(1, sizeof(*c->ack))) == NULL) {
			log_warn("%s: connection dropped", c->name);
			iptable_del(ls->per_ip, sa);
			bufferevent_free(c->bev);
			free(c);
			return;
		}
		c->ack->refs = 1;
		c->ack->c = c;
		c->ack_spooled = sock->ack == CONFIG_ACK_SPOOLED;
	}
	/* Room for one whole line, so the framer can always progress. */
	bufferevent_setwatermark(
	    c->bev, EV_READ, 0, ls->set.max_line_bytes + READ_CHUNK_BYTES);
	bufferevent_set_max_single_read(c->bev, READ_CHUNK_BYTES);
	c->next = ls->clients;
	if (c->next != NULL)
		c->next->prev = c;
	ls->clients = c;
	metrics.connections_accepted++;
	metrics.connections_open++;
	log_debug("%s: accepted%s", c->name, c->tls ? " (TLS)" : "");
	if (c->tls) {
		c->state = CL_HANDSHAKE; /* reads until it is done */
		ls->handshaking++;
	} else
		c->state = ls->paused ? CL_PAUSED : CL_READING;
	if (c->state != CL_PAUSED)
		bufferevent_enable(c->bev, EV_READ);
}

static void
accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listeners *ls = arg;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < ls->nsocks; i++)
		evconnlistener_enable(ls->socks[i]->evl);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS...): back off for a moment. */
static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listeners *ls = ((struct listen_sock *)arg)->ls;
	struct timeval tv = { ACCEPT_RETRY_MS / 1000,
		(ACCEPT_RETRY_MS % 1000) * 1000 };
	size_t i;

	(void)evl;
	metrics.accept_errors++;
	log_warn("accept (open connections: %llu; raise LimitNOFILE / "
		 "ulimit -n if this is EMFILE); pausing accepts for %d ms",
	    (unsigned long long)metrics.connections_open, ACCEPT_RETRY_MS);
	for (i = 0; i < ls->nsocks; i++)
		evconnlistener_disable(ls->socks[i]->evl);
	evtimer_add(ls->ev_accept_retry, &tv);
}

/* Starts the once-a-second sweep (timeouts) unless it runs already. */
static void
sweep_arm(struct listeners *ls)
{
	struct timeval tv = { SWEEP_INTERVAL_MS / 1000,
		(SWEEP_INTERVAL_MS % 1000) * 1000 };

	if (!event_pending(ls->ev_sweep, EV_TIMEOUT, NULL) &&
	    event_add(ls->ev_sweep, &tv) == -1)
		log_warnx("event_add: the timeout sweep could not start");
}

struct listeners *
listeners_new(struct event_base *base, struct queue *q,
    const struct listener_settings *set)
{
	struct listeners *ls;

	if ((ls = calloc(1, sizeof(*ls))) == NULL)
		return NULL;
	ls->base = base;
	ls->q = q;
	ls->set = *set;
	ls->ev_accept_retry = evtimer_new(base, accept_retry_cb, ls);
	ls->ev_sweep = event_new(base, -1, EV_PERSIST, sweep_cb, ls);
	ls->per_ip = iptable_new();
	if (ls->ev_accept_retry == NULL || ls->ev_sweep == NULL ||
	    ls->per_ip == NULL) {
		listeners_free(ls);
		return NULL;
	}
	if (set->idle_timeout_ms > 0 || set->partial_line_timeout_ms > 0)
		sweep_arm(ls);
	return ls;
}

void
listeners_set_settings(
    struct listeners *ls, const struct listener_settings *set)
{
	size_t max_line_bytes = ls->set.max_line_bytes;

	ls->set = *set;
	ls->set.max_line_bytes = max_line_bytes; /* framers are sized for it */
	if (set->idle_timeout_ms > 0 || set->partial_line_timeout_ms > 0)
		sweep_arm(ls);
}

void
listeners_set_tls(
    struct listeners *ls, struct tls_ctx *ctx, int handshake_timeout_ms)
{
	tls_ctx_free(ls->tls); /* its connections hold their own reference */
	ls->tls = ctx;
	ls->tls_handshake_timeout_ms = handshake_timeout_ms;
	if (handshake_timeout_ms > 0)
		sweep_arm(ls);
}

/* socket + bind + listen for one address; -1 with err set. */
static int
bind_one(
    const struct addrinfo *ai, const char *hostport, char *err, size_t errlen)
{
	int fd, on = 1;

	fd = socket(ai->ai_family,
	    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		snprintf(err, errlen, "listen %s: socket: %s", hostport,
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(err, errlen, "listen %s: %s%s", hostport,
		    strerror(errno),
		    errno == EADDRINUSE ? " (another process, perhaps another "
					  "logsinkd, has that port)"
			: errno == EACCES
			? " (ports below 1024 need "
			  "CAP_NET_BIND_SERVICE or the systemd "
			  "socket unit)"
			: "");
		close(fd);
		return -1;
	}
	return fd;
}

static int
add_sock(struct listeners *ls, int fd, const char *hostport,
    const struct listen_spec *spec, char *err, size_t errlen)
{
	struct listen_sock **socks, *s;

	if (spec->tls && ls->tls == NULL) {
		close(fd);
		snprintf(err, errlen,
		    "listen %s: tls=on but no TLS context was loaded "
		    "(tls-cert, tls-key)",
		    hostport);
		return -1;
	}
	socks = reallocarray(ls->socks, ls->nsocks + 1, sizeof(*socks));
	if (socks != NULL)
		ls->socks = socks;
	if (socks == NULL || (s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		snprintf(err, errlen, "listen %s: out of memory", hostport);
		return -1;
	}
	s->ls = ls;
	memcpy(s->allow, spec->allow, sizeof(s->allow));
	s->ack = spec->ack;
	s->tls = spec->tls;
	s->nallow = spec->nallow;
	s->framing = (enum framer_mode)spec->framing;
	s->format = (enum parser_format)spec->format;
	snprintf(s->name, sizeof(s->name), "%s", hostport);
	s->evl = evconnlistener_new(
	    ls->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (s->evl == NULL) {
		close(fd);
		free(s);
		snprintf(err, errlen, "listen %s: evconnlistener_new failed",
		    hostport);
		return -1;
	}
	evconnlistener_set_error_cb(s->evl, accept_error_cb);
	ls->socks[ls->nsocks++] = s;
	return 0;
}

int
listeners_add(struct listeners *ls, const struct listen_spec *spec, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char hostport[300];
	int fd, rc;

	snprintf(hostport, sizeof(hostport),
	    strchr(spec->host, ':') != NULL ? "[%s]:%s" : "%s:%s", spec->host,
	    spec->port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(spec->host, spec->port, &hints, &res)) != 0) {
		snprintf(
		    err, errlen, "listen %s: %s", hostport, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = bind_one(ai, hostport, err, errlen)) == -1 ||
		    add_sock(ls, fd, hostport, spec, err, errlen) == -1) {
			freeaddrinfo(res);
			return -1;
		}
	}
	freeaddrinfo(res);
	log_info("listening on %s framing=%s format=%s tls=%s", hostport,
	    framer_mode_name((enum framer_mode)spec->framing),
	    spec->format == PARSER_RAW ? "raw" : "auto",
	    spec->tls ? "on" : "off");
	return 0;
}

int
listeners_add_fd(struct listeners *ls, int fd, const struct listen_spec *spec,
    char *err, size_t errlen)
{
	struct listen_spec defaults;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV], name[300];

	if (spec == NULL) {
		if (config_parse_listen("x:1", &defaults, err, errlen) == -1)
			return -1;
		spec = &defaults;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), serv,
		sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(err, errlen, "passed socket %d: getsockname: %s", fd,
		    strerror(errno));
		return -1;
	}
	snprintf(name, sizeof(name),
	    ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	if (add_sock(ls, fd, name, spec, err, errlen) == -1)
		return -1;
	log_info("listening on %s (socket from systemd) framing=%s format=%s "
		 "tls=%s",
	    name, framer_mode_name((enum framer_mode)spec->framing),
	    spec->format == PARSER_RAW ? "raw" : "auto",
	    spec->tls ? "on" : "off");
	return 0;
}

/*
 * One last read of everything the kernel holds for the client, so that
 * lines that reached this host before the signal are queued too.  Not on
 * TLS connections: the kernel holds records there, not lines; what
 * libevent has decrypted already is framed.
 */
static void
client_final_read(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	int fd = bufferevent_getfd(c->bev);

	if (c->tls && c->state != CL_HANDSHAKE)
		client_tls_pending(c);
	while (!c->tls && !queue_full(c->ls->q) && !c->eof) {
		if (evbuffer_read(in, fd, READ_CHUNK_BYTES) <= 0)
			break;
		client_frame_input(c);
	}
	c->eof = true;
	if (!queue_full(c->ls->q))
		client_frame_input(c);
}

size_t
listeners_shutdown(struct listeners *ls)
{
	struct client *c, *next;
	size_t i, n = 0;

	for (i = 0; i < ls->nsocks; i++) {
		evconnlistener_free(ls->socks[i]->evl);
		free(ls->socks[i]);
	}
	ls->nsocks = 0;
	evtimer_del(ls->ev_accept_retry);
	event_del(ls->ev_sweep);
	for (c = ls->clients; c != NULL; c = next) {
		next = c->next;
		if (c->state == CL_ACKWAIT || c->state == CL_FLUSHING)
			continue;
		client_final_read(c);
		bufferevent_disable(c->bev, EV_READ);
		if (c->ack != NULL && c->err == 0 &&
		    c->ack->committed < c->queued) {
			client_set_state(c, CL_ACKWAIT);
			continue;
		}
		client_close(c, "shutdown");
		n++;
	}
	return n;
}

size_t
listeners_open(const struct listeners *ls)
{
	const struct client *c;
	size_t n = 0;

	for (c = ls->clients; c != NULL; c = c->next)
		n++;
	return n;
}

static void
ackref_release(struct ackref *a)
{
	if (--a->refs == 0) {
		free(a->spans);
		free(a);
	}
}

void
listener_ack_take(void *ref, uint64_t first, uint32_t n)
{
	(void)first;
	(void)n;
	((struct ackref *)ref)->refs++;
}

/*
 * Lines first .. first + n - 1 are stored.  "ok N" promises that lines
 * 0 .. N - 1 all are, so a run stored ahead of a gap waits in spans.
 * Returns -1 when a span could not be kept (ENOMEM): the acks then stop
 * short, which is safe (the client resends).
 */
static int
ackref_add(struct ackref *a, uint64_t first, uint64_t end)
{
	struct ack_span *s;
	size_t i, cap;

	if (first > a->committed) {
		if (a->nspans == a->capspans) {
			cap = a->capspans ? a->capspans * 2 : 4;
			s = reallocarray(a->spans, cap, sizeof(*s));
			if (s == NULL)
				return -1;
			a->spans = s;
			a->capspans = cap;
		}
		for (i = a->nspans; i > 0 && a->spans[i - 1].first > first; i--)
			a->spans[i] = a->spans[i - 1];
		a->spans[i].first = first;
		a->spans[i].end = end;
		a->nspans++;
		return 0;
	}
	if (end > a->committed)
		a->committed = end;
	while (a->nspans > 0 && a->spans[0].first <= a->committed) {
		if (a->spans[0].end > a->committed)
			a->committed = a->spans[0].end;
		memmove(a->spans, a->spans + 1,
		    (a->nspans - 1) * sizeof(*a->spans));
		a->nspans--;
	}
	return 0;
}

void
listener_ack_credit(void *ref, uint64_t first, uint32_t n)
{
	struct ackref *a = ref;
	uint64_t before = a->committed;

	if (ackref_add(a, first, first + n) == -1)
		log_warn("acknowledgement bookkeeping");
	if (a->c != NULL && a->committed != before)
		client_dispatch(a->c, CLE_ACKED);
	ackref_release(a);
}

void
listener_ack_drop(void *ref, uint64_t first, uint32_t n)
{
	(void)first;
	(void)n;
	ackref_release(ref);
}

void
listeners_free(struct listeners *ls)
{
	if (ls == NULL)
		return;
	if (ls->ev_accept_retry != NULL)
		listeners_shutdown(ls);
	while (ls->clients != NULL)
		client_close(ls->clients, "exit");
	if (ls->ev_accept_retry != NULL)
		event_free(ls->ev_accept_retry);
	if (ls->ev_sweep != NULL)
		event_free(ls->ev_sweep);
	iptable_free(ls->per_ip);
	tls_ctx_free(ls->tls);
	free(ls->socks);
	free(ls);
}
