/*
 * listener_udp: proto=udp listeners, syslog over UDP (RFC 5426); see
 * include/logsink/listener.h.
 *
 * One datagram is one message (RFC 5426 section 3.1): no framing, the
 * trailing LF, CR LF or NUL some senders add trimmed, an empty datagram
 * ignored (counted).  The format is auto-detected as on TCP
 * (parser_parse()); the peer column is the sender's address.
 *
 * UDP has no back-pressure.  While the queue is full the sockets are
 * still drained and what is read is dropped and counted, so the kernel's
 * receive buffer does not silently overflow behind a paused reader and
 * the counts stay exact: every datagram that reached the socket is
 * stored, counted in logsink_udp_dropped_total{reason}, or counted by
 * the kernel as a receive-buffer drop (sk_drops, read per datagram from
 * the SO_RXQ_OVFL control message and once a second with SO_MEMINFO,
 * since the control message only tells of drops before a datagram that
 * did arrive) into logsink_udp_kernel_drops_total.
 *
 * Every proto=udp socket shares one set of receive buffers (the loop is
 * single-threaded): UDP_BATCH datagrams of min(max-line-bytes, 65535)
 * bytes plus one, so with the default max-line-bytes about 4 MiB in all.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/sock_diag.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "logsink/buf.h"
#include "logsink/cidr.h"
#include "logsink/clock.h"
#include "logsink/config.h"
#include "logsink/listener.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/parser.h"
#include "logsink/queue.h"
#include "logsink/record.h"
#include "logsink/utf8.h"

#include "listener_int.h"

/*
 * Datagrams per recvmmsg() call, and calls per wakeup before the loop
 * serves its other events (the socket stays readable: level-triggered).
 * 64 amortises the system call over a burst (bench/udp.sh) while the
 * buffers stay a few MiB.
 */
#define UDP_BATCH            64
#define UDP_CALLS_PER_WAKEUP 16
/* The largest UDP payload: 65507 over IPv4, 65527 over IPv6. */
#define UDP_MAX_DATAGRAM     65535
#define UDP_LOG_INTERVAL_MS  10000
#define UDP_DROPS_POLL_MS    1000
/* Parser scratch kept between datagrams (as SCRATCH_KEEP_BYTES). */
#define UDP_SCRATCH_KEEP     (16 * 1024)
/* Index of the kernel's drops in the per-socket report state. */
#define UDP_REPORT_KERNEL    METRICS_UDP_NDROPS
#define UDP_NREPORTS         (METRICS_UDP_NDROPS + 1)

/* One bound UDP socket; owned by its udp_rx, on rx->socks. */
struct udp_sock {
	struct udp_sock *next;
	struct udp_rx *rx;
	int fd;
	struct event *ev; /* EV_READ | EV_PERSIST */
	enum parser_format format;
	struct cidr allow[CONFIG_MAX_ALLOW];
	int nallow;
	uint32_t kernel_drops; /* the socket's sk_drops last seen */
	int rcvbuf_bytes;      /* what the kernel granted */
	uint64_t unlogged[UDP_NREPORTS];
	int64_t logged_ms[UDP_NREPORTS];
	char name[300];
};

union udp_ctl {
	size_t align; /* as struct cmsghdr (its first member) */
	char buf[CMSG_SPACE(sizeof(uint32_t))];
};

