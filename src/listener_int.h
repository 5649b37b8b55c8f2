/*
 * listener internals shared by listener.c (accept, limits, the client
 * machine, timeouts, shutdown) and listener_tls.c (the TLS glue: the
 * OpenSSL bufferevent, the handshake, plaintext left in the SSL object).
 * Not part of the public API.
 */
#ifndef LOGSINK_LISTENER_INT_H
#define LOGSINK_LISTENER_INT_H

#include <sys/socket.h>

#include <netinet/in.h>

#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "logsink/ack.h"
#include "logsink/buf.h"
#include "logsink/framer.h"
#include "logsink/iptable.h"
#include "logsink/listener.h"
#include "logsink/metrics.h"
#include "logsink/parser.h"
#include "logsink/ratelog.h"
#include "logsink/record.h"
#include "logsink/tls.h"

/*
 * The client machine (client_dispatch() in listener.c): each state with
 * its exits.
 *
 * PROXY      proxy= listener, a peer in its proxy list: reading the PROXY
 *            header (listener_proxy.c) with plain recv(), no bufferevent
 *            yet.  The header whole, the client admitted (allow=,
 *            per-address limits) -> HANDSHAKE (tls=on), READING or
 *            PAUSED; a bad or missing header, EOF, TIMEOUT
 *            (proxy-header-timeout), refused, SHUTDOWN -> CLOSING.
 * HANDSHAKE  tls=on, the TLS handshake under way.  CONNECTED -> READING
 *            (PAUSED while the queue is full); EOF, ERROR (the handshake
 *            failed), TIMEOUT (tls-handshake-timeout), SHUTDOWN -> CLOSING.
 * READING    framing what arrives into queued lines (DETECT: the framer
 *            delivers lines it held undecided, framer.h).  PAUSE (queue full)
 *            -> PAUSED; after a read, PAUSE with a hold (listener_fair.c:
 *            c->hold CL_HOLD_FAIR, it holds more than its share of a
 *            queue above fair-share-percent; CL_HOLD_RATE, its source is
 *            out of tokens) -> PAUSED; EOF, the input framed -> ACKWAIT
 *            (lines not yet stored), FLUSHING (an "ok N" not yet written)
 *            or CLOSING; ERROR or TIMEOUT (idle-, partial-line-timeout),
 *            the input framed -> CLOSING; SHUTDOWN -> ACKWAIT or CLOSING.
 *            When framing fills the queue, everyone pauses first and the
 *            rest waits in PAUSED.
 * PAUSED     not reading (queue full, or held); input and a seen EOF or
 *            error wait, so no line that reached us is lost to
 *            back-pressure.  RESUME (the queue below its resume level:
 *            the clients that are not held, the smallest users of the
 *            queue first; or the last hold ended, by ev_fair after
 *            credits or ev_rate, while the queue is not full) -> READING,
 *            which frames the rest at once; SHUTDOWN (the final read
 *            takes no rate limit) -> ACKWAIT or CLOSING.
 * ACKWAIT    ack=commit/spooled: EOF read, waiting until all its lines
 *            are stored.  ACKED (all stored) -> FLUSHING or CLOSING; ERROR
 *            -> CLOSING.
 * FLUSHING   closing once the output (the last "ok N") is written.
 *            WRITTEN -> CLOSING; ERROR -> CLOSING.
 * CLOSING    marked by client_close(): off the client list, its events
 *            disabled, on the reap list; every event is ignored (callbacks
 *            already queued in this loop pass may still come).  No exit:
 *            the reaper frees it once per loop pass.
 *
 * A client of a session protocol (c->sess_ops: proto=relp in
 * listener_relp.c, ...) goes the same way: its decoder replaces the
 * framer, the end of the session or a protocol error counts as EOF
 * (reading stops, ACKWAIT until its lines are answered), and
 * client_finish() first lets it write its last answer (RELP: the close
 * answer, the rsp 500 and serverclose, or at shutdown the serverclose).
 */
enum cl_state {
	CL_PROXY,
	CL_HANDSHAKE,
	CL_READING,
	CL_PAUSED,
	CL_ACKWAIT,
	CL_FLUSHING,
	CL_CLOSING,
	CL_NSTATES,
};

enum cl_event {
	CLE_READ,
	CLE_EOF,
	CLE_ERROR,
	CLE_PAUSE,
	CLE_RESUME,
	CLE_ACKED,     /* more of its lines stored (the ack drain) */
	CLE_WRITTEN,   /* its output buffer drained */
	CLE_CONNECTED, /* the TLS handshake completed */
	CLE_TIMEOUT,   /* the sweep: c->timeout says which */
	CLE_DETECT,    /* framing-detect-timeout: held lines go as LF */
	CLE_SHUTDOWN,  /* listeners_shutdown() */
	CLE_NEVENTS,
};

