/*
 * listener_proxy: the PROXY protocol glue of the listener (see
 * listener_int.h; the decoder is proxy.c).
 *
 * On a proxy= listener a connection from one of its proxies starts in
 * the PROXY state, before any bufferevent exists.  The header is read
 * with recv(MSG_PEEK) into a small buffer and only its own bytes are
 * consumed: what is incomplete belongs to the header whole (proxy.h), so
 * it is taken, and a whole header is taken to its last byte.  Nothing
 * past the header leaves the kernel, so the bufferevent made afterwards
 * (plain, or OpenSSL for TLS passthrough, whose ClientHello may already
 * be waiting) starts at the client's first byte as on a direct
 * connection.  Then the client named by the header is admitted as a
 * direct one would be (allow=, max-connections-per-ip), its address in
 * the peer column and the log lines.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "logsink/clock.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/proxy.h"

#include "listener_int.h"

static void
proxy_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	client_dispatch(arg, CLE_READ);
}

void
client_proxy_start(struct client *c, int fd)
{
	struct listeners *ls = c->ls;

	c->fd = fd;
	c->proxy_buf = malloc(ls->set.proxy_max_header_bytes);
	c->ev_proxy =
	    event_new(ls->base, fd, EV_READ | EV_PERSIST, proxy_read_cb, c);
	if (c->proxy_buf == NULL || c->ev_proxy == NULL ||
	    event_add(c->ev_proxy, NULL) == -1) {
		log_warnx("%s: connection dropped: out of memory for its "
			  "PROXY header",
		    c->name);
		client_close(c, "out of memory");
	}
}

void
client_proxy_stop(struct client *c)
{
	if (c->ev_proxy != NULL)
		event_del(c->ev_proxy);
}

/* Frees the PROXY state's event and buffer; the fd stays. */
static void
proxy_release(struct client *c)
{
	if (c->ev_proxy != NULL)
		event_free(c->ev_proxy);
	c->ev_proxy = NULL;
	free(c->proxy_buf);
	c->proxy_buf = NULL;
}

void
client_proxy_free(struct client *c)
{
	proxy_release(c);
	if (c->fd != -1 && c->bev == NULL)
		close(c->fd);
	c->fd = -1;
}

/*
 * A header refused (bad, missing, cut off, late): counted by reason,
 * logged at most once per 10 s with the count in
 * between, the connection closed.
 */
static void
proxy_failed(struct client *c, enum proxy_failure why, const char *text)
{
	uint64_t n;

	metrics.proxy_failures[why]++;
	if (ratelog_due(&c->ls->proxy_fail_log, clock_mono_ms(), 1, &n))
		log_warnx("%s: bad PROXY header (%s): %s; connection closed "
			  "(%llu such since the last message, this one "
			  "included; later ones within 10 s are only counted)",
		    c->name, proxy_failure_name(why), text,
		    (unsigned long long)n);
	client_close(c, "proxy-header-failed");
}

/*
 * The header is whole: the client it names becomes the peer (unless it
 * names none: LOCAL, UNKNOWN), then it is admitted like a direct one.
 */
static void
proxy_done(struct client *c, const struct proxy_header *h)
{
	char via[sizeof(c->name)];

	metrics.proxy_headers[h->version - 1]++;
	proxy_release(c);
	memcpy(via, c->name, sizeof(via));
	c->proxy_local = h->local;
	if (!h->local) {
		memset(&c->sa, 0, sizeof(c->sa));
		memcpy(&c->sa, &h->src, h->addrlen);
		client_name(c, (const struct sockaddr *)&c->sa, h->addrlen);
	}
	log_debug("%s: PROXY v%d header from %s%s", c->name, h->version, via,
	    h->local ? " (LOCAL or UNKNOWN: the proxy's own address)" : "");
	if (client_admit(c, c->fd) == -1) {
		client_close(c, "refused");
		return;
	}
	c->fd = -1; /* the bufferevent's now */
	c->last_read_ms = clock_mono_ms();
	c->accepted_ms = c->last_read_ms; /* tls-handshake-timeout's start */
}

/*
 * fd is readable: peek at what arrived after the bytes taken so far,
 * decode, and take exactly the header's bytes (see the top of the file).
 */
void
handle_proxy_read(struct client *c)
{
	size_t max = c->ls->set.proxy_max_header_bytes, take;
	struct proxy_header h;
	enum proxy_failure why;
	char err[256];
	ssize_t n;
	int rc;

	n = recv(
	    c->fd, c->proxy_buf + c->proxy_len, max - c->proxy_len, MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		proxy_failed(c, PROXY_FAILURE_EOF,
		    n == 0 ? "closed before its end" : strerror(errno));
		return;
	}
	rc = proxy_parse(c->proxy_buf, c->proxy_len + (size_t)n, max, &h, &why,
	    err, sizeof(err));
	if (rc == -1) {
		proxy_failed(c, why, err);
		return;
	}
	take = rc == 1 ? h.len - c->proxy_len : (size_t)n;
	n = recv(c->fd, c->proxy_buf + c->proxy_len, take, 0);
	if (n <= 0) {
		proxy_failed(c, PROXY_FAILURE_EOF,
		    n == 0 ? "closed before its end" : strerror(errno));
		return;
	}
	c->proxy_len += (size_t)n;
	if (rc == 1 && (size_t)n == take)
		proxy_done(c, &h);
}

/* proxy-header-timeout passed (the sweep set c->timeout). */
void
handle_proxy_timeout(struct client *c)
{
	metrics.connections_timed_out++;
	proxy_failed(c, PROXY_FAILURE_TIMEOUT, c->timeout);
}

const char *
proxy_overdue(const struct listeners *ls, const struct client *c, int64_t now)
{
	if (now - c->accepted_ms < ls->set.proxy_header_timeout_ms)
		return NULL;
	return "no whole PROXY header within proxy-header-timeout";
}
