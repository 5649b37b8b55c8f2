/*
 * listener: TCP listeners and client connections.  Reads with libevent
 * bufferevents, frames each connection's bytes into messages and appends
 * them to the queue; stops reading from every client while the queue is
 * full (TCP back-pressure reaches the senders) and resumes below the
 * queue's resume level.  Knows libevent, not libpq.
 *
 * ack=commit and ack=spooled listeners keep each sender's acknowledgement
 * state in the ack module (ack.h): main gives the queue ack_take,
 * ack_credit and ack_drop as its queue_ack_cb; the listeners tell their
 * clients from the event loop.
 *
 * Back-pressure is fair (listener_fair.c): above fair_share_percent of the
 * queue, a connection whose lines hold more than an equal share of it is
 * paused first, so that one flooding sender does not stop the others;
 * a full queue still pauses everyone.  An optional token bucket per
 * source (address or TLS subject) pauses a sender past its rate, or
 * drops the excess (counted).
 *
 * proto=udp listeners (listener_udp.c) read syslog datagrams (RFC 5426)
 * with recvmmsg(), one datagram one message.  UDP has no back-pressure:
 * while the queue is full they keep draining their sockets and drop what
 * they read, counted (logsink_udp_dropped_total{reason="queue_full"}), as
 * the kernel's own receive-buffer drops are (SO_RXQ_OVFL, SO_MEMINFO:
 * logsink_udp_kernel_drops_total).
 */
#ifndef LOGSINK_LISTENER_H
#define LOGSINK_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "logsink/config.h"
#include "logsink/queue.h"
#include "logsink/tls.h"

struct listener_settings {
	size_t max_line_bytes;
	int max_connections;
	int max_per_ip; /* 0: no limit */
	int idle_timeout_ms;
	int partial_line_timeout_ms;
	int framing_detect_ms;  /* framing=auto: held lines wait this long */
	int max_tls_handshakes; /* TLS connections in their handshake */
	int proxy_header_timeout_ms;   /* proxy= listeners */
	size_t proxy_max_header_bytes; /* v2, TLVs included */
	size_t udp_rcvbuf_bytes; /* SO_RCVBUF asked for proto=udp sockets */
	size_t forward_max_message_bytes; /* proto=forward */
	size_t forward_max_entries;
	size_t http_max_header_bytes; /* proto=http listeners */
	int http_max_headers;
	size_t http_max_body_bytes;
	int http_max_depth; /* JSON and protobuf nesting in bodies */
	int http_header_timeout_ms;
	int http_body_timeout_ms;
	int http_keepalive_timeout_ms;
	int http_answer_timeout_ms;
	/* Fair back-pressure and rate limits (listener_fair.c). */
	int fair_share_percent;  /* 0: a full queue pauses everyone, only */
	uint32_t rate_per_sec;   /* lines a second per source; 0: no limit */
	uint32_t rate_burst;     /* bucket size; 0: rate_per_sec */
	bool rate_drop;          /* drop the excess instead of pausing */
	size_t rate_max_sources; /* sources tracked (start-up value kept) */
};

struct listeners;

struct listeners *listeners_new(struct event_base *base, struct queue *q,
    const struct listener_settings *set);
/*
 * The TLS context for new connections on tls=on listeners (owned by ls
 * from now on; the previous one is freed, connections made from it keep
 * it until they close) and how long a handshake may take (0: no limit).
 * Call before adding a tls=on listener.
 */
void listeners_set_tls(
    struct listeners *ls, struct tls_ctx *ctx, int handshake_timeout_ms);
/*
 * Run-time settings (SIGHUP): connection limits and timeouts apply at
 * once, to open connections too; max_line_bytes keeps its start-up value.
 */
void listeners_set_settings(
    struct listeners *ls, const struct listener_settings *set);
/* Binds and listens on a parsed listen value (config.h), TCP or
 * proto=udp; -1 with a message in err. */
int listeners_add(struct listeners *ls, const struct listen_spec *spec,
    char *err, size_t errlen) __attribute__((warn_unused_result));
/*
 * Adopts an already listening socket (systemd socket activation): a
 * listening TCP socket, or a bound UDP socket (ListenDatagram=).  spec,
 * if not NULL, is the listen setting whose options (framing=, format=...)
 * apply to it.
 */
int listeners_add_fd(struct listeners *ls, int fd,
    const struct listen_spec *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/*
 * proto=http answers 503 (Retry-After) to new requests while
 * can_store(arg) is false: no database connection is up and there is no
 * spool to take the records.  Unset: always true.
 */
void listeners_set_can_store(
    struct listeners *ls, bool (*can_store)(void *arg), void *arg);
/* The queue has room again: resume reading from clients. */
void listeners_resume(struct listeners *ls);
/*
 * Shutdown: close the listening sockets, read what the kernel already
 * holds for each client (while the queue has room), frame it, close the
 * clients but those waiting for the acks of their lines.  Returns the
 * number of clients closed.
 */
size_t listeners_shutdown(struct listeners *ls);
void listeners_free(struct listeners *ls);
/* Clients still open (after shutdown: those waiting for their acks). */
size_t listeners_open(const struct listeners *ls);

#endif