/*
 * A session protocol (proto=relp, ...): a decoder that replaces the
 * framer and answers that replace "ok N", on the client machine.  Each
 * message the session queues is one line of the client's ack reference
 * (c->queued), so the ack drain learns which are stored; the session
 * keeps its own state in c->sess.  Every listener of such a protocol has
 * an ack reference (ack=commit unless the listen line says spooled).
 *
 *  start      c->sess for a new client; -1: out of memory (logged by
 *             the caller).
 *  free       frees c->sess (also when start failed or never ran).
 *  feed       framer_feed()'s contract on the contiguous bytes buf; the
 *             next step's contiguous bytes in *need (0: nothing can be
 *             done until more arrives; SIZE_MAX: all there are).
 *  check      after each feed round: a protocol error or the peer's end
 *             ends reading (c->eof, EV_READ off); the machine then waits
 *             for the acks of what was queued (ACKWAIT).
 *  send_acks  the ack drain and WRITTEN: writes the answers of what
 *             ack_committed() says is stored; sets c->ack_pending while
 *             answers are held back (output full).
 *  finish     before closing: the last answer, once; the reason for the
 *             close log line.
 *  shutdown   SIGTERM: what finish() writes becomes the goodbye.
 *  max_input  (may be NULL) the input a client may hold, at least its
 *             longest message; NULL: max-line-bytes and one read.
 *  opened     (may be NULL) c->bev is set up: the session may write
 *             first (Fluent forward's HELO).
 *  listen     optional: the protocol's state of one listener, from its
 *             listen value (proto=http: path=, tokens=); -1 with err set.
 *             The clients of its socket find it in c->sess_conf.
 *  listen_free  frees it (listeners_free(): clients outlive sockets).
 */
struct client;

struct session_ops {
	const char *proto;
	int (*start)(struct client *c);
	void (*free)(struct client *c);
	size_t (*feed)(struct client *c, const char *buf, size_t len, bool eof,
	    size_t *need);
	void (*check)(struct client *c);
	void (*send_acks)(struct client *c);
	const char *(*finish)(struct client *c, const char *reason);
	void (*shutdown)(struct client *c);
	size_t (*max_input)(const struct client *c);
	void (*opened)(struct client *c);
	int (*listen)(struct listeners *ls, const struct listen_spec *spec,
	    void **conf, char *err, size_t errlen);
	void (*listen_free)(void *conf);
};

/*
 * One TCP client; owned by its listeners set: on ls->clients while open,
 * on ls->reap once client_close() marked it; freed by the reaper (or by
 * listeners_free() at exit).
 */
struct client {
	struct client *prev, *next; /* on ls->clients */
	struct client *reap_next;   /* on ls->reap, once CLOSING */
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
	const char *timeout;      /* why the sweep sent CLE_TIMEOUT */
	enum parser_format format;
	const struct tzrule *tz; /* the listener's tz=, or NULL; not owned */
	struct record rec;
	struct buf scratch; /* the parser's; released when it grew big */
	uint64_t lines, bytes;
	uint64_t bad_frames;  /* fr.bad_frames already counted */
	struct ackref *ack;   /* NULL unless the listener says ack=commit
				 or ack=spooled; the client's reference */
	bool ack_spooled;     /* ack=spooled */
	uint64_t queued;      /* lines accepted into the queue; the next
				 line's number for the ack module */
	uint64_t acked;       /* N of the last "ok N" written or due */
	bool ack_pending;     /* an "ok N" waits for the output to drain */
	bool tls;             /* bev is an OpenSSL bufferevent */
	int64_t accepted_ms;  /* for tls-handshake-timeout */
	char *tls_subject;    /* verified client certificate, or NULL; owned */
	struct event *ev_end; /* TLS: EOF/error handled on the next pass */
	struct event *ev_detect; /* framing-detect-timeout, or NULL */
	enum cl_event end_ev;
	const struct listen_sock *sock; /* its listener (for client_admit) */
	bool ip_counted;                /* c->sa is counted in ls->per_ip */
	bool proxy_local;       /* LOCAL/UNKNOWN header: c->sa is the proxy's */
	int fd;                 /* in PROXY: owned; later: -1 */
	struct event *ev_proxy; /* in PROXY: fd readable; owned */
	unsigned char *proxy_buf; /* in PROXY: header so far; owned */
	size_t proxy_len;
	const struct session_ops *sess_ops; /* proto=relp...: or NULL */
	void *sess;                         /* its state; owned */
	void *sess_conf; /* its listener's (session_ops.listen), or NULL */
	/* Fair back-pressure and rate limits (listener_fair.c). */
	unsigned hold;         /* CL_HOLD_*: why it waits in PAUSED */
	uint64_t src;          /* its queue source token, or 0 */
	size_t inq;            /* row bytes of its lines the queue holds */
	uint64_t rate_budget;  /* lines it may frame in this round */
	uint64_t rate_lines;   /* c->lines when the round began */
	uint64_t rate_dropped; /* lines dropped in this round */
	bool fair_round;       /* this round's rows are attributed to it */
	bool rate_on;          /* this round is rate limited */
	bool rate_drop;        /* ... and drops its excess */
	int64_t rate_held_ms;  /* when CL_HOLD_RATE began */
	struct event *ev_rate; /* the wait for tokens, or NULL */
};

