/*
 * listener_forward: a Fluent forward protocol session
 * (include/logsink/forward.h) on the client machine of listener.c, for
 * proto=forward listeners (Fluentd's out_forward, Fluent Bit's forward
 * output, the fluent-logger libraries).  The decoder replaces the framer;
 * each entry of a message is queued as one line of the client's ack
 * reference.  A message with the chunk option is answered {"ack": chunk}
 * by the ack drain once its last entry is committed (or durable in the
 * spool on ack=spooled), in message order: so a sender's
 * require_ack_response keeps in its buffer whatever is not stored, and
 * sends it again after a failure.
 *
 * A message stays in the input buffer until all its entries are queued:
 * when the queue fills in the middle of one, reading pauses, and on
 * resume the message is begun again and the entries queued before are
 * passed over.  A protocol error (forward_error) ends reading; the
 * entries queued before it are still stored and answered, then the
 * connection is closed (the protocol has no error answer).  Nothing of
 * other connections is touched.
 *
 * With shared-key=FILE on the listener, the connection starts with the
 * specification's handshake (forward.h): our HELO with a random nonce,
 * the client's PING, whose SHA-512 digest of the key we check, our PONG;
 * a PING with another key is answered PONG false and closed.  No user
 * authentication (HELO's auth is empty).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "logsink/ack.h"
#include "logsink/clock.h"
#include "logsink/forward.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/utf8.h"

#include "listener_int.h"

/*
 * Messages with a chunk not answered yet, at most: senders wait for the
 * answers (fluent-logger one message, Fluentd and Fluent Bit a few); one
 * that neither waits nor reads them is closed rather than let it grow
 * this list.
 */
#define FWD_MAX_PENDING   4096
/*
 * The answers written in one go, at most: a client that stops reading
 * holds this much output; the rest is written as it drains (WRITTEN).
 */
#define FWD_OUT_MAX_BYTES (64 * 1024)

/* A message with a chunk option: answered once line end - 1 is stored. */
struct fwd_pending {
	uint64_t end; /* c->queued after its last entry */
	unsigned char len;
	char chunk[FORWARD_MAX_CHUNK];
};

/* The session of a proto=forward client, in c->sess; owned by it. */
struct fwd_conn {
	struct forward *dec;
	struct fwd_pending *ring; /* answers due, oldest at head */
	size_t head, count, cap;
	bool in_message; /* a message is begun, msg_len bytes, done queued */
	size_t msg_len;
	size_t done;
	bool failed;    /* the error is logged and counted */
	bool handshake; /* shared-key=: waiting for the PING */
	unsigned char nonce[FORWARD_NONCE_BYTES];
	uint64_t odd; /* forward_odd() already counted */
};

static struct fwd_conn *
fwd_of(const struct client *c)
{
	return c->sess;
}

static int
fwd_client_new(struct client *c)
{
	struct fwd_conn *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	s->dec = forward_new(c->ls->set.forward_max_message_bytes,
	    c->ls->set.forward_max_entries);
	if (s->dec == NULL) {
		free(s);
		return -1;
	}
	c->sess = s;
	return 0;
}

static void
fwd_client_free(struct client *c)
{
	struct fwd_conn *s = c->sess;

	if (s != NULL) {
		forward_free(s->dec);
		free(s->ring);
	}
	free(s);
	c->sess = NULL;
}

static void
fwd_client_shutdown(struct client *c)
{
	(void)c; /* no goodbye in this protocol: the acks are it */
}

/* Remembers the chunk of the message just queued; false: out of room. */
static bool
fwd_push_pending(struct client *c, const char *chunk, size_t len)
{
	struct fwd_conn *s = fwd_of(c);
	struct fwd_pending *ring, *p;
	size_t cap, i;

	if (s->count == s->cap) {
		if (s->cap == FWD_MAX_PENDING)
			return false;
		cap = s->cap == 0 ? 4 : s->cap * 2;
		if ((ring = reallocarray(NULL, cap, sizeof(*ring))) == NULL)
			return false;
		for (i = 0; i < s->count; i++)
			ring[i] = s->ring[(s->head + i) % s->cap];
		free(s->ring);
		s->ring = ring;
		s->head = 0;
		s->cap = cap;
	}
	p = &s->ring[(s->head + s->count) % s->cap];
	p->end = c->queued;
	p->len = (unsigned char)len;
	memcpy(p->chunk, chunk, len);
	s->count++;
	return true;
}

/* One decoded entry (c->rec): its message cut to max-line-bytes, queued
 * as the client's next line.  False: stop (queue full or not queued). */
static bool
fwd_queue_entry(struct client *c)
{
	size_t max = c->ls->set.max_line_bytes, len = c->rec.message.len;
	uint64_t before = c->queued;
	bool cut = len > max, more;

	if (cut) {
		c->rec.message.len = utf8_cut(c->rec.message.ptr, max, len);
		c->fr.truncated++; /* client_record() warns on the first */
	}
	more = client_record(c, len, cut);
	if (c->queued == before) {
		/* Not queued (out of memory): the message cannot be answered
		 * as stored; end the session, the sender resends it. */
		forward_set_err(fwd_of(c)->dec, FORWARD_ERR_NOMEM);
		return false;
	}
	fwd_of(c)->done++;
	return more;
}

