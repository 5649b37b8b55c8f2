/*
 * listener: accepting TCP clients and reading their lines
 * (see include/logsink/listener.h).
 *
 * Each client is a state machine (diagram beside enum cl_state in
 * listener_int.h): libevent callbacks, the timeout sweep, shutdown and
 * the ack drain all reach it as events of client_dispatch(), which alone
 * decides to close.  Closing only marks the client and links it on a reap
 * list; the reaper frees it once per loop pass, so a callback already
 * queued for it finds it marked, not freed.  Ack credits reach clients
 * only through the drain of the ack module's completion list (ack.h),
 * never from inside the queue or pgpool.  The TLS glue is in
 * listener_tls.c.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "logsink/ack.h"
#include "logsink/clock.h"
#include "logsink/config.h"
#include "logsink/framer.h"
#include "logsink/iptable.h"
#include "logsink/listener.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/parser.h"
#include "logsink/proxy.h"
#include "logsink/queue.h"
#include "logsink/record.h"
#include "logsink/tls.h"
#include "logsink/tzrule.h"

#include "listener_int.h"

/*
 * Largest single read per client.  Measured (docs/performance.md): 16 and
 * 256 KiB cost the same instructions per line and gave no consistent rate
 * difference; bigger reads would only let busy connections hold more.
 * SO_RCVBUF is left to the kernel's autotuning (a fixed 1 MiB gave no
 * consistent gain); TCP_NODELAY is moot for a receiver.
 */
#define READ_CHUNK_BYTES   (64 * 1024)
#define LISTEN_BACKLOG     1024
#define ACCEPT_RETRY_MS    1000
#define SWEEP_INTERVAL_MS  1000
/*
 * A parser scratch buffer bigger than this after a message is released
 * (memcached's rbuf_release): a client that once sent one long JSON line
 * with escapes would otherwise keep about twice that line until it
 * disconnects, outside queue-bytes.  Ordinary lines need far less; a
 * sender of long lines pays one malloc per such line.
 */
#define SCRATCH_KEEP_BYTES (16 * 1024)

static const char *const cl_state_names[] = { "PROXY", "HANDSHAKE", "READING",
	"PAUSED", "ACKWAIT", "FLUSHING", "CLOSING" };

static const char *const cl_event_names[] = {
	"READ",
	"EOF",
	"ERROR",
	"PAUSE",
	"RESUME",
	"ACKED",
	"WRITTEN",
	"CONNECTED",
	"TIMEOUT",
	"DETECT",
	"SHUTDOWN",
};

_Static_assert(sizeof(cl_state_names) / sizeof(cl_state_names[0]) == CL_NSTATES,
    "a name for each cl_state");
_Static_assert(
    sizeof(cl_event_names) / sizeof(cl_event_names[0]) == CLE_NEVENTS,
    "a name for each cl_event");

/* One bound socket; owned by its listeners set. */
struct listen_sock {
	struct listeners *ls;
	struct evconnlistener *evl;
	enum framer_mode framing;
	enum parser_format format;
	int ack; /* enum config_ack */
	bool tls;
	const struct tzrule *tz;           /* in ls->tzs; NULL: local */
	const struct session_ops *session; /* proto=relp...: or NULL */
	void *sess_conf;                   /* session->listen's; in ls->confs */
	struct cidr allow[CONFIG_MAX_ALLOW];
	int nallow;
	struct cidr proxy[CONFIG_MAX_ALLOW]; /* proxy=: PROXY headers */
	int nproxy;
	char name[300];
};

void
client_set_state(struct client *c, enum cl_state state)
{
	assert((unsigned)state < CL_NSTATES);
	log_debug("%s: %s -> %s", c->name, cl_state_names[c->state],
	    cl_state_names[state]);
	if (c->state == CL_HANDSHAKE && state != CL_HANDSHAKE)
		c->ls->handshaking--;
	c->state = state;
}

/*
 * c->rec, parsed, -> the queue as the client's next line.  Inlined into
 * client_message(), the per-line path, so that it costs no call there
 * (callgrind: GCC 12 -O2 kept it a call otherwise).
 */
static inline __attribute__((always_inline)) bool
record_queue(struct client *c, size_t len, bool truncated)
{
	struct queue *q = c->ls->q;
	size_t replaced;
	int rc;

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
	rc = queue_append_acked(
	    q, &c->rec, &replaced, c->ack, c->queued, c->ack_spooled);
	if (rc == -1) {
		metrics.lines_dropped_oom++;
		log_warn("%s: line dropped, out of memory", c->name);
	} else {
		c->queued++;
		if (replaced > 0) {
			metrics.lines_sanitized++;
			metrics.bytes_replaced += replaced;
		}
	}
	if (c->scratch.cap > SCRATCH_KEEP_BYTES)
		buf_free(&c->scratch); /* rec is queued: not read again */
	return rc == -1 || !queue_full(q);
}