/* The proto=udp side of a listeners set; owned by it (ls->udp). */
struct udp_rx {
	struct listeners *ls;
	struct udp_sock *socks;
	struct event *ev_poll; /* SO_MEMINFO drops, the pending reports */
	size_t cap;            /* message bytes kept per datagram */
	char *bufs;            /* UDP_BATCH buffers of cap + 1 bytes */
	struct mmsghdr msgs[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_storage from[UDP_BATCH];
	union udp_ctl ctl[UDP_BATCH];
	struct record rec;
	struct buf scratch; /* the parser's */
	int filled;         /* headers the last recvmmsg() wrote into */
	int64_t now_ms;     /* of the current recvmmsg() */
	int peer_family;    /* the sender peer[] was made from, or 0 */
	unsigned char peer_addr[16];
	char peer[INET6_ADDRSTRLEN];
};

static const char *const report_texts[UDP_NREPORTS] = {
	"read and dropped, the queue full (UDP has no back-pressure)",
	"dropped, the sender not in allow=",
	"empty, ignored",
	"dropped by the kernel, the receive buffer full (udp-rcvbuf)",
};

/* Logs what reason r counted since its last line, at most every
 * UDP_LOG_INTERVAL_MS per socket and reason (force: now, at shutdown). */
static void
udp_report(struct udp_sock *s, int r, int64_t now_ms, bool force)
{
	if (s->unlogged[r] == 0 ||
	    (!force && s->logged_ms[r] != 0 &&
		now_ms - s->logged_ms[r] < UDP_LOG_INTERVAL_MS))
		return;
	log_warnx("udp %s: %llu datagrams %s%s", s->name,
	    (unsigned long long)s->unlogged[r], report_texts[r],
	    s->logged_ms[r] != 0 ? " since the last report" : "");
	s->unlogged[r] = 0;
	s->logged_ms[r] = now_ms;
}

static void
udp_drop(struct udp_sock *s, enum metrics_udp_drop r)
{
	metrics.udp_dropped[r]++;
	if (r == METRICS_UDP_EMPTY)
		return; /* harmless: counted only */
	s->unlogged[r]++;
	udp_report(s, (int)r, s->rx->now_ms, false);
}

/* The socket's cumulative receive-buffer drops are now v (sk_drops, a
 * 32-bit counter that may wrap): count what is new. */
static void
udp_kernel_drops(struct udp_sock *s, uint32_t v)
{
	uint32_t d = v - s->kernel_drops;

	if (d == 0 || d > UINT32_MAX / 2)
		return; /* nothing new, or an older value */
	s->kernel_drops = v;
	metrics.udp_kernel_drops += d;
	s->unlogged[UDP_REPORT_KERNEL] += d;
}

/* SO_RXQ_OVFL: the drop count travels with each datagram (socket(7)). */
static void
udp_cmsg_drops(struct udp_sock *s, struct msghdr *mh)
{
	struct cmsghdr *cm;
	uint32_t v;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SO_RXQ_OVFL &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(v))) {
			memcpy(&v, CMSG_DATA(cm), sizeof(v));
			udp_kernel_drops(s, v);
		}
}

/* SO_MEMINFO (Linux 4.12): the drops also after the last datagram. */
static void
udp_poll_drops(struct udp_sock *s)
{
	uint32_t mem[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mem);

	if (getsockopt(s->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 &&
	    len > SK_MEMINFO_DROPS * sizeof(mem[0]))
		udp_kernel_drops(s, mem[SK_MEMINFO_DROPS]);
}

static bool
udp_allowed(const struct udp_sock *s, const struct sockaddr_storage *ss)
{
	int i;

	if (s->nallow == 0)
		return true;
	for (i = 0; i < s->nallow; i++)
		if (cidr_match(&s->allow[i], (const struct sockaddr *)ss))
			return true;
	return false;
}

/*
 * The peer column for a sender: inet text, remade only when the sender
 * changes (a device sends many datagrams in a row).  An IPv4 sender on a
 * dual-stack socket (logsinkd-udp.socket's bare port) is stored as IPv4,
 * not ::ffff:a.b.c.d.  NULL if unknown.
 */
static const char *
udp_peer(struct udp_rx *rx, const struct sockaddr_storage *ss)
{
	const struct in6_addr *a6;
	const void *a;
	size_t alen;
	int family = ss->ss_family;

	if (family == AF_INET) {
		a = &((const struct sockaddr_in *)ss)->sin_addr;
		alen = 4;
	} else if (family == AF_INET6) {
		a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		a = a6;
		alen = 16;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			a = &a6->s6_addr[12];
			alen = 4;
		}
	} else
		return NULL;
	if (rx->peer_family == family && memcmp(rx->peer_addr, a, alen) == 0)
		return rx->peer;
	rx->peer_family = 0;
	if (inet_ntop(family, a, rx->peer, sizeof(rx->peer)) == NULL)
		return NULL;
	rx->peer_family = family;
	memcpy(rx->peer_addr, a, alen);
	return rx->peer;
}

