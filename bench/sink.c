/*
 * sink: a trivial TCP server for measuring bench/loadgen (see
 * bench/README.md).  Accepts any number of connections, reads and discards,
 * and counts framed lines: newline-terminated (--framing lf) or RFC 6587
 * octet-counted "LEN SP MSG" (--framing octet).
 *
 * A session lasts from the first accepted connection until no connection
 * is open; at its end one summary line goes to stdout.  --once exits after
 * the first session.  --verify checks that every message carries loadgen's
 * id=<run>-<conn>-<seq> token with seq 1, 2, 3... per connection and no
 * connection number twice.  --ack writes "ok N\n" (N = lines received on
 * the connection) after each read, to exercise loadgen --ack.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTFLIKE(f, a)
#endif

#define READ_BYTES       (256 * 1024)
#define MAX_MSG          (1024 * 1024) /* octet LEN and --verify cap */
#define MAX_EVENTS       256
#define MAX_CONN_ID      (1U << 24)
#define MAX_ERRORS_SHOWN 10
#define RUN_MAX          32

enum framing { FRAMING_LF, FRAMING_OCTET };
enum oct_state { OCT_LEN, OCT_MSG };

static struct {
	const char *listen;
	enum framing framing;
	bool ack;
	bool verify;
	bool once;
} opt = { .listen = "127.0.0.1:5140" };

/*
 * One accepted connection; malloc'd by accept_all(), freed by
 * conn_close().  carry (--verify only) holds a message split across reads.
 */
struct sconn {
	int fd;
	unsigned id; /* accept order within the session */
	uint64_t lines;
	uint64_t bytes;
	uint64_t acked; /* N of the last ack queued */
	bool in_msg;    /* bytes of an unfinished message seen */
	enum oct_state oct;
	uint64_t oct_len; /* LEN being parsed, then bytes left */
	unsigned oct_digits;
	char *carry;
	size_t carry_len;
	size_t carry_cap;
	bool have_id;
	char run[RUN_MAX + 1];
	uint64_t conn_id;
	uint64_t next_seq;
	char out[32]; /* pending ack text */
	size_t out_len;
	size_t out_off;
};

/* Counters of the current session; reset by session_end(). */
static struct {
	uint64_t lines, bytes, conns, open;
	uint64_t partial, resets, framing_errors, verify_errors;
	uint64_t first_ns, last_ns;
	uint64_t *seen; /* bitmap of loadgen conn ids (--verify) */
	size_t seen_words;
} sess;

static volatile sig_atomic_t got_signal;
static unsigned errors_shown;
static char rbuf[READ_BYTES];