/* framer callback (and RELP's): one message -> one queued record. */
bool
client_message(void *arg, const char *msg, size_t len, bool truncated)
{
	struct client *c = arg;

	if (parser_parse_tz(&c->rec, msg, len, c->format, c->tz, &c->scratch) ==
	    -1)
		log_warn("%s: parser scratch buffer", c->name);
	return record_queue(c, len, truncated);
}

bool
client_record(struct client *c, size_t len, bool truncated)
{
	return record_queue(c, len, truncated);
}

static void
client_detect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	client_dispatch(arg, CLE_DETECT);
}

/*
 * framing=auto and the framer holds complete lines it cannot frame yet
 * (framer.h, AUTO): (re)starts the framing-detect-timeout, so they wait
 * that long after the last bytes came.  False if no timer could be set.
 */
static bool
client_detect_arm(struct client *c)
{
	int ms = c->ls->set.framing_detect_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (c->ev_detect == NULL)
		c->ev_detect = evtimer_new(c->ls->base, client_detect_cb, c);
	if (c->ev_detect != NULL && evtimer_add(c->ev_detect, &tv) == 0)
		return true;
	log_warnx("%s: evtimer_new/evtimer_add failed; lines waiting for the "
		  "framing to be detected go as LF lines now",
	    c->name);
	return false;
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
	size_t len, used, need = 0;
	ssize_t want;
	char term;
	uint64_t lines_before = c->lines;
	framer_msg_cb cb;

	c->rec.received_us = clock_real_us();
	fair_round_begin(c);
	cb = fair_msg_cb(c);
again:
	while (fair_may_frame(c) && !queue_full(c->ls->q) &&
	    (len = evbuffer_get_length(in)) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (c->sess_ops != NULL)
			used = c->sess_ops->feed(c, v.iov_base, v.iov_len,
			    c->eof && v.iov_len == len, &need);
		else
			used = framer_feed(&c->fr, v.iov_base, v.iov_len,
			    c->eof && v.iov_len == len, cb, c);
		if (used > 0) {
			c->bytes += used;
			evbuffer_drain(in, used);
			continue;
		}
		if (v.iov_len == len || (c->sess_ops != NULL && need == 0))
			break; /* the message's end has not arrived */
		if (c->sess_ops == NULL)
			need = c->fr.need;
		if (need > v.iov_len) {
			want = need < len ? (ssize_t)need : -1;
		} else {
			term = framer_terminator(&c->fr);
			nl = evbuffer_search(in, &term, 1, NULL);
			want = nl.pos >= 0 ? (ssize_t)nl.pos + 1 : -1;
		}
		if (evbuffer_pullup(in, want) == NULL)
			break;
	}
	if (c->fr.held && !client_detect_arm(c)) {
		framer_decide(&c->fr);
		goto again;
	}
	if (!c->fr.held && c->ev_detect != NULL)
		event_del(c->ev_detect);
	fair_round_end(c);
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
	if (c->sess_ops != NULL)
		c->sess_ops->check(c);
}

/*
 * Marks c CLOSING and links it on the reap list; the only way a client
 * closes.  Its events are disabled and it leaves the client list, the
 * per-IP table and the ack completions at once (it counts as closed), but
 * its memory stays until the reaper runs, later in this loop pass: a
 * callback already queued for it finds it CLOSING and is ignored.
 */
void
client_close(struct client *c, const char *reason)
{
	struct listeners *ls = c->ls;
	size_t left;

	if (c->state == CL_CLOSING)
		return;
	left = c->bev != NULL
	    ? evbuffer_get_length(bufferevent_get_input(c->bev))
	    : 0;
	if (left > 0)
		log_warnx("%s: closing with %zu unread bytes (%s)", c->name,
		    left, reason);
	log_debug("%s: closed reason=%s lines=%llu bytes=%llu", c->name, reason,
	    (unsigned long long)c->lines, (unsigned long long)c->bytes);
	client_set_state(c, CL_CLOSING);
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	client_proxy_stop(c);
	if (c->ev_end != NULL)
		event_del(c->ev_end);
	if (c->ev_detect != NULL)
		event_del(c->ev_detect);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ls->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	if (c->ack != NULL) {
		ack_disown(c->ack);
		c->ack = NULL;
	}
	if (c->ip_counted)
		iptable_del(ls->per_ip, (struct sockaddr *)&c->sa);
	fair_forget(c);
	metrics.connections_open--;
	c->reap_next = ls->reap;
	ls->reap = c;
	if (c->reap_next == NULL)
		event_active(ls->ev_reap, EV_TIMEOUT, 0);
}