/* Datagram i of the last recvmmsg(): trimmed, parsed and queued, or
 * dropped and counted. */
static void
udp_datagram(struct udp_sock *s, int i)
{
	struct udp_rx *rx = s->rx;
	struct mmsghdr *m = &rx->msgs[i];
	const char *p = rx->iov[i].iov_base;
	size_t len = m->msg_len, replaced;

	metrics.udp_datagrams++;
	udp_cmsg_drops(s, &m->msg_hdr);
	if (!udp_allowed(s, &rx->from[i])) {
		udp_drop(s, METRICS_UDP_DENIED);
		return;
	}
	if (len > rx->cap || (m->msg_hdr.msg_flags & MSG_TRUNC) != 0) {
		metrics.udp_truncated++;
		metrics.lines_truncated++;
		len = utf8_cut(p, rx->cap, len > rx->cap ? len : rx->cap + 1);
	}
	while (len > 0 &&
	    (p[len - 1] == '\n' || p[len - 1] == '\0' || p[len - 1] == '\r'))
		len--;
	if (len == 0) {
		udp_drop(s, METRICS_UDP_EMPTY);
		return;
	}
	if (queue_full(rx->ls->q)) {
		udp_drop(s, METRICS_UDP_QUEUE_FULL);
		return;
	}
	rx->rec.peer = udp_peer(rx, &rx->from[i]);
	if (parser_parse(&rx->rec, p, len, s->format, &rx->scratch) == -1)
		log_warn("udp %s: parser scratch buffer", s->name);
	metrics.lines_received++;
	metrics.bytes_received += len;
	if (queue_append(rx->ls->q, &rx->rec, &replaced) == -1) {
		metrics.lines_dropped_oom++;
		log_warn("udp %s: datagram dropped, out of memory", s->name);
	} else if (replaced > 0) {
		metrics.lines_sanitized++;
		metrics.bytes_replaced += replaced;
	}
	if (rx->scratch.cap > UDP_SCRATCH_KEEP)
		buf_free(&rx->scratch);
}

/* Resets what the kernel wrote into the headers the last recvmmsg()
 * filled (a wakeup often brings one datagram: not all UDP_BATCH). */
static void
udp_rearm(struct udp_rx *rx)
{
	int i;

	for (i = 0; i < rx->filled; i++) {
		rx->msgs[i].msg_hdr.msg_namelen = sizeof(rx->from[i]);
		rx->msgs[i].msg_hdr.msg_controllen = sizeof(rx->ctl[i]);
		rx->msgs[i].msg_hdr.msg_flags = 0;
	}
	rx->filled = 0;
}

/* Drains up to UDP_CALLS_PER_WAKEUP batches; the loop calls again while
 * the socket stays readable. */
static void
udp_read(struct udp_sock *s)
{
	struct udp_rx *rx = s->rx;
	int calls, n = UDP_BATCH, i;

	for (calls = 0; calls < UDP_CALLS_PER_WAKEUP && n == UDP_BATCH;
	     calls++) {
		udp_rearm(rx);
		n = recvmmsg(s->fd, rx->msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				log_warn("udp %s: recvmmsg", s->name);
			return;
		}
		rx->filled = n;
		rx->now_ms = clock_mono_ms();
		rx->rec.received_us = clock_real_us();
		for (i = 0; i < n; i++)
			udp_datagram(s, i);
	}
}

static void
udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	udp_read(arg);
}

/* Once a second: the kernel's drops and the reports still pending. */
static void
udp_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct udp_rx *rx = arg;
	struct udp_sock *s;
	int64_t now = clock_mono_ms();
	int r;

	(void)fd;
	(void)what;
	for (s = rx->socks; s != NULL; s = s->next) {
		udp_poll_drops(s);
		for (r = 0; r < UDP_NREPORTS; r++)
			udp_report(s, r, now, false);
	}
}