/*
 * Queues the entries of the message buf[0, s->msg_len) from entry s->done
 * on.  True when all are queued (the message is consumed); false when the
 * queue filled (the message stays, begun again on resume) or an error.
 */
static bool
fwd_take_message(struct client *c, const char *buf)
{
	struct fwd_conn *s = fwd_of(c);
	const char *chunk;
	size_t clen;
	bool more;
	int rc;

	if (forward_begin(s->dec, buf, s->msg_len) == -1)
		return false;
	if (s->done == 0)
		metrics.forward_messages[forward_mode(s->dec)]++;
	else if (forward_skip(s->dec, s->done) == -1)
		return false;
	while ((rc = forward_next(s->dec, &c->rec, &c->scratch)) == 1) {
		more = fwd_queue_entry(c);
		metrics.forward_odd_entries += forward_odd(s->dec) - s->odd;
		s->odd = forward_odd(s->dec);
		if (!more)
			return false;
	}
	if (rc == -1)
		return false;
	chunk = forward_chunk(s->dec, &clen);
	if (chunk != NULL && !fwd_push_pending(c, chunk, clen)) {
		forward_set_err(s->dec,
		    s->cap == FWD_MAX_PENDING ? FORWARD_ERR_UNANSWERED
					      : FORWARD_ERR_NOMEM);
		return false;
	}
	s->in_message = false;
	s->done = 0;
	return true;
}

/* sha512_hex(salt + host + nonce + key) into hex (129 bytes); false when
 * OpenSSL fails. */
static bool
fwd_digest(const struct fwd_conn *s, const struct text *salt, const char *host,
    size_t hostlen, const char *key, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	EVP_MD_CTX *ctx;
	bool ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return false;
	ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, salt->ptr, salt->len) == 1 &&
	    EVP_DigestUpdate(ctx, host, hostlen) == 1 &&
	    EVP_DigestUpdate(ctx, s->nonce, sizeof(s->nonce)) == 1 &&
	    EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == 64;
	EVP_MD_CTX_free(ctx);
	for (i = 0; ok && i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[ok ? 2 * n : 0] = '\0';
	return ok;
}