static void die(const char *fmt, ...) PRINTFLIKE(1, 2);
static void conn_warn(const struct sconn *c, const char *fmt, ...)
    PRINTFLIKE(2, 3);

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("sink: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/* Prints a per-connection problem; only the first few of a session. */
static void
conn_warn(const struct sconn *c, const char *fmt, ...)
{
	va_list ap;

	if (errors_shown++ >= MAX_ERRORS_SHOWN)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "sink: conn %u: ", c->id);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- --verify ---- */

/* Marks loadgen connection id n as seen; false if it was already. */
static bool
seen_mark(uint64_t n)
{
	size_t w = (size_t)(n / 64);

	if (w >= sess.seen_words) {
		size_t words = (w + 1) * 2;
		uint64_t *p = realloc(sess.seen, words * sizeof(*p));
		if (p == NULL)
			die("out of memory");
		memset(p + sess.seen_words, 0,
		    (words - sess.seen_words) * sizeof(*p));
		sess.seen = p;
		sess.seen_words = words;
	}
	if (sess.seen[w] & (1ULL << (n % 64)))
		return false;
	sess.seen[w] |= 1ULL << (n % 64);
	return true;
}

/* Parses decimal digits at *p (before end); false if there are none. */
static bool
parse_u64(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (s < end && *s >= '0' && *s <= '9' && *v < UINT64_MAX / 10)
		*v = *v * 10 + (uint64_t)(*s++ - '0');
	if (s == *p)
		return false;
	*p = s;
	return true;
}

/*
 * Finds "id=RUN-CONN-SEQ" in message p[0..n): copies RUN (NUL-terminated)
 * and returns CONN and SEQ.  False if the token is missing or malformed.
 */
static bool
parse_id(const char *p, size_t n, char *run, uint64_t *conn, uint64_t *seq)
{
	const char *end = p + n, *s = memmem(p, n, "id=", 3), *dash;

	if (s == NULL)
		return false;
	s += 3;
	dash = memchr(s, '-', (size_t)(end - s));
	if (dash == NULL || dash == s || dash - s > RUN_MAX)
		return false;
	memcpy(run, s, (size_t)(dash - s));
	run[dash - s] = '\0';
	s = dash + 1;
	if (!parse_u64(&s, end, conn) || s >= end || *s++ != '-' ||
	    !parse_u64(&s, end, seq))
		return false;
	return s == end || *s == ' ' || *s == '"';
}

/*
 * Checks one message of c: same run and connection number as the
 * connection's first message, seq one more than the previous.
 */
static void
verify_msg(struct sconn *c, const char *p, size_t n)
{
	char run[RUN_MAX + 1];
	uint64_t conn, seq;

	if (!parse_id(p, n, run, &conn, &seq)) {
		sess.verify_errors++;
		conn_warn(c, "message %" PRIu64 ": no id=RUN-CONN-SEQ token",
		    c->lines);
		return;
	}
	if (!c->have_id) {
		c->have_id = true;
		memcpy(c->run, run, sizeof(run));
		c->conn_id = conn;
		c->next_seq = 1;
		if (conn >= MAX_CONN_ID || !seen_mark(conn)) {
			sess.verify_errors++;
			conn_warn(
			    c, "connection id %" PRIu64 " seen twice", conn);
		}
	} else if (conn != c->conn_id || strcmp(run, c->run) != 0) {
		sess.verify_errors++;
		conn_warn(c, "id %s-%" PRIu64 " on connection of %s-%" PRIu64,
		    run, conn, c->run, c->conn_id);
	}
	if (seq != c->next_seq) {
		sess.verify_errors++;
		conn_warn(c,
		    "%s-%" PRIu64 ": seq %" PRIu64 ", expected %" PRIu64, run,
		    conn, seq, c->next_seq);
	}
	c->next_seq = seq + 1;
}

/* Appends part of a message split across reads to c->carry. */
static void
carry_add(struct sconn *c, const char *p, size_t n)
{
	if (c->carry_len + n > c->carry_cap) {
		size_t cap = c->carry_cap ? c->carry_cap : 4096;
		char *q;
		while (cap < c->carry_len + n && cap < MAX_MSG)
			cap *= 2;
		if (cap < c->carry_len + n)
			n = cap - c->carry_len; /* cut; the token is early */
		if ((q = realloc(c->carry, cap)) == NULL)
			die("out of memory");
		c->carry = q;
		c->carry_cap = cap;
	}
	memcpy(c->carry + c->carry_len, p, n);
	c->carry_len += n;
}

/* One whole message of c: count it, and check it with --verify. */
static void
msg_done(struct sconn *c, const char *p, size_t n)
{
	c->lines++;
	if (opt.verify)
		verify_msg(c, p, n);
}

/* Completes a message whose tail p[0..n) is in the read buffer. */
static void
msg_tail(struct sconn *c, const char *p, size_t n)
{
	if (c->carry_len == 0) {
		msg_done(c, p, n);
		return;
	}
	carry_add(c, p, n);
	msg_done(c, c->carry, c->carry_len);
	c->carry_len = 0;
}

/* ---- framing ---- */

/* Newline framing: counts (or, with --verify, checks) whole lines. */
static void
feed_lf(struct sconn *c, const char *p, size_t n)
{
	const char *end = p + n, *nl;

	if (n == 0)
		return;
	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (opt.verify)
			msg_tail(c, p, (size_t)(nl - p));
		else
			c->lines++;
		p = nl + 1;
	}
	if (opt.verify && p < end)
		carry_add(c, p, (size_t)(end - p));
	c->in_msg = end[-1] != '\n';
}

/* Octet counting: one byte of MSG-LEN or the SP after it (RFC 6587 3.4.1). */
static int
octet_len_byte(struct sconn *c, char ch)
{
	if (ch >= '0' && ch <= '9' && !(c->oct_digits == 0 && ch == '0')) {
		c->oct_len = c->oct_len * 10 + (uint64_t)(ch - '0');
		c->oct_digits++;
		c->in_msg = true;
		return c->oct_len > MAX_MSG ? -1 : 0;
	}
	if (ch != ' ' || c->oct_digits == 0)
		return -1;
	c->oct = OCT_MSG;
	return 0;
}

/*
 * Octet-counting framing "MSG-LEN SP SYSLOG-MSG": LEN digits are read one
 * by one, message bytes are skipped (or, with --verify, checked) in bulk.
 * -1 on a framing error.
 */
static int
feed_octet(struct sconn *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t take;

		if (c->oct == OCT_LEN) {
			if (octet_len_byte(c, *p) == -1)
				return -1;
			p++;
			n--;
			continue;
		}
		take = n < c->oct_len ? n : (size_t)c->oct_len;
		if (opt.verify && take < c->oct_len)
			carry_add(c, p, take);
		else if (opt.verify)
			msg_tail(c, p, take);
		else if (take == c->oct_len)
			c->lines++;
		c->oct_len -= take;
		p += take;
		n -= take;
		if (c->oct_len == 0) {
			c->oct = OCT_LEN;
			c->oct_digits = 0;
			c->in_msg = false;
		}
	}
	return 0;
}