/* Why a client is in PAUSED besides a full queue (c->hold). */
#define CL_HOLD_FAIR 0x1u /* it holds more than its share of the queue */
#define CL_HOLD_RATE 0x2u /* its source is out of tokens */

/* Owned by main; freed by listeners_free(). */
struct listeners {
	struct event_base *base;
	struct queue *q;
	struct listener_settings set;
	struct listen_sock **socks;
	size_t nsocks;
	struct event *ev_accept_retry;
	struct event *ev_sweep;
	struct event *ev_reap; /* active while ls->reap is not empty */
	struct event *ev_acks; /* active while acks has completions */
	struct iptable *per_ip;
	struct ratelog refuse_log;
	int handshaking; /* clients in CL_HANDSHAKE */
	struct client *clients;
	struct client *reap; /* marked CLOSING, freed by the reaper */
	struct ack_list *acks;
	uint64_t next_id;
	bool paused;
	int64_t paused_since_ms;
	struct tls_ctx *tls; /* for new TLS connections; owned, may be NULL */
	int tls_handshake_timeout_ms;
	struct ratelog tls_fail_log;
	struct ratelog proxy_fail_log;
	struct tzrule **tzs; /* the listeners' tz= rules; owned */
	size_t ntzs;
	struct udp_rx *udp; /* proto=udp listeners (listener_udp.c), or NULL */
	struct ratelog relp_err_log;
	struct ratelog forward_err_log;
	struct ratelog http_err_log;
	struct sess_conf *confs; /* session_ops.listen's, until freed */
	/* Whether records can be stored at all now (a database connection
	 * or a spool): main's, or NULL (always). */
	bool (*can_store)(void *arg);
	void *can_store_arg;
	/* Fair back-pressure and rate limits (listener_fair.c). */
	struct fair_slot *slots; /* queue source tokens -> clients */
	uint32_t nslots, free_slot;
	uint64_t fair_held;     /* clients held by CL_HOLD_FAIR */
	size_t fair_from_bytes; /* queue_bytes() from which rows count */
	struct event *ev_fair;  /* active: look at the held ones again */
	struct ratelimit *rl;   /* NULL: no rate limit */
	bool stopping;          /* shutdown: no limit on the final reads */
	struct ratelog rate_log;
};

/* A session protocol's listener state, kept by listeners_free(). */
struct sess_conf {
	struct sess_conf *next;
	const struct session_ops *ops;
	void *conf;
};

/* listener.c */
void client_set_state(struct client *c, enum cl_state state);
void client_dispatch(struct client *c, enum cl_event ev);
/*
 * Admits c, its peer in c->sa: allow= (when it came through a proxy),
 * max-connections-per-ip, the bufferevent owning fd, the ack reference;
 * then READING, PAUSED or HANDSHAKE.  -1 when refused (counted, logged)
 * or out of memory: fd is still the caller's, c unchanged.
 */
int client_admit(struct client *c, int fd) __attribute__((warn_unused_result));
/* Formats the peer for the peer column ("ip") and log lines. */
void client_name(struct client *c, const struct sockaddr *sa, socklen_t salen);
/* Marks c CLOSING (see the diagram); the reaper frees it. */
void client_close(struct client *c, const char *reason);
/* READING: frames what arrived; pauses everyone or finishes at EOF. */
void handle_reading_input(struct client *c);
/* One message -> one queued record; false: stop (the queue is full). */
bool client_message(void *arg, const char *msg, size_t len, bool truncated);
/* client_message() for a record a session parsed already (c->rec): len
 * bytes received, its message cut (c->fr.truncated counted). */
bool client_record(struct client *c, size_t len, bool truncated);