/* Frees a CLOSING client: the bufferevent with its fd (and SSL). */
static void
client_free(struct client *c)
{
	assert(c->state == CL_CLOSING);
	if (c->ev_end != NULL)
		event_free(c->ev_end);
	if (c->ev_detect != NULL)
		event_free(c->ev_detect);
	if (c->ev_rate != NULL)
		event_free(c->ev_rate);
	client_proxy_free(c); /* and its fd, if it never got a bev */
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	buf_free(&c->scratch);
	free(c->tls_subject);
	if (c->sess_ops != NULL)
		c->sess_ops->free(c);
	free(c);
}

/* Frees every client on the reap list. */
static void
clients_reap(struct listeners *ls)
{
	struct client *c;

	while ((c = ls->reap) != NULL) {
		ls->reap = c->reap_next;
		client_free(c);
	}
}

/* The reaper: made active when the reap list becomes non-empty. */
static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	clients_reap(arg);
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
	for (c = ls->clients; c != NULL; c = c->next) {
		if (c->state == CL_READING)
			metrics.clients_paused[METRICS_PAUSE_QUEUE_FULL]++;
		client_dispatch(c, CLE_PAUSE);
	}
}

/* Closes now, or once the output buffer (acks) has been written. */
static void
client_finish(struct client *c, const char *reason)
{
	if (c->sess_ops != NULL && c->err == 0)
		reason = c->sess_ops->finish(c, reason);
	if (c->err != 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		client_close(c, c->err ? strerror(c->err) : reason);
		return;
	}
	client_set_state(c, CL_FLUSHING);
}

/*
 * Whether the client is owed an "ok N" for lines it sent: they are not
 * stored yet, or the drain has not told it yet (its CLE_ACKED is due).
 */
static bool
client_acks_due(const struct client *c)
{
	return c->ack != NULL && c->err == 0 && c->acked < c->queued;
}

/* At EOF: with acks, wait until every queued line is acknowledged. */
static void
client_eof(struct client *c)
{
	if (client_acks_due(c)) {
		client_set_state(c, CL_ACKWAIT);
		return;
	}
	client_finish(c, "eof");
}

/* Reading: frame what arrived; at EOF frame the rest and finish. */
void
handle_reading_input(struct client *c)
{
	client_frame_input(c);
	if (queue_full(c->ls->q)) {
		pause_all(c->ls);
		return;
	}
	if (fair_check(c))
		return; /* held: the rest waits in PAUSED */
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

	if (c->sess_ops != NULL) {
		c->sess_ops->send_acks(c);
		return;
	}
	c->acked = ack_committed(c->ack);
	if (evbuffer_get_length(out) > 0) {
		c->ack_pending = true;
		return;
	}
	c->ack_pending = false;
	evbuffer_add_printf(out, "ok %llu\n", (unsigned long long)c->acked);
}

static void
handle_acked(struct client *c)
{
	if (c->err != 0)
		return;
	client_send_ack(c);
	if (c->state == CL_ACKWAIT && !client_acks_due(c))
		client_finish(c, "eof");
}