/* ls->udp, made on first use; NULL with err set. */
static struct udp_rx *
udp_rx_get(struct listeners *ls, char *err, size_t errlen)
{
	struct timeval tv = { UDP_DROPS_POLL_MS / 1000, 0 };
	struct udp_rx *rx;
	int i;

	if (ls->udp != NULL)
		return ls->udp;
	if ((rx = calloc(1, sizeof(*rx))) == NULL)
		goto fail;
	rx->ls = ls;
	rx->cap = ls->set.max_line_bytes < UDP_MAX_DATAGRAM
	    ? ls->set.max_line_bytes
	    : UDP_MAX_DATAGRAM;
	if ((rx->bufs = calloc(UDP_BATCH, rx->cap + 1)) == NULL)
		goto fail;
	for (i = 0; i < UDP_BATCH; i++) {
		rx->iov[i].iov_base = rx->bufs + (size_t)i * (rx->cap + 1);
		rx->iov[i].iov_len = rx->cap + 1;
		rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
		rx->msgs[i].msg_hdr.msg_iovlen = 1;
		rx->msgs[i].msg_hdr.msg_name = &rx->from[i];
		rx->msgs[i].msg_hdr.msg_control = rx->ctl[i].buf;
	}
	rx->filled = UDP_BATCH; /* udp_rearm() sets the lengths */
	record_clear_parsed(&rx->rec);
	rx->ev_poll = event_new(ls->base, -1, EV_PERSIST, udp_poll_cb, rx);
	if (rx->ev_poll == NULL || event_add(rx->ev_poll, &tv) == -1)
		goto fail;
	ls->udp = rx;
	return rx;
fail:
	if (rx != NULL) {
		if (rx->ev_poll != NULL)
			event_free(rx->ev_poll);
		free(rx->bufs);
		free(rx);
	}
	snprintf(err, errlen, "udp listener: out of memory");
	return NULL;
}

/*
 * Asks for udp-rcvbuf (SO_RCVBUFFORCE while root: past
 * net.core.rmem_max) and logs what the kernel granted, with a warning
 * when it is less.  Linux doubles the value for its bookkeeping and
 * reports the doubled one (socket(7)).  A socket from systemd whose
 * ReceiveBuffer= is larger keeps it (only_grow).
 */
static void
udp_set_rcvbuf(struct udp_sock *s, size_t want, bool only_grow)
{
	int v = (int)want, got = 0;
	socklen_t len = sizeof(got);

	if (only_grow &&
	    getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 &&
	    (size_t)got / 2 >= want) {
		s->rcvbuf_bytes = got / 2;
		log_info("udp %s: receive buffer %d bytes (from the socket "
			 "unit, not below udp-rcvbuf)",
		    s->name, s->rcvbuf_bytes);
		return;
	}
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) == -1)
		(void)setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	len = sizeof(got);
	if (getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == -1)
		got = 0;
	s->rcvbuf_bytes = got / 2;
	if ((size_t)s->rcvbuf_bytes < want)
		log_warnx("udp %s: udp-rcvbuf is %zu but the kernel granted "
			  "%d bytes (net.core.rmem_max caps it: raise that "
			  "with sysctl, or start logsinkd as root); bursts "
			  "beyond it are dropped by the kernel, counted",
		    s->name, want, s->rcvbuf_bytes);
	else
		log_info("udp %s: receive buffer %d bytes", s->name,
		    s->rcvbuf_bytes);
}