/* ---- connections ---- */

/*
 * Sends the newest "ok N" for c (--ack).  A partly sent ack is finished
 * first, on the next EPOLLOUT if need be, so acks never interleave.
 */
static int
ack_flush(struct sconn *c)
{
	for (;;) {
		ssize_t n;

		if (c->out_off == c->out_len) {
			if (c->acked == c->lines)
				return 0;
			c->out_len = (size_t)snprintf(c->out, sizeof(c->out),
			    "ok %" PRIu64 "\n", c->lines);
			c->out_off = 0;
			c->acked = c->lines;
		}
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		c->out_off += (size_t)n;
	}
}

/* Prints the session summary line; returns true if it had errors. */
static bool
session_report(void)
{
	double secs = (double)(sess.last_ns - sess.first_ns) / 1e9;

	printf("lines=%" PRIu64 " bytes=%" PRIu64 " connections=%" PRIu64
	       " seconds=%.3f lines_per_s=%.0f partial=%" PRIu64
	       " resets=%" PRIu64 " framing_errors=%" PRIu64,
	    sess.lines, sess.bytes, sess.conns, secs,
	    secs > 0 ? (double)sess.lines / secs : 0, sess.partial, sess.resets,
	    sess.framing_errors);
	if (opt.verify)
		printf(" verify_errors=%" PRIu64, sess.verify_errors);
	putchar('\n');
	if (fflush(stdout) == EOF)
		die("stdout: %s", strerror(errno));
	return sess.partial + sess.resets + sess.framing_errors +
	    sess.verify_errors >
	    0;
}

/* The last connection closed: report, and exit with --once. */
static void
session_end(void)
{
	bool bad = session_report();

	if (opt.once)
		exit(bad ? 1 : 0);
	free(sess.seen);
	memset(&sess, 0, sizeof(sess));
	errors_shown = 0;
}

/* Closes c (why: NULL = clean EOF) and frees it; owned by the loop. */
static void
conn_close(struct sconn *c, const char *why)
{
	if (why != NULL)
		conn_warn(c, "%s after %" PRIu64 " lines", why, c->lines);
	else if (c->in_msg) {
		sess.partial++;
		conn_warn(c, "EOF inside a message after %" PRIu64 " lines",
		    c->lines);
	}
	if (close(c->fd) == -1)
		conn_warn(c, "close: %s", strerror(errno));
	free(c->carry);
	free(c);
	if (--sess.open == 0)
		session_end();
}

/* Feeds n bytes of c to its framer and the session counters. */
static int
conn_feed(struct sconn *c, const char *p, size_t n)
{
	uint64_t before = c->lines;
	int rc = 0;

	if (opt.framing == FRAMING_LF)
		feed_lf(c, p, n);
	else
		rc = feed_octet(c, p, n);
	c->bytes += n;
	sess.bytes += n;
	sess.lines += c->lines - before;
	sess.last_ns = now_ns();
	if (sess.first_ns == 0)
		sess.first_ns = sess.last_ns;
	return rc;
}

/*
 * Reads c until EAGAIN (edge-triggered), then acks.  Closes and frees c at
 * EOF or on an error; the caller must not touch c afterwards.
 */
static void
conn_readable(struct sconn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, rbuf, sizeof(rbuf), 0);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == -1) {
			sess.resets++;
			conn_close(c, strerror(errno));
			return;
		}
		if (n == 0) {
			if (opt.ack)
				(void)ack_flush(c); /* best effort */
			conn_close(c, NULL);
			return;
		}
		if (conn_feed(c, rbuf, (size_t)n) == -1) {
			sess.framing_errors++;
			conn_close(c, "octet framing error");
			return;
		}
	}
	if (opt.ack && ack_flush(c) == -1) {
		sess.resets++;
		conn_close(c, strerror(errno));
	}
}

/* Accepts every pending connection on the listening socket lfd. */
static void
accept_all(int lfd, int epfd)
{
	for (;;) {
		struct epoll_event ev = { 0 };
		struct sconn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (fd == -1 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd == -1)
			die("accept4: %s%s", strerror(errno),
			    errno == EMFILE ? " (raise ulimit -n)" : "");
		if ((c = calloc(1, sizeof(*c))) == NULL)
			die("out of memory");
		c->fd = fd;
		c->id = (unsigned)sess.conns++;
		sess.open++;
		ev.events =
		    EPOLLIN | EPOLLRDHUP | EPOLLET | (opt.ack ? EPOLLOUT : 0);
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
			die("epoll_ctl: %s", strerror(errno));
	}
}

/* ---- setup and main loop ---- */

