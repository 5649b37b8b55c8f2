/*
 * listener_tls: the TLS glue of the listener (see listener_int.h).
 *
 * On a tls=on listener libevent's OpenSSL bufferevent does the record
 * layer: the input buffer holds the plaintext, framed as on plain TCP.
 * This file makes that bufferevent, handles the HANDSHAKE state's events
 * (done, failed, timed out) and moves plaintext that OpenSSL decrypted
 * before a pause into the input buffer.  The TLS library calls themselves
 * are in tls.c.
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "logsink/clock.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/tls.h"

#include "listener_int.h"

#define TLS_MAX_ERRORS   8
#define TLS_RECORD_BYTES 16384 /* most plaintext in a TLS record */

/*
 * The client's OpenSSL bufferevent in the accepting state, owning fd from
 * now on except on failure (NULL: the caller closes fd), made from the
 * current context: a SIGHUP reload that replaces the context leaves the
 * connections made before on theirs.
 */
struct bufferevent *
client_tls_bev_new(struct listeners *ls, struct client *c, int fd)
{
	struct bufferevent *bev;
	struct ssl_st *ssl;

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

/*
 * libevent 2.1 reads a TLS connection only when its socket is readable:
 * plaintext OpenSSL decrypted before reading was paused (queue full)
 * stays inside the SSL object after the resume until the client sends
 * more, which a client waiting for its acks never does.  This moves it
 * into the input buffer.
 */
void
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
 * at most once per 10 s with the count in between.
 */
static void
tls_failed(struct client *c, enum tls_failure why, const char *text)
{
	uint64_t n;

	metrics.tls_handshake_failures[why]++;
	if (ratelog_due(&c->ls->tls_fail_log, clock_mono_ms(), 1, &n))
		log_warnx("%s: TLS handshake failed (%s): %s (%llu such "
			  "failures since the last message, this one "
			  "included; later ones within 10 s are only counted)",
		    c->name, tls_failure_name(why), text,
		    (unsigned long long)n);
	client_close(c, "tls-handshake-failed");
}

/* EOF or an error before the handshake completed: find out why. */
void
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

/*
 * A TLS handshake still unfinished after tls-handshake-timeout (or, when
 * that is 0, idle-timeout; the sweep decides and says which in
 * c->timeout) is given up: a client that connects and sends nothing, or
 * half a ClientHello, holds no connection slot for long.
 */
void
handle_handshake_timeout(struct client *c)
{
	metrics.connections_timed_out++;
	tls_failed(c, TLS_FAILURE_TIMEOUT, c->timeout);
}

/* The handshake completed: note the client certificate, start reading. */
void
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