/* listener_fair.c: fair back-pressure and rate limits */
/* Sets up (listeners_new) and frees (listeners_free) ls's part; -1 on
 * ENOMEM. */
int fair_init(struct listeners *ls) __attribute__((warn_unused_result));
void fair_free(struct listeners *ls);
/* The slow parts of fair_round_begin(), fair_round_end() and
 * fair_check() below. */
void fair_round_start(struct client *c);
void fair_round_finish(struct client *c);
bool fair_hold_check(struct client *c);
/* The framer callback of a rate-limited round (framed TCP). */
bool client_message_limited(
    void *arg, const char *msg, size_t len, bool truncated);
/* client_close(): c leaves the accounting, its holds and timer. */
void fair_forget(struct client *c);
/* The queue has room again: resumes the paused clients that are not
 * held, the smallest users of the queue first. */
void fair_resume_all(struct listeners *ls);
/* New settings (SIGHUP): looks at the held clients again. */
void fair_set_settings(struct listeners *ls);

/*
 * A round of framing for c (a read): attributes its rows to it (above
 * half the fair level), takes its rate budget; round_end counts what the
 * round queued and dropped.  Inline: away from pressure and without a
 * rate limit, a read costs a comparison.
 */
static inline void
fair_round_begin(struct client *c)
{
	c->fair_round = queue_bytes(c->ls->q) >= c->ls->fair_from_bytes;
	c->rate_on = false;
	if (c->fair_round || c->ls->rl != NULL)
		fair_round_start(c);
}

static inline void
fair_round_end(struct client *c)
{
	if (c->fair_round || c->rate_on)
		fair_round_finish(c);
}

/* READING after a round: pauses c (fair share, rate) if it must; true if
 * it did. */
static inline bool
fair_check(struct client *c)
{
	if (!c->rate_on && c->inq == 0)
		return false; /* no tokens to wait for, nothing queued */
	return fair_hold_check(c);
}

/* The framer callback of c's round (client_message, or its rate-limited
 * wrapper).  Once per round, so the unlimited path costs nothing per
 * line. */
static inline framer_msg_cb
fair_msg_cb(const struct client *c)
{
	return c->rate_on ? client_message_limited : client_message;
}

/* False while c's round may frame no more (pause mode, out of tokens);
 * checked once per chunk of input, so inline. */
static inline bool
fair_may_frame(const struct client *c)
{
	return !c->rate_on || c->rate_drop || c->rate_budget > 0;
}

/* listener_relp.c: proto=relp (rsyslog's omrelp) */
extern const struct session_ops relp_session;
/* listener_forward.c: proto=forward (Fluentd, Fluent Bit, fluent-logger) */
extern const struct session_ops forward_session;

/* listener_http.c: proto=http (HTTP ingest; body.h decoders) */
extern const struct session_ops http_session;

/* listener_tls.c */
/* An OpenSSL bufferevent owning fd, accepting; NULL: the caller closes
 * fd. */
struct bufferevent *client_tls_bev_new(
    struct listeners *ls, struct client *c, int fd);
/* Moves plaintext OpenSSL holds already into the input buffer. */
void client_tls_pending(struct client *c);
/* HANDSHAKE events: CONNECTED, EOF or ERROR, TIMEOUT. */
void handle_handshake_done(struct client *c);
void handle_handshake_error(struct client *c);
void handle_handshake_timeout(struct client *c);

/* listener_proxy.c */
/* Starts reading the PROXY header of c (linked, in PROXY) from fd, owned
 * by c from now on. */
void client_proxy_start(struct client *c, int fd);
/* PROXY events: READ (fd readable), TIMEOUT. */
void handle_proxy_read(struct client *c);
void handle_proxy_timeout(struct client *c);
/* Why a client in PROXY is overdue (proxy-header-timeout), or NULL. */
const char *proxy_overdue(
    const struct listeners *ls, const struct client *c, int64_t now);
/* The PROXY state's part of client_close() and client_free(). */
void client_proxy_stop(struct client *c);
void client_proxy_free(struct client *c);
/* listener_udp.c */
struct udp_rx;
/* Binds spec (proto=udp) on each of its addresses; -1 with err set. */
int udp_add(struct listeners *ls, const struct listen_spec *spec, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* Adopts a bound UDP socket from systemd (ListenDatagram=). */
int udp_add_fd(struct listeners *ls, int fd, const char *name,
    const struct listen_spec *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Shutdown: reads what the sockets hold (while the queue has room), then
 * closes them. */
void udp_shutdown(struct listeners *ls);
/* Frees what udp_add() made (after udp_shutdown() or at exit). */
void udp_free(struct listeners *ls);

#endif