/* The listener has a shared key: HELO first. */
/* shared-key=: the listener's key (session_ops.listen), or none. */
static int
fwd_listen(struct listeners *ls, const struct listen_spec *spec, void **conf,
    char *err, size_t errlen)
{
	(void)ls;
	(void)err;
	(void)errlen;
	*conf = NULL;
	if (spec->shared_key[0] == '\0')
		return 0;
	if ((*conf = strdup(spec->shared_key)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void
fwd_listen_free(void *conf)
{
	if (conf != NULL)
		explicit_bzero(conf, strlen(conf));
	free(conf);
}

/* Its listener's shared key, or NULL: no handshake. */
static const char *
fwd_shared_key(const struct client *c)
{
	return c->sess_conf;
}

static void
fwd_client_opened(struct client *c)
{
	struct fwd_conn *s = fwd_of(c);
	struct buf b = { 0 };

	if (fwd_shared_key(c) == NULL)
		return;
	s->handshake = true;
	if (RAND_bytes(s->nonce, sizeof(s->nonce)) != 1 ||
	    forward_format_helo(&b, s->nonce, sizeof(s->nonce)) == -1 ||
	    evbuffer_add(bufferevent_get_output(c->bev), b.data, b.len) == -1) {
		log_warnx("%s: no HELO (RAND_bytes or out of memory); the "
			  "connection will fail its handshake",
		    c->name);
		forward_set_err(s->dec, FORWARD_ERR_NOMEM);
	}
	buf_free(&b);
}

/*
 * The PING: its digest checked against the key, answered PONG.  Its
 * length, or 0 (more needed, or the handshake failed: check() closes).
 */
static size_t
fwd_handshake(
    struct client *c, const char *buf, size_t len, bool eof, size_t *need)
{
	struct fwd_conn *s = fwd_of(c);
	const char *key = fwd_shared_key(c);
	char want[129], ours[129], host[256];
	struct forward_ping p;
	struct buf b = { 0 };
	size_t n;
	bool ok;

	if ((n = forward_ping(s->dec, buf, len, eof, &p)) == 0) {
		*need = forward_need(s->dec);
		return 0;
	}
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "logsinkd");
	host[sizeof(host) - 1] = '\0';
	ok =
	    fwd_digest(s, &p.salt, p.hostname.ptr, p.hostname.len, key, want) &&
	    p.digest.len == 128 && CRYPTO_memcmp(want, p.digest.ptr, 128) == 0;
	if (!ok || !fwd_digest(s, &p.salt, host, strlen(host), key, ours))
		ours[0] = '\0';
	if (forward_format_pong(
		&b, ok, ok ? "" : "shared key mismatch", host, ours) == -1 ||
	    evbuffer_add(bufferevent_get_output(c->bev), b.data, b.len) == -1)
		ok = false;
	buf_free(&b);
	if (!ok) {
		forward_set_err(s->dec, FORWARD_ERR_HANDSHAKE);
		return 0;
	}
	log_debug("%s: forward handshake done, client %.*s", c->name,
	    (int)(p.hostname.len < 200 ? p.hostname.len : 200), p.hostname.ptr);
	s->handshake = false;
	return n;
}

/* session feed: one message at a time (see the file comment). */
static size_t
fwd_client_feed(
    struct client *c, const char *buf, size_t len, bool eof, size_t *need)
{
	struct fwd_conn *s = fwd_of(c);
	size_t n;

	*need = 0;
	if (s->handshake)
		return fwd_handshake(c, buf, len, eof, need);
	if (!s->in_message) {
		n = forward_frame(s->dec, buf, len, eof);
		if (n == 0) {
			*need = forward_need(s->dec);
			return 0;
		}
		s->in_message = true;
		s->msg_len = n;
		s->done = 0;
	}
	if (len < s->msg_len) {
		*need = s->msg_len;
		return 0;
	}
	return fwd_take_message(c, buf) ? s->msg_len : 0;
}

/* A protocol error: one log line per 10 s for all clients, counted. */
static void
fwd_client_failed(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	enum forward_error err = forward_err(fwd_of(c)->dec);
	uint64_t n;

	fwd_of(c)->failed = true;
	metrics.forward_errors[err]++;
	if (ratelog_due(&c->ls->forward_err_log, clock_mono_ms(), 1, &n))
		log_warnx("%s: Fluent forward protocol error reason=%s (%s) "
			  "after %llu entries; closing %s its %llu queued "
			  "entries are stored (%llu such errors since the "
			  "last such message)",
		    c->name, forward_error_name(err), forward_error_text(err),
		    (unsigned long long)c->queued,
		    err == FORWARD_ERR_UNANSWERED ? "now, unanswered; still"
						  : "once",
		    (unsigned long long)(c->queued - c->acked),
		    (unsigned long long)n);
	evbuffer_drain(in, evbuffer_get_length(in));
}

/* After framing: an error ends reading; the machine then waits for the
 * acks of what was queued (ACKWAIT). */
static void
fwd_client_check(struct client *c)
{
	struct fwd_conn *s = c->sess;

	if (forward_err(s->dec) != FORWARD_OK && !s->failed)
		fwd_client_failed(c);
	/* A sender that reads no answers would hold the connection open
	 * forever waiting to read them (FLUSHING): close it now; what it
	 * queued is stored all the same. */
	if (forward_err(s->dec) == FORWARD_ERR_UNANSWERED)
		c->err = ECONNABORTED;
	if (s->failed && !c->eof) {
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

/*
 * The ack drain: answers, oldest first, the messages whose entries are
 * all stored.  Lines of messages without a chunk need no answer; so
 * c->acked follows ack_committed() except while answers are held back
 * (the output holds FWD_OUT_MAX_BYTES): then it stays below the first
 * one held, and ack_pending is set.
 */
static void
fwd_client_send_acks(struct client *c)
{
	struct fwd_conn *s = c->sess;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint64_t committed = ack_committed(c->ack);
	struct fwd_pending *p;
	char a[FORWARD_ACK_MAX];
	size_t n;

	c->ack_pending = false;
	while (s->count > 0 && (p = &s->ring[s->head])->end <= committed) {
		if (evbuffer_get_length(out) >= FWD_OUT_MAX_BYTES) {
			c->ack_pending = true;
			break;
		}
		n = forward_format_ack(a, p->chunk, p->len);
		if (n == 0 || evbuffer_add(out, a, n) == -1) {
			log_warnx(
			    "%s: out of memory for forward acks", c->name);
			c->err = ENOMEM;
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
	c->acked = committed;
	if (c->ack_pending && s->ring[s->head].end > 0)
		c->acked = s->ring[s->head].end - 1;
}

static const char *
fwd_client_finish(struct client *c, const char *reason)
{
	enum forward_error err = forward_err(fwd_of(c)->dec);

	if (err == FORWARD_ERR_TRUNCATED)
		return "forward-truncated";
	if (err != FORWARD_OK)
		return "forward-error";
	return reason;
}

/* A whole message must fit in the input (forward_frame() needs it
 * contiguous): forward-max-message-bytes. */
static size_t
fwd_client_max_input(const struct client *c)
{
	return c->ls->set.forward_max_message_bytes;
}

const struct session_ops forward_session = {
	.proto = "forward",
	.start = fwd_client_new,
	.free = fwd_client_free,
	.feed = fwd_client_feed,
	.check = fwd_client_check,
	.send_acks = fwd_client_send_acks,
	.finish = fwd_client_finish,
	.listen = fwd_listen,
	.listen_free = fwd_listen_free,
	.shutdown = fwd_client_shutdown,
	.max_input = fwd_client_max_input,
	.opened = fwd_client_opened,
};