/* Binds and listens on "HOST:PORT" or "[IPV6]:PORT"; returns the fd. */
static int
listen_on(const char *s)
{
	struct addrinfo hints = { 0 }, *res;
	char host[256];
	const char *sep = s[0] == '[' ? strstr(s, "]:") : strrchr(s, ':');
	size_t off = s[0] == '[' ? 1 : 0, hlen;
	int fd, one = 1, rc;

	if (sep == NULL || (size_t)(sep - s) <= off ||
	    (size_t)(sep - s) - off >= sizeof(host))
		die("--listen: expected HOST:PORT or [IPV6]:PORT, got \"%s\"",
		    s);
	hlen = (size_t)(sep - s) - off;
	memcpy(host, s + off, hlen);
	host[hlen] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host, sep + (off ? 2 : 1), &hints, &res)) != 0)
		die("--listen %s: %s", s, gai_strerror(rc));
	fd = socket(
	    res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die("socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		die("setsockopt(SO_REUSEADDR): %s", strerror(errno));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1)
		die("bind %s: %s", s, strerror(errno));
	if (listen(fd, 65535) == -1)
		die("listen: %s", strerror(errno));
	freeaddrinfo(res);
	return fd;
}

/* Raises RLIMIT_NOFILE to the hard limit: one fd per connection. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= rl.rlim_max || rl.rlim_max == RLIM_INFINITY)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		fprintf(stderr, "sink: setrlimit(RLIMIT_NOFILE): %s\n",
		    strerror(errno));
}

static void
on_signal(int sig)
{
	got_signal = sig;
}

static void
setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait sees EINTR */
	if (sigemptyset(&sa.sa_mask) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));
}

static void
usage(FILE *fp)
{
	fputs(
	    "usage: sink [options]\n"
	    "Accepts TCP connections, discards the data, counts lines.\n"
	    "\n"
	    "  --listen HOST:PORT   address, IPv4 or [IPv6] "
	    "(default 127.0.0.1:5140)\n"
	    "  --framing lf|octet   newline, or RFC 6587 octet counting\n"
	    "                       (default lf)\n"
	    "  --verify             check loadgen's id=RUN-CONN-SEQ tokens\n"
	    "                       (seq 1,2,3... per connection)\n"
	    "  --ack                write \"ok N\\n\" after each read "
	    "(N = lines\n"
	    "                       received on that connection)\n"
	    "  --once               exit after the first session\n"
	    "  -h, --help           this text\n"
	    "\n"
	    "When the last open connection closes (or on SIGINT/SIGTERM) one\n"
	    "line goes to stdout:\n"
	    "  lines=N bytes=B connections=K seconds=T lines_per_s=R\n"
	    "  partial=P resets=X framing_errors=F [verify_errors=V]\n"
	    "seconds runs from the first to the last byte received.  With\n"
	    "--once the exit status is 1 if any of the error counts is "
	    "non-zero.\n",
	    fp);
}

static void
parse_opts(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "framing", required_argument, NULL, 'F' },
		{ "verify", no_argument, NULL, 'V' },
		{ "ack", no_argument, NULL, 'a' },
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (ch == 'l')
			opt.listen = optarg;
		else if (ch == 'F' && strcmp(optarg, "lf") == 0)
			opt.framing = FRAMING_LF;
		else if (ch == 'F' && strcmp(optarg, "octet") == 0)
			opt.framing = FRAMING_OCTET;
		else if (ch == 'V')
			opt.verify = true;
		else if (ch == 'a')
			opt.ack = true;
		else if (ch == 'o')
			opt.once = true;
		else if (ch == 'h') {
			usage(stdout);
			exit(0);
		} else {
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc)
		die("unexpected argument \"%s\"", argv[optind]);
}

/* Runs the epoll loop until a signal (or --once ends it). */
static void
event_loop(int lfd, int epfd)
{
	struct epoll_event evs[MAX_EVENTS];

	while (!got_signal) {
		int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;
			uint32_t ev = evs[i].events;

			if (c == NULL)
				accept_all(lfd, epfd);
			else if (ev &
			    (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_readable(c);
			else if ((ev & EPOLLOUT) && opt.ack &&
			    ack_flush(c) == -1) {
				sess.resets++;
				conn_close(c, strerror(errno));
			}
		}
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event ev = { 0 };
	int lfd, epfd;

	parse_opts(argc, argv);
	setup_signals();
	raise_nofile();
	lfd = listen_on(opt.listen);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) == -1)
		die("epoll_ctl: %s", strerror(errno));
	fprintf(stderr, "sink: listening on %s (framing %s)\n", opt.listen,
	    opt.framing == FRAMING_LF ? "lf" : "octet");
	event_loop(lfd, epfd);
	if (sess.conns > 0)
		return session_report() ? 1 : 0;
	return 0;
}
