/*
 * listener_relp: a RELP session (include/logsink/relp.h) on the client
 * machine of listener.c.  The decoder replaces the framer on proto=relp
 * connections; each syslog frame is queued as one line of the client's
 * ack reference, and its "rsp 200" is written by the ack drain once the
 * line is committed (or durable in the spool on ack=spooled), in txnr
 * order.  So a sender such as rsyslog's omrelp keeps in its own queue
 * whatever is not stored yet, and resends it after a failure.
 *
 * A protocol error ends reading; the lines queued before it are still
 * stored and answered, then the error is answered (rsp 500 where the
 * failing frame's txnr is known) with a serverclose, and the connection
 * is closed.  Nothing of other connections is touched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "logsink/ack.h"
#include "logsink/clock.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/relp.h"
#include "logsink/utf8.h"

#include "listener_int.h"

/*
 * The RELP session of a proto=relp client, in c->sess.  Syslog frames
 * are the client's lines 0, 1, ... with transaction numbers open_txnr +
 * 1, + 2, ... (every syslog frame is queued, or the session ends), so
 * line k is answered with relp_line_txnr(k).
 */
struct relp_conn {
	struct relp dec;
	uint32_t open_txnr;
	uint32_t close_txnr; /* the close frame's, or 0 */
	bool shutdown;       /* serverclose once the acks are written */
	bool failed;         /* dec.err is logged and counted */
	bool ended;          /* the final answer is written */
};

static struct relp_conn *
relp_of(const struct client *c)
{
	return c->sess;
}

/*
 * Slack beyond max-line-bytes for DATALEN: a message a little longer is
 * stored cut (counted as truncated, like a long line); past the slack the
 * frame is refused as oversized.  rsyslog's maxMessageSize counts the
 * message without the RELP header, so matching limits leave room.
 */
#define RELP_DATA_SLACK    1024
/*
 * The answers written in one go, at most: a client that stops reading
 * holds this much output; the rest is written as it drains (WRITTEN).
 */
#define RELP_OUT_MAX_BYTES (64 * 1024)

static int
relp_client_new(struct client *c)
{
	struct relp_conn *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	relp_init(&r->dec, c->ls->set.max_line_bytes + RELP_DATA_SLACK);
	c->sess = r;
	return 0;
}

static void
relp_client_free(struct client *c)
{
	free(c->sess);
	c->sess = NULL;
}

static void
relp_client_shutdown(struct client *c)
{
	struct relp_conn *r = c->sess;

	r->shutdown = true;
}

/* The txnr of the client's line k: open's txnr + 1 + k, wrapping. */
static uint32_t
relp_line_txnr(const struct client *c, uint64_t k)
{
	return (
	    uint32_t)(((uint64_t)relp_of(c)->open_txnr + k) % RELP_TXNR_MAX +
	    1);
}

/* Appends one frame to the output; false when out of memory. */
static bool
relp_write(struct client *c, uint32_t txnr, const char *command,
    const char *data, size_t len)
{
	char f[RELP_RSP_MAX];
	size_t n = relp_format(f, sizeof(f), txnr, command, data, len);

	return n > 0 && evbuffer_add(bufferevent_get_output(c->bev), f, n) == 0;
}

/* open: our offers (omrelp checks for commands=syslog). */
static void
relp_on_open(struct client *c, uint32_t txnr, const char *data, size_t len)
{
	const char *ans = relp_open_answer();

	relp_of(c)->open_txnr = txnr;
	metrics.relp_sessions++;
	log_debug("%s: relp open (%.*s)", c->name, (int)(len < 200 ? len : 200),
	    data);
	if (!relp_write(c, txnr, "rsp", ans, strlen(ans)))
		relp_of(c)->dec.err = RELP_ERR_NOMEM;
}

/* syslog: one message, cut to max-line-bytes, queued with its ack. */
static bool
relp_on_syslog(struct client *c, const char *data, size_t len)
{
	size_t max = c->ls->set.max_line_bytes, n = len;
	uint64_t before = c->queued;
	bool more, cut = len > max;

	if (cut) {
		n = utf8_cut(data, max, len);
		c->fr.truncated++; /* client_message() warns on the first */
	}
	more = client_message(c, data, n, cut);
	if (c->queued == before) {
		/* Not queued (out of memory): the txnr of every later line
		 * would be off by one; end the session, the sender resends. */
		relp_of(c)->dec.err = RELP_ERR_NOMEM;
		return false;
	}
	return more;
}