static void
handle_written(struct client *c)
{
	if (c->ack_pending) {
		client_send_ack(c);
		if (c->state == CL_ACKWAIT && !client_acks_due(c))
			client_finish(c, "eof"); /* RELP wrote its last */
		return;
	}
	if (c->state == CL_FLUSHING)
		client_close(c, "eof");
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

	if (c->tls)
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

/* READING or PAUSED at shutdown: queue what is here, then close, or wait
 * for the acks of what was queued. */
static void
handle_shutdown(struct client *c)
{
	client_final_read(c);
	bufferevent_disable(c->bev, EV_READ);
	if (c->sess_ops != NULL)
		c->sess_ops->shutdown(c); /* its goodbye once answered */
	if (client_acks_due(c)) {
		client_set_state(c, CL_ACKWAIT);
		return;
	}
	if (c->sess_ops != NULL)
		client_finish(c, "shutdown");
	else
		client_close(c, "shutdown");
}

/*
 * READING past idle-timeout or partial-line-timeout (c->timeout, set by
 * the sweep): what it sent is framed and stored first; if that fills the
 * queue, the rest waits in PAUSED and the client ends once resumed.
 */
static void
handle_reading_timeout(struct client *c)
{
	metrics.connections_timed_out++;
	log_info("%s: closing: %s", c->name, c->timeout);
	c->eof = true;
	bufferevent_disable(c->bev, EV_READ);
	client_frame_input(c);
	if (queue_full(c->ls->q)) {
		pause_all(c->ls);
		return;
	}
	client_close(c, c->timeout);
}

/* EOF or a read error: frame the rest when reading; else it waits. */
static void
handle_end(struct client *c, enum cl_event ev)
{
	c->eof = true;
	bufferevent_disable(c->bev, EV_READ);
	if (c->state == CL_READING)
		handle_reading_input(c);
	else if (ev == CLE_ERROR && c->state != CL_PAUSED)
		client_close(c, strerror(c->err)); /* peer gone */
}

/*
 * framing-detect-timeout passed without new bytes while the framer held
 * complete lines undecided (framer.h, AUTO): they go as LF lines now, or
 * on resume when paused.
 */
static void
handle_detect(struct client *c)
{
	log_debug("%s: framing undecided after framing-detect-timeout; the "
		  "lines so far go as LF lines",
	    c->name);
	framer_decide(&c->fr);
	if (c->state == CL_READING)
		handle_reading_input(c);
}

static void
handle_reading_pause(struct client *c)
{
	bufferevent_disable(c->bev, EV_READ);
	client_set_state(c, CL_PAUSED);
}

static void
handle_paused_resume(struct client *c)
{
	client_set_state(c, CL_READING);
	if (!c->eof)
		bufferevent_enable(c->bev, EV_READ);
	if (c->tls)
		client_tls_pending(c);
	handle_reading_input(c);
}

static void __attribute__((noreturn))
client_bad_event(const struct client *c, enum cl_event ev)
{
	fatalx("%s: event %s in state %s", c->name, cl_event_names[ev],
	    cl_state_names[c->state]);
}

/* PROXY: only the header is read; no line came yet. */
static void
dispatch_proxy(struct client *c, enum cl_event ev)
{
	switch (ev) {
	case CLE_READ:
		handle_proxy_read(c);
		break;
	case CLE_TIMEOUT:
		handle_proxy_timeout(c);
		break;
	case CLE_SHUTDOWN:
		client_close(c, "shutdown");
		break;
	case CLE_PAUSE:
		break; /* decided once it is admitted */
	default:
		client_bad_event(c, ev);
	}
}

/* HANDSHAKE: nothing is read before the handshake is done. */
static void
dispatch_handshake(struct client *c, enum cl_event ev)
{
	switch (ev) {
	case CLE_CONNECTED:
		handle_handshake_done(c);
		break;
	case CLE_EOF:
	case CLE_ERROR:
		handle_handshake_error(c);
		break;
	case CLE_TIMEOUT:
		handle_handshake_timeout(c);
		break;
	case CLE_SHUTDOWN:
		client_close(c, "shutdown"); /* no line came yet */
		break;
	case CLE_READ:
	case CLE_PAUSE:
	case CLE_WRITTEN:
	case CLE_DETECT:
		break; /* reading is decided once it is done */
	default:
		client_bad_event(c, ev);
	}
}

/*
 * The client machine (diagram beside enum cl_state in listener_int.h).
 * Every event of a client comes here: libevent's (through 3-line shims),
 * the sweep's, shutdown's and the ack drain's.  A CLOSING client ignores
 * them all: they were queued before it was marked.
 */
void
client_dispatch(struct client *c, enum cl_event ev)
{
	assert((unsigned)ev < CLE_NEVENTS);
	log_debug("%s: %s in %s", c->name, cl_event_names[ev],
	    cl_state_names[c->state]);
	switch (c->state) {
	case CL_CLOSING:
		return; /* the reaper frees it */
	case CL_PROXY:
		dispatch_proxy(c, ev);
		return;
	case CL_HANDSHAKE:
		dispatch_handshake(c, ev);
		return;
	case CL_READING:
	case CL_PAUSED:
	case CL_ACKWAIT:
	case CL_FLUSHING:
		break;
	default:
		client_bad_event(c, ev);
	}
	switch (ev) {
	case CLE_READ:
		if (c->state == CL_READING)
			handle_reading_input(c);
		break; /* otherwise bytes stay buffered until resumed */
	case CLE_EOF:
	case CLE_ERROR:
		handle_end(c, ev);
		break;
	case CLE_ACKED:
		handle_acked(c);
		break;
	case CLE_WRITTEN:
		handle_written(c);
		break;
	case CLE_PAUSE:
		if (c->state == CL_READING)
			handle_reading_pause(c);
		break;
	case CLE_RESUME:
		if (c->state != CL_PAUSED)
			client_bad_event(c, ev);
		handle_paused_resume(c);
		break;
	case CLE_TIMEOUT:
		if (c->state == CL_READING && !c->eof)
			handle_reading_timeout(c);
		break; /* paused: the wait is ours; ending: not idle */
	case CLE_DETECT:
		handle_detect(c);
		break;
	case CLE_SHUTDOWN:
		if (c->state == CL_READING || c->state == CL_PAUSED)
			handle_shutdown(c);
		break; /* ACKWAIT, FLUSHING: ending already */
	default:
		client_bad_event(c, ev);
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
 * Why a handshake under way is overdue, or NULL: tls-handshake-timeout,
 * or idle-timeout when that is 0.  A client that connects and sends
 * nothing, or half a ClientHello, holds no connection slot for long.
 */
static const char *
handshake_overdue(
    const struct listeners *ls, const struct client *c, int64_t now)
{
	int limit = ls->tls_handshake_timeout_ms;

	if (limit == 0)
		limit = ls->set.idle_timeout_ms;
	if (limit == 0 || now - c->accepted_ms < limit)
		return NULL;
	return ls->tls_handshake_timeout_ms > 0
	    ? "not finished within tls-handshake-timeout"
	    : "not finished within idle-timeout";
}

/* Why a reading client is overdue (a slowloris sender, an idle one), or
 * NULL. */
static const char *
reading_overdue(const struct listeners *ls, const struct client *c, int64_t now)
{
	if (ls->set.partial_line_timeout_ms > 0 && c->partial_since_ms != 0 &&
	    now - c->partial_since_ms >= ls->set.partial_line_timeout_ms)
		return "partial-line-timeout";
	if (ls->set.idle_timeout_ms > 0 &&
	    now - c->last_read_ms >= ls->set.idle_timeout_ms)
		return "idle-timeout";
	return NULL;
}

/*
 * Once a second: a TIMEOUT event for each connection idle past
 * idle-timeout, whose unfinished message has waited past
 * partial-line-timeout, or whose TLS handshake takes too long.  Paused
 * clients are exempt: the wait is ours, not theirs.
 */
static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listeners *ls = arg;
	struct client *c, *next;
	int64_t now = clock_mono_ms();

	(void)fd;
	(void)what;
	for (c = ls->clients; c != NULL; c = next) {
		next = c->next;
		if (c->state == CL_PROXY)
			c->timeout = proxy_overdue(ls, c, now);
		else if (c->state == CL_HANDSHAKE)
			c->timeout = handshake_overdue(ls, c, now);
		else if (c->state == CL_READING && !c->eof)
			c->timeout = reading_overdue(ls, c, now);
		else
			continue;
		if (c->timeout != NULL)
			client_dispatch(c, CLE_TIMEOUT);
	}
}

void
listeners_resume(struct listeners *ls)
{
	if (!ls->paused)
		return;
	ls->paused = false;
	metrics.backpressure_ms +=
	    (uint64_t)(clock_mono_ms() - ls->paused_since_ms);
	metrics.backpressure_since_ms = 0;
	log_notice("queue below resume level (%zu bytes): reading again",
	    queue_bytes(ls->q));
	fair_resume_all(ls);
}

void
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

/* Whether sa is in list[0..n); an empty list holds every address. */
static bool
in_list(const struct cidr *list, int n, const struct sockaddr *sa)
{
	int i;

	for (i = 0; i < n; i++)
		if (cidr_match(&list[i], sa))
			return true;
	return n == 0;
}

static socklen_t
sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					 : sizeof(struct sockaddr_in);
}

/*
 * Why a new connection may not stay, or NULL if it may.  On a proxy=
 * listener the peer must be one of its proxies (a PROXY header from
 * anyone else is never trusted); allow= and the TLS handshake limit wait
 * for the client the header names (client_admit()).
 */
static const char *
refuse_reason(const struct listen_sock *sock, const struct sockaddr *sa)
{
	const struct listeners *ls = sock->ls;

	if (sock->nproxy > 0) {
		if (!in_list(sock->proxy, sock->nproxy, sa)) {
			metrics.proxy_failures[PROXY_FAILURE_UNTRUSTED]++;
			return "not in the listener's proxy list (proxy=)";
		}
	} else if (!in_list(sock->allow, sock->nallow, sa)) {
		return "not in the listener's allow list";
	}
	if (metrics.connections_open >= (uint64_t)ls->set.max_connections)
		return "max-connections reached";
	if (sock->tls && sock->nproxy == 0 &&
	    ls->handshaking >= ls->set.max_tls_handshakes)
		return "tls-max-handshakes reached (too many TLS handshakes "
		       "under way)";
	return NULL;
}

/* Counts a refused connection; logs at most every 10 s. */
static void
refuse_log(struct listeners *ls, const struct sockaddr *sa, const char *why)
{
	char host[NI_MAXHOST];
	uint64_t n;

	metrics.connections_refused++;
	if (!ratelog_due(&ls->refuse_log, clock_mono_ms(), 1, &n))
		return;
	if (getnameinfo(sa, sa_len(sa), host, sizeof(host), NULL, 0,
		NI_NUMERICHOST) != 0)
		snprintf(host, sizeof(host), "unknown");
	log_warnx("refused connection from %s: %s (%llu refused since the "
		  "last such message)",
	    host, why, (unsigned long long)n);
}

/* Closes a refused connection at once. */
static void
refuse(struct listeners *ls, int fd, const struct sockaddr *sa, const char *why)
{
	close(fd);
	refuse_log(ls, sa, why);
}

/*
 * The client's bufferevent, owning fd from now on except on failure (NULL:
 * the caller closes fd); on a tls=on listener an OpenSSL one
 * (listener_tls.c).
 */
static struct bufferevent *
client_bev_new(struct listeners *ls, const struct listen_sock *sock,
    struct client *c, int fd)
{
	struct bufferevent *bev;

	if (sock->tls)
		return client_tls_bev_new(ls, c, fd);
	bev = bufferevent_socket_new(ls->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		log_warnx("%s: bufferevent_socket_new failed", c->name);
	return bev;
}

/* Puts c on the client list; it counts as open from now on. */
static void
client_link(struct client *c)
{
	struct listeners *ls = c->ls;

	c->next = ls->clients;
	if (c->next != NULL)
		c->next->prev = c;
	ls->clients = c;
	metrics.connections_accepted++;
	metrics.connections_open++;
}

/* What a client that came through a proxy must pass once its header
 * named it; NULL if it may stay.  A LOCAL (or UNKNOWN) header names no
 * client: the proxy itself, in proxy=, is not judged by allow= (its
 * health checks would fail). */
static const char *
proxied_refuse_reason(const struct client *c)
{
	const struct listen_sock *sock = c->sock;
	const struct listeners *ls = c->ls;

	if (!c->proxy_local &&
	    !in_list(
		sock->allow, sock->nallow, (const struct sockaddr *)&c->sa))
		return "not in the listener's allow list (the client the "
		       "PROXY header names)";
	if (sock->tls && ls->handshaking >= ls->set.max_tls_handshakes)
		return "tls-max-handshakes reached (too many TLS handshakes "
		       "under way)";
	return NULL;
}

/* The first state of an admitted client: from PROXY a transition, for a
 * new direct one its start. */
static void
admit_state(struct client *c, enum cl_state state, bool proxied)
{
	if (proxied)
		client_set_state(c, state);
	else
		c->state = state;
}

int
client_admit(struct client *c, int fd)
{
	struct listeners *ls = c->ls;
	const struct listen_sock *sock = c->sock;
	const struct sockaddr *sa = (const struct sockaddr *)&c->sa;
	bool proxied = sock->nproxy > 0;
	const char *why;
	int n;

	if (proxied && (why = proxied_refuse_reason(c)) != NULL) {
		refuse_log(ls, sa, why);
		return -1;
	}
	if ((n = iptable_add(ls->per_ip, sa)) == -1) {
		log_warn("%s: accept: client dropped", c->name);
		return -1;
	}
	if (ls->set.max_per_ip > 0 && n > ls->set.max_per_ip) {
		iptable_del(ls->per_ip, sa);
		refuse_log(ls, sa, "max-connections-per-ip reached");
		return -1;
	}
	if (sock->ack) {
		if ((c->ack = ack_new(ls->acks, c)) == NULL) {
			log_warn("%s: connection dropped", c->name);
			iptable_del(ls->per_ip, sa);
			return -1;
		}
		c->ack_spooled = sock->ack == CONFIG_ACK_SPOOLED;
	}
	c->sess_ops = sock->session;
	c->sess_conf = sock->sess_conf;
	if ((c->sess_ops != NULL && c->sess_ops->start(c) == -1) ||
	    (c->bev = client_bev_new(ls, sock, c, fd)) == NULL) {
		if (c->sess_ops != NULL && c->sess == NULL)
			log_warn("%s: connection dropped", c->name);
		if (c->sess_ops != NULL)
			c->sess_ops->free(c);
		c->sess_ops = NULL;
		if (c->ack != NULL)
			ack_disown(c->ack);
		c->ack = NULL;
		iptable_del(ls->per_ip, sa);
		return -1;
	}
	c->ip_counted = true;
	bufferevent_setcb(
	    c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	/* Room for one whole line (a session: message), so the framer can
	 * always progress. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    (c->sess_ops != NULL && c->sess_ops->max_input != NULL
		    ? c->sess_ops->max_input(c)
		    : ls->set.max_line_bytes) +
		READ_CHUNK_BYTES);
	bufferevent_set_max_single_read(c->bev, READ_CHUNK_BYTES);
	if (c->sess_ops != NULL && c->sess_ops->opened != NULL)
		c->sess_ops->opened(c);
	if (!proxied) {
		client_link(c);
		log_debug("%s: accepted%s", c->name, c->tls ? " (TLS)" : "");
	}
	admit_state(c,
	    c->tls           ? CL_HANDSHAKE
		: ls->paused ? CL_PAUSED
			     : CL_READING,
	    proxied);
	if (c->tls)
		ls->handshaking++; /* reads until it is done */
	if (c->state != CL_PAUSED)
		bufferevent_enable(c->bev, EV_READ);
	return 0;
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listen_sock *sock = arg;
	struct listeners *ls = sock->ls;
	struct client *c;
	const char *why;

	(void)evl;
	if ((why = refuse_reason(sock, sa)) != NULL) {
		refuse(ls, fd, sa, why);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("accept: client dropped");
		close(fd);
		return;
	}
	c->ls = ls;
	c->sock = sock;
	c->fd = -1;
	c->id = ++ls->next_id;
	memcpy(&c->sa, sa,
	    (size_t)salen < sizeof(c->sa) ? (size_t)salen : sizeof(c->sa));
	c->last_read_ms = clock_mono_ms();
	c->accepted_ms = c->last_read_ms;
	c->rec.peer = c->addr;
	client_name(c, sa, (socklen_t)salen);
	framer_init(&c->fr, ls->set.max_line_bytes, sock->framing);
	c->format = sock->format;
	c->tz = sock->tz;
	if (sock->nproxy > 0) {
		c->state = CL_PROXY;
		client_link(c);
		log_debug("%s: accepted from a proxy", c->name);
		client_proxy_start(c, fd);
		return;
	}
	if (client_admit(c, fd) == -1) {
		close(fd);
		free(c);
	}
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

/*
 * The ack drain: the only code that tells clients of their acks.  Credits
 * (from pgpool's commit or the queue's spool fsync) only link the sender
 * on the completion list and make this event active (acks_notify).
 */
static void
acks_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listeners *ls = arg;
	struct client *c;
	uint64_t lost;

	(void)fd;
	(void)what;
	while ((c = ack_list_next(ls->acks)) != NULL)
		client_dispatch(c, CLE_ACKED);
	if ((lost = ack_list_nomem(ls->acks)) > 0)
		log_warnx("acknowledgement bookkeeping: out of memory for %llu "
			  "runs of stored lines; their senders' acks stop "
			  "short (they resend)",
		    (unsigned long long)lost);
}

/* The ack module's notify: completions wait, drain them on this pass. */
static void
acks_notify(void *arg)
{
	event_active(((struct listeners *)arg)->ev_acks, EV_TIMEOUT, 0);
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
	ls->ev_reap = event_new(base, -1, 0, reap_cb, ls);
	ls->ev_acks = event_new(base, -1, 0, acks_cb, ls);
	ls->acks = ack_list_new(acks_notify, ls);
	ls->per_ip = iptable_new();
	if (ls->ev_accept_retry == NULL || ls->ev_sweep == NULL ||
	    ls->ev_reap == NULL || ls->ev_acks == NULL || ls->acks == NULL ||
	    ls->per_ip == NULL || fair_init(ls) == -1) {
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
	fair_set_settings(ls);
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

/*
 * The rule of a listener's tz= (NULL for the local default), kept in
 * ls->tzs until listeners_free(): clients still framing at shutdown use it
 * after their socket is gone.  -1 with err set.
 */
static int
listen_tz(struct listeners *ls, const struct listen_spec *spec,
    const char *hostport, const struct tzrule **out, char *err, size_t errlen)
{
	struct tzrule **tzs, *tz;
	char why[256];

	*out = NULL;
	if (spec->tz[0] == '\0')
		return 0;
	tzs = reallocarray(ls->tzs, ls->ntzs + 1, sizeof(*tzs));
	if (tzs == NULL) {
		snprintf(err, errlen, "listen %s: out of memory", hostport);
		return -1;
	}
	ls->tzs = tzs;
	tz = tzrule_new(spec->tz, clock_real_us() / 1000000, why, sizeof(why));
	if (tz == NULL) {
		snprintf(err, errlen, "listen %s: %s", hostport, why);
		return -1;
	}
	ls->tzs[ls->ntzs++] = tz;
	*out = tz;
	return 0;
}

/* The session protocol of a proto= value; NULL for framed lines. */
static const struct session_ops *
session_of(int proto)
{
	switch (proto) {
	case CONFIG_PROTO_RELP:
		return &relp_session;
	case CONFIG_PROTO_FORWARD:
		return &forward_session;
	case CONFIG_PROTO_HTTP:
		return &http_session;
	default:
		return NULL;
	}
}

/* The session protocol's state of listener s (session_ops.listen), kept
 * on ls->confs until listeners_free(); -1 with err set. */
static int
sess_listen(struct listeners *ls, struct listen_sock *s,
    const struct listen_spec *spec, const char *hostport, char *err,
    size_t errlen)
{
	struct sess_conf *sc;
	char why[512];

	if (s->session == NULL || s->session->listen == NULL)
		return 0;
	if ((sc = calloc(1, sizeof(*sc))) == NULL) {
		snprintf(err, errlen, "listen %s: out of memory", hostport);
		return -1;
	}
	if (s->session->listen(ls, spec, &sc->conf, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "listen %s: %s", hostport, why);
		free(sc);
		return -1;
	}
	sc->ops = s->session;
	sc->next = ls->confs;
	ls->confs = sc;
	s->sess_conf = sc->conf;
	return 0;
}

void
listeners_set_can_store(
    struct listeners *ls, bool (*can_store)(void *arg), void *arg)
{
	ls->can_store = can_store;
	ls->can_store_arg = arg;
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
	s->session = session_of(spec->proto);
	if (sess_listen(ls, s, spec, hostport, err, errlen) == -1) {
		close(fd);
		free(s);
		return -1;
	}
	s->nallow = spec->nallow;
	memcpy(s->proxy, spec->proxy, sizeof(s->proxy));
	s->nproxy = spec->nproxy;
	if (s->nproxy > 0)
		sweep_arm(ls); /* proxy-header-timeout */
	s->framing = (enum framer_mode)spec->framing;
	s->format = (enum parser_format)spec->format;
	if (listen_tz(ls, spec, hostport, &s->tz, err, errlen) == -1) {
		close(fd);
		free(s);
		return -1;
	}
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

	if (spec->proto == CONFIG_PROTO_UDP)
		return udp_add(ls, spec, err, errlen);
	if (spec->proto != CONFIG_PROTO_TCP &&
	    session_of(spec->proto) == NULL) {
		snprintf(err, errlen, "listen %s:%s: proto=%s is not built in",
		    spec->host, spec->port, config_proto_name(spec->proto));
		return -1;
	}
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
	log_info("listening on %s framing=%s format=%s tls=%s%s%s%s", hostport,
	    framer_mode_name((enum framer_mode)spec->framing),
	    spec->format == PARSER_RAW ? "raw" : "auto",
	    spec->tls ? "on" : "off", spec->nproxy > 0 ? " proxy=on" : "",
	    spec->proto != CONFIG_PROTO_TCP ? " proto=" : "",
	    spec->proto != CONFIG_PROTO_TCP ? config_proto_name(spec->proto)
					    : "");
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
	int type = 0;
	socklen_t typelen = sizeof(type);

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
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &typelen) == 0 &&
	    type == SOCK_DGRAM)
		return udp_add_fd(ls, fd, name, spec, err, errlen);
	if (add_sock(ls, fd, name, spec, err, errlen) == -1)
		return -1;
	log_info("listening on %s (socket from systemd) framing=%s format=%s "
		 "tls=%s%s",
	    name, framer_mode_name((enum framer_mode)spec->framing),
	    spec->format == PARSER_RAW ? "raw" : "auto",
	    spec->tls ? "on" : "off", spec->nproxy > 0 ? " proxy=on" : "");
	return 0;
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
	ls->stopping = true; /* the final reads take no rate limit */
	udp_shutdown(ls);
	evtimer_del(ls->ev_accept_retry);
	event_del(ls->ev_sweep);
	for (c = ls->clients; c != NULL; c = next) {
		next = c->next;
		client_dispatch(c, CLE_SHUTDOWN);
		if (c->state == CL_CLOSING)
			n++; /* marked, not freed yet: still readable */
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

void
listeners_free(struct listeners *ls)
{
	if (ls == NULL)
		return;
	if (ls->ev_accept_retry != NULL)
		listeners_shutdown(ls);
	while (ls->clients != NULL)
		client_close(ls->clients, "exit");
	clients_reap(ls);
	udp_free(ls);
	ack_list_free(ls->acks);
	if (ls->ev_accept_retry != NULL)
		event_free(ls->ev_accept_retry);
	if (ls->ev_sweep != NULL)
		event_free(ls->ev_sweep);
	if (ls->ev_reap != NULL)
		event_free(ls->ev_reap);
	if (ls->ev_acks != NULL)
		event_free(ls->ev_acks);
	iptable_free(ls->per_ip);
	fair_free(ls);
	tls_ctx_free(ls->tls);
	while (ls->ntzs > 0)
		tzrule_free(ls->tzs[--ls->ntzs]);
	while (ls->confs != NULL) {
		struct sess_conf *sc = ls->confs;

		ls->confs = sc->next;
		sc->ops->listen_free(sc->conf);
		free(sc);
	}
	free(ls->tzs);
	free(ls->socks);
	free(ls);
}