/* Takes fd (closed on failure) into a new socket on ls->udp. */
static int
udp_sock_add(struct listeners *ls, int fd, const char *name,
    const struct listen_spec *spec, bool from_systemd, char *err, size_t errlen)
{
	struct udp_rx *rx;
	struct udp_sock *s;
	int on = 1;

	if ((rx = udp_rx_get(ls, err, errlen)) == NULL ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		snprintf(err, errlen, "listen udp %s: out of memory", name);
		return -1;
	}
	s->rx = rx;
	s->fd = fd;
	s->format = (enum parser_format)spec->format;
	memcpy(s->allow, spec->allow, sizeof(s->allow));
	s->nallow = spec->nallow;
	snprintf(s->name, sizeof(s->name), "%s", name);
	if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on)) == -1)
		log_warn("udp %s: SO_RXQ_OVFL (kernel drops counted once a "
			 "second only)",
		    name);
	udp_set_rcvbuf(s, ls->set.udp_rcvbuf_bytes, from_systemd);
	/* A socket from systemd may have dropped datagrams while no
	 * logsinkd read it: those are lost too, and counted. */
	udp_poll_drops(s);
	s->ev = event_new(ls->base, fd, EV_READ | EV_PERSIST, udp_read_cb, s);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1) {
		if (s->ev != NULL)
			event_free(s->ev);
		close(fd);
		free(s);
		snprintf(err, errlen, "listen udp %s: event_new failed", name);
		return -1;
	}
	s->next = rx->socks;
	rx->socks = s;
	return 0;
}

/* socket + bind for one address; -1 with err set. */
static int
udp_bind_one(
    const struct addrinfo *ai, const char *name, char *err, size_t errlen)
{
	int fd, on = 1;

	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    ai->ai_protocol);
	if (fd == -1) {
		snprintf(err, errlen, "listen udp %s: socket: %s", name,
		    strerror(errno));
		return -1;
	}
	/* No SO_REUSEADDR: on UDP it would let a second daemon bind the
	 * same port and take the datagrams silently. */
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		snprintf(err, errlen, "listen udp %s: %s%s", name,
		    strerror(errno),
		    errno == EADDRINUSE ? " (another process has that port)"
			: errno == EACCES
			? " (ports below 1024 need CAP_NET_BIND_SERVICE "
			  "or the systemd socket unit logsinkd-udp.socket)"
			: "");
		close(fd);
		return -1;
	}
	return fd;
}

int
udp_add(struct listeners *ls, const struct listen_spec *spec, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char name[300];
	int fd, rc;

	snprintf(name, sizeof(name),
	    strchr(spec->host, ':') != NULL ? "[%s]:%s" : "%s:%s", spec->host,
	    spec->port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(spec->host, spec->port, &hints, &res)) != 0) {
		snprintf(
		    err, errlen, "listen udp %s: %s", name, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = udp_bind_one(ai, name, err, errlen)) == -1 ||
		    udp_sock_add(ls, fd, name, spec, false, err, errlen) ==
			-1) {
			freeaddrinfo(res);
			return -1;
		}
	}
	freeaddrinfo(res);
	log_info("listening on udp %s format=%s", name,
	    spec->format == PARSER_RAW ? "raw" : "auto");
	return 0;
}

int
udp_add_fd(struct listeners *ls, int fd, const char *name,
    const struct listen_spec *spec, char *err, size_t errlen)
{
	if (spec->ack != CONFIG_ACK_NONE || spec->tls) {
		close(fd);
		snprintf(err, errlen,
		    "socket %s from systemd is UDP: its listen entry may not "
		    "have ack= or tls=on",
		    name);
		return -1;
	}
	if (udp_sock_add(ls, fd, name, spec, true, err, errlen) == -1)
		return -1;
	log_info("listening on udp %s (socket from systemd) format=%s", name,
	    spec->format == PARSER_RAW ? "raw" : "auto");
	return 0;
}

void
udp_shutdown(struct listeners *ls)
{
	struct udp_rx *rx = ls->udp;
	struct udp_sock *s;
	int r;

	if (rx == NULL)
		return;
	while ((s = rx->socks) != NULL) {
		rx->socks = s->next;
		udp_read(
		    s); /* what the kernel holds, while the queue has room */
		udp_poll_drops(s);
		for (r = 0; r < UDP_NREPORTS; r++)
			udp_report(s, r, clock_mono_ms(), true);
		event_free(s->ev);
		close(s->fd);
		free(s);
	}
	event_del(rx->ev_poll);
}

void
udp_free(struct listeners *ls)
{
	struct udp_rx *rx = ls->udp;

	if (rx == NULL)
		return;
	udp_shutdown(ls);
	event_free(rx->ev_poll);
	buf_free(&rx->scratch);
	free(rx->bufs);
	free(rx);
	ls->udp = NULL;
}