/* relp_feed() callback. */
static bool
relp_on_frame(void *arg, uint32_t txnr, enum relp_command cmd, const char *data,
    size_t len)
{
	struct client *c = arg;

	switch (cmd) {
	case RELP_CMD_OPEN:
		relp_on_open(c, txnr, data, len);
		return relp_of(c)->dec.err == RELP_OK;
	case RELP_CMD_SYSLOG:
		return relp_on_syslog(c, data, len);
	case RELP_CMD_CLOSE:
		relp_of(c)->close_txnr = txnr;
		return false; /* nothing may follow */
	}
	fatalx("%s: relp command %d", c->name, (int)cmd);
}

static size_t
relp_client_feed(
    struct client *c, const char *buf, size_t len, bool eof, size_t *need)
{
	size_t used;

	used = relp_feed(&relp_of(c)->dec, buf, len, eof, relp_on_frame, c);
	*need = relp_of(c)->dec.need;
	return used;
}

/* A protocol error: one log line per 10 s for all clients, counted. */
static void
relp_client_failed(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	enum relp_error err = relp_of(c)->dec.err;
	uint64_t n;

	relp_of(c)->failed = true;
	metrics.relp_errors[err]++;
	if (ratelog_due(&c->ls->relp_err_log, clock_mono_ms(), 1, &n))
		log_warnx("%s: RELP protocol error reason=%s (%s) after "
			  "txnr %u; closing once its %llu queued messages "
			  "are answered (%llu such errors since the last "
			  "such message)",
		    c->name, relp_error_name(err), relp_error_text(err),
		    (unsigned)relp_of(c)->dec.last_txnr,
		    (unsigned long long)(c->queued - c->acked),
		    (unsigned long long)n);
	evbuffer_drain(in, evbuffer_get_length(in));
}

/*
 * After framing: close or an error ends reading; the machine then waits
 * for the acks of what was queued (ACKWAIT) and relp_client_finish()
 * writes the last answer.
 */
static void
relp_client_check(struct client *c)
{
	struct relp_conn *r = c->sess;

	if (r->dec.err != RELP_OK && !r->failed)
		relp_client_failed(c);
	if ((r->failed || r->close_txnr != 0) && !c->eof) {
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

static void
relp_client_send_acks(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint64_t committed = ack_committed(c->ack);
	char f[4096];
	size_t n = 0;

	while (c->acked < committed &&
	    evbuffer_get_length(out) + n < RELP_OUT_MAX_BYTES) {
		if (sizeof(f) - n < RELP_OK_MAX) {
			if (evbuffer_add(out, f, n) == -1)
				break;
			n = 0;
		}
		n += relp_format_ok(f + n, relp_line_txnr(c, c->acked));
		c->acked++;
	}
	if (n > 0 && evbuffer_add(out, f, n) == -1) {
		log_warnx("%s: out of memory for RELP answers", c->name);
		c->err = ENOMEM;
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->ack_pending = c->acked < committed;
}

static const char *
relp_client_finish(struct client *c, const char *reason)
{
	struct relp_conn *r = c->sess;
	enum relp_error err = r->dec.err;
	char msg[RELP_RSP_MAX - 32];
	size_t n;

	if (r->ended)
		return reason;
	r->ended = true;
	if (err != RELP_OK) {
		if (err == RELP_ERR_TRUNCATED)
			return "relp-truncated"; /* the peer closed */
		if (r->dec.err_txnr != 0) {
			n = (size_t)snprintf(
			    msg, sizeof(msg), "500 %s", relp_error_text(err));
			(void)relp_write(c, r->dec.err_txnr, "rsp", msg,
			    n < sizeof(msg) ? n : sizeof(msg) - 1);
		}
		(void)relp_write(c, 0, "serverclose", NULL, 0);
		return "relp-error";
	}
	if (r->close_txnr != 0) {
		(void)relp_write(c, r->close_txnr, "rsp", "200 OK", 6);
		return "relp-close";
	}
	if (r->shutdown) {
		(void)relp_write(c, 0, "serverclose", NULL, 0);
		return "relp-serverclose";
	}
	return reason;
}

const struct session_ops relp_session = {
	.proto = "relp",
	.start = relp_client_new,
	.free = relp_client_free,
	.feed = relp_client_feed,
	.check = relp_client_check,
	.send_acks = relp_client_send_acks,
	.finish = relp_client_finish,
	.shutdown = relp_client_shutdown,
};
