/*
 * udpgen: sends syslog datagrams (RFC 5426) at a given rate, for
 * bench/udp.sh.
 *
 *   udpgen --target HOST:PORT [--count N] [--rate R] [--size BYTES]
 *          [--tag TAG]
 *
 * Each datagram is an RFC 3164 line "<134>Dec  1 10:00:00 bench udpgen:
 * TAG seq=NNNNNNNNNN x..." padded to --size bytes, its sequence number
 * unique, so that the stored rows show what was lost or duplicated.
 * --rate 0 (the default) sends as fast as sendmmsg() goes; otherwise the
 * datagrams leave in bursts of rate/1000 every millisecond, paced on the
 * monotonic clock (a late tick sends its share at once, so the mean rate
 * holds).  Prints "sent N in S s: R datagrams/s" on stdout.
 *
 * Uses no logsink module.  Over loopback the kernel never drops on the
 * sending side: a full receive buffer drops at the receiver, counted in
 * its socket's drops (what logsinkd reports).
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH    64
#define MAX_SIZE 65507

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: udpgen --target HOST:PORT [--count N] [--rate R] "
	    "[--size BYTES] [--tag TAG]\n");
	exit(2);
}

/* Counts with k/M suffixes (powers of ten, as loadgen). */
static long long
parse_count(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (end == s || v < 0)
		usage();
	if (*end == 'k' || *end == 'K')
		v *= 1000, end++;
	else if (*end == 'M')
		v *= 1000000, end++;
	if (*end != '\0')
		usage();
	return v;
}

static int
open_target(const char *target)
{
	struct addrinfo hints, *res;
	char host[256];
	const char *colon = strrchr(target, ':');
	int fd, rc;

	if (colon == NULL || (size_t)(colon - target) >= sizeof(host))
		usage();
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_DGRAM;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		fprintf(stderr, "udpgen: %s: %s\n", target, gai_strerror(rc));
		exit(1);
	}
	fd = socket(res->ai_family, SOCK_DGRAM, 0);
	if (fd == -1 || connect(fd, res->ai_addr, res->ai_addrlen) == -1) {
		perror("udpgen: socket/connect");
		exit(1);
	}
	freeaddrinfo(res);
	return fd;
}

/* Sends datagrams seq .. seq+n-1 (n <= BATCH); returns how many left. */
static int
send_batch(
    int fd, char *bufs, size_t size, const char *tag, long long seq, int n)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	int i, len, done = 0, rc;

	memset(m, 0, sizeof(m));
	for (i = 0; i < n; i++) {
		char *b = bufs + (size_t)i * size;

		len = snprintf(b, size + 1,
		    "<134>Dec  1 10:00:00 bench udpgen: %s seq=%010lld ", tag,
		    seq + i);
		if ((size_t)len < size)
			memset(b + len, 'x', size - (size_t)len);
		iov[i].iov_base = b;
		iov[i].iov_len = (size_t)len < size ? size : (size_t)len;
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	while (done < n) {
		rc = sendmmsg(fd, m + done, (unsigned)(n - done), 0);
		if (rc == -1) {
			if (errno == ECONNREFUSED || errno == EINTR ||
			    errno == ENOBUFS)
				continue; /* an ICMP error of an earlier one */
			perror("udpgen: sendmmsg");
			exit(1);
		}
		done += rc;
	}
	return done;
}

int
main(int argc, char **argv)
{
	const char *target = NULL, *tag = "udp";
	long long count = 100000, rate = 0, sent = 0, due;
	size_t size = 120;
	double t0, t, elapsed;
	char *bufs;
	int fd, i, n;

	for (i = 1; i < argc; i++) {
		if (i + 1 == argc)
			usage();
		if (strcmp(argv[i], "--target") == 0)
			target = argv[++i];
		else if (strcmp(argv[i], "--count") == 0)
			count = parse_count(argv[++i]);
		else if (strcmp(argv[i], "--rate") == 0)
			rate = parse_count(argv[++i]);
		else if (strcmp(argv[i], "--size") == 0)
			size = (size_t)parse_count(argv[++i]);
		else if (strcmp(argv[i], "--tag") == 0)
			tag = argv[++i];
		else
			usage();
	}
	if (target == NULL || size < 60 || size > MAX_SIZE)
		usage();
	fd = open_target(target);
	if ((bufs = malloc((size_t)BATCH * (size + 1))) == NULL) {
		perror("udpgen: malloc");
		return 1;
	}
	t0 = now_s();
	while (sent < count) {
		n = BATCH;
		if (rate > 0) {
			t = now_s() - t0;
			due = (long long)(t * (double)rate) + rate / 1000 + 1;
			if (due > count)
				due = count;
			if (due <= sent) {
				struct timespec ts = { 0, 200000 };

				nanosleep(&ts, NULL);
				continue;
			}
			if (due - sent < n)
				n = (int)(due - sent);
		}
		if (count - sent < n)
			n = (int)(count - sent);
		sent += send_batch(fd, bufs, size, tag, sent, n);
	}
	elapsed = now_s() - t0;
	printf("sent %lld in %.3f s: %.0f datagrams/s\n", sent, elapsed,
	    elapsed > 0 ? (double)sent / elapsed : 0.0);
	free(bufs);
	close(fd);
	return 0;
}
