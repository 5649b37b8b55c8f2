/*
 * httpgen: an HTTP/1.1 load generator for logsinkd's proto=http
 * endpoints (/ingest, /upload, /v1/logs, ...).  C keep-alive connections,
 * one thread each, send POST requests one after the other (each waits
 * for its answer, which logsinkd writes only after commit) and measure
 * the time from a request's first byte sent to its answer.
 *
 * Bodies: generated NDJSON (the JSON lines of loadgen --format json, each
 * with a unique id=RUN-CONN-SEQ), or --body FILE: the file is one body
 * sent again and again, or several bodies separated by form feeds (\f on
 * a line of its own) sent in turn; --records-per-body says how many
 * records one body holds (for the counts).  --gzip compresses each body
 * (Content-Encoding: gzip).  --rate paces the records of all
 * connections together.
 *
 * Output, one line on stdout: requests= records= errors= connections=
 * seconds= records_per_s= p50_ms= p99_ms= max_ms=; exit 0 when every
 * answer was 200, 1 otherwise (the first bad answer is printed).
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

struct opts {
	char host[256], port[16];
	const char *path, *ctype, *body_file, *token, *run_id;
	bool gzip;
	long records_per_body;
	long connections;
	long long records;
	double rate; /* records/s, all connections; 0: unpaced */
	long size;
};

static struct opts opt = { "127.0.0.1", "8080", "/ingest",
	"application/x-ndjson", NULL, NULL, "h1", false, 100, 4, 100000, 0,
	120 };

/* Bodies from --body FILE (shared, read-only). */
static char **file_bodies;
static size_t *file_lens;
static size_t nfile_bodies;

struct worker {
	pthread_t thread;
	int id;
	long long requests, records, errors;
	double *lat_ms;
	size_t nlat, lat_cap;
	char first_error[256];
	double first_send, last_answer;
};

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "httpgen: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long
parse_count(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		die("bad count '%s'", s);
	if (*end == 'k' || *end == 'K')
		v *= 1e3;
	else if (*end == 'M')
		v *= 1e6;
	else if (*end == 'G')
		v *= 1e9;
	else if (*end != '\0')
		die("bad count '%s'", s);
	return (long long)v;
}

/* Reads --body FILE: bodies separated by "\n\f\n". */
static void
load_bodies(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *all, *p, *sep;
	long n;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0)
		die("%s: %s", path, strerror(errno));
	rewind(fp);
	if ((all = malloc((size_t)n + 1)) == NULL ||
	    fread(all, 1, (size_t)n, fp) != (size_t)n)
		die("%s: cannot read", path);
	all[n] = '\0';
	fclose(fp);
	for (p = all; p != NULL; p = sep) {
		/* memmem, not strstr: protobuf bodies hold NUL bytes */
		sep = memmem(p, (size_t)(all + n - p), "\n\f\n", 3);
		file_bodies = realloc(
		    file_bodies, (nfile_bodies + 1) * sizeof(*file_bodies));
		file_lens =
		    realloc(file_lens, (nfile_bodies + 1) * sizeof(*file_lens));
		if (file_bodies == NULL || file_lens == NULL)
			die("out of memory");
		file_bodies[nfile_bodies] = p;
		file_lens[nfile_bodies] =
		    sep != NULL ? (size_t)(sep - p) + 1 : (size_t)(all + n - p);
		nfile_bodies++;
		if (sep != NULL)
			sep += 3;
	}
}

/* The next generated NDJSON body of w: records_per_body lines. */
static size_t
gen_body(struct worker *w, char **buf, size_t *cap, long long seq0)
{
	size_t len = 0, need;
	long i;
	int n, pad;
	static const char fill[] = "abcdefghijklmnopqrstuvwxyz0123456789"
				   "abcdefghijklmnopqrstuvwxyz0123456789"
				   "abcdefghijklmnopqrstuvwxyz0123456789"
				   "abcdefghijklmnopqrstuvwxyz0123456789";

	for (i = 0; i < opt.records_per_body; i++) {
		need = len + (size_t)opt.size + 512;
		if (need > *cap) {
			*cap = need * 2;
			if ((*buf = realloc(*buf, *cap)) == NULL)
				die("out of memory");
		}
		/* loadgen --format json's line, padded to about --size. */
		pad = (int)opt.size - 110;
		if (pad < 0)
			pad = 0;
		if (pad > (int)sizeof(fill) - 1)
			pad = (int)sizeof(fill) - 1;
		n = snprintf(*buf + len, *cap - len,
		    "{\"time\":\"2026-12-01T10:00:00.000Z\",\"level\":\"info\","
		    "\"host\":\"benchhost\",\"msg\":\"httpgen id=%s-%d-%010lld "
		    "%.*s\"}\n",
		    opt.run_id, w->id, seq0 + i, pad, fill);
		len += (size_t)n;
	}
	return len;
}

/* gzip of in[0..len) into *out. */
static size_t
gzip_body(const char *in, size_t len, char **out, size_t *cap)
{
	z_stream z;
	size_t bound;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		die("deflateInit2");
	bound = deflateBound(&z, len) + 64;
	if (bound > *cap) {
		*cap = bound;
		if ((*out = realloc(*out, *cap)) == NULL)
			die("out of memory");
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)*out;
	z.avail_out = (uInt)*cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		die("deflate");
	len = z.total_out;
	deflateEnd(&z);
	return len;
}

static int
dial(void)
{
	struct addrinfo hints = { 0 }, *res;
	int fd, one = 1, rc;

	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(opt.host, opt.port, &hints, &res)) != 0)
		die("%s:%s: %s", opt.host, opt.port, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd == -1 || connect(fd, res->ai_addr, res->ai_addrlen) == -1)
		die("connect %s:%s: %s", opt.host, opt.port, strerror(errno));
	freeaddrinfo(res);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void
send_all(int fd, const char *p, size_t n)
{
	ssize_t k;

	while (n > 0) {
		if ((k = send(fd, p, n, MSG_NOSIGNAL)) <= 0) {
			if (k == -1 && errno == EINTR)
				continue;
			die("send: %s", k == 0 ? "closed" : strerror(errno));
		}
		p += k;
		n -= (size_t)k;
	}
}

/*
 * Reads one answer: its status (0 when the connection ended).  The
 * bytes after it stay in in[0..*have).
 */
static int
read_answer(int fd, char *in, size_t cap, size_t *have)
{
	char *end, *cl;
	size_t head, total, blen = 0;
	ssize_t k;
	int status;

	for (;;) {
		in[*have] = '\0';
		if ((end = strstr(in, "\r\n\r\n")) != NULL)
			break;
		if (*have + 1 >= cap)
			return 0;
		if ((k = recv(fd, in + *have, cap - 1 - *have, 0)) <= 0)
			return 0;
		*have += (size_t)k;
	}
	head = (size_t)(end - in) + 4;
	if (sscanf(in, "HTTP/1.%*d %d", &status) != 1)
		return 0;
	if ((cl = strcasestr(in, "\r\ncontent-length:")) != NULL && cl < end)
		blen = strtoul(cl + 17, NULL, 10);
	total = head + blen;
	while (*have < total) {
		if (total >= cap)
			return 0;
		if ((k = recv(fd, in + *have, cap - 1 - *have, 0)) <= 0)
			return 0;
		*have += (size_t)k;
	}
	memmove(in, in + total, *have - total);
	*have -= total;
	return status;
}

static void
lat_add(struct worker *w, double ms)
{
	if (w->nlat == w->lat_cap) {
		w->lat_cap = w->lat_cap ? w->lat_cap * 2 : 4096;
		if ((w->lat_ms = realloc(
			 w->lat_ms, w->lat_cap * sizeof(double))) == NULL)
			die("out of memory");
	}
	w->lat_ms[w->nlat++] = ms;
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	long long share = opt.records / opt.connections, seq = 0;
	char *body = NULL, *gz = NULL, head[1024], in[65536];
	size_t bcap = 0, gcap = 0, blen, have = 0, hlen;
	const char *out;
	double t0, t1, next = 0, interval = 0;
	int fd = dial(), status;

	if (w->id < opt.records % opt.connections)
		share++;
	if (opt.rate > 0)
		interval = (double)opt.records_per_body *
		    (double)opt.connections / opt.rate;
	next = now_s();
	while (seq < share) {
		if (nfile_bodies > 0) {
			out = file_bodies[w->requests % nfile_bodies];
			blen = file_lens[w->requests % nfile_bodies];
		} else {
			blen = gen_body(w, &body, &bcap, seq);
			out = body;
		}
		if (opt.gzip) {
			blen = gzip_body(out, blen, &gz, &gcap);
			out = gz;
		}
		hlen = (size_t)snprintf(head, sizeof(head),
		    "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
		    "Content-Length: %zu\r\n%s%s%s%s\r\n",
		    opt.path, opt.host, opt.ctype, blen,
		    opt.gzip ? "Content-Encoding: gzip\r\n" : "",
		    opt.token ? "Authorization: Bearer " : "",
		    opt.token ? opt.token : "", opt.token ? "\r\n" : "");
		if (interval > 0) {
			t0 = now_s();
			if (next > t0)
				usleep((useconds_t)((next - t0) * 1e6));
			next += interval;
		}
		t0 = now_s();
		if (w->requests == 0)
			w->first_send = t0;
		send_all(fd, head, hlen);
		send_all(fd, out, blen);
		status = read_answer(fd, in, sizeof(in), &have);
		t1 = now_s();
		w->last_answer = t1;
		w->requests++;
		seq += opt.records_per_body;
		if (status == 200) {
			w->records += opt.records_per_body;
			lat_add(w, (t1 - t0) * 1000);
			continue;
		}
		w->errors++;
		if (w->first_error[0] == '\0')
			snprintf(w->first_error, sizeof(w->first_error),
			    "c%d: request %lld: status %d", w->id, w->requests,
			    status);
		if (status == 0) {
			close(fd);
			fd = dial();
			have = 0;
		}
	}
	close(fd);
	free(body);
	free(gz);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: httpgen [options]\n"
	    "  --connect HOST:PORT    logsinkd's proto=http listener "
	    "(127.0.0.1:8080)\n"
	    "  --path PATH            /ingest\n"
	    "  --content-type T       application/x-ndjson\n"
	    "  --gzip                 Content-Encoding: gzip\n"
	    "  --body FILE            the body (or bodies separated by a form "
	    "feed line);\n"
	    "                         default: generated NDJSON lines\n"
	    "  --records-per-body N   records in one body (100)\n"
	    "  --records N            records in all (100k; k/M/G)\n"
	    "  --connections C        keep-alive connections, one thread "
	    "each (4)\n"
	    "  --rate R               records/s of all connections (0: "
	    "unpaced)\n"
	    "  --size B               generated line size (120)\n"
	    "  --token T              Authorization: Bearer T\n"
	    "  --run-id ID            in each generated line's id= (h1)\n");
}

static void
parse_args(int argc, char **argv)
{
	static const struct option longs[] = { { "connect", 1, NULL, 'c' },
		{ "path", 1, NULL, 'p' }, { "content-type", 1, NULL, 't' },
		{ "gzip", 0, NULL, 'z' }, { "body", 1, NULL, 'b' },
		{ "records-per-body", 1, NULL, 'n' },
		{ "records", 1, NULL, 'N' }, { "connections", 1, NULL, 'C' },
		{ "rate", 1, NULL, 'r' }, { "size", 1, NULL, 's' },
		{ "token", 1, NULL, 'T' }, { "run-id", 1, NULL, 'i' },
		{ "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	const char *colon;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if ((colon = strrchr(optarg, ':')) == NULL ||
			    (size_t)(colon - optarg) >= sizeof(opt.host))
				die("--connect HOST:PORT");
			snprintf(opt.host, sizeof(opt.host), "%.*s",
			    (int)(colon - optarg), optarg);
			snprintf(opt.port, sizeof(opt.port), "%s", colon + 1);
			break;
		case 'p':
			opt.path = optarg;
			break;
		case 't':
			opt.ctype = optarg;
			break;
		case 'z':
			opt.gzip = true;
			break;
		case 'b':
			opt.body_file = optarg;
			break;
		case 'n':
			opt.records_per_body = (long)parse_count(optarg);
			break;
		case 'N':
			opt.records = parse_count(optarg);
			break;
		case 'C':
			opt.connections = (long)parse_count(optarg);
			break;
		case 'r':
			opt.rate = (double)parse_count(optarg);
			break;
		case 's':
			opt.size = (long)parse_count(optarg);
			break;
		case 'T':
			opt.token = optarg;
			break;
		case 'i':
			opt.run_id = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (opt.records_per_body < 1 || opt.connections < 1 || opt.records < 1)
		die("--records-per-body, --connections, --records: at least 1");
}

int
main(int argc, char **argv)
{
	struct worker *ws;
	long long req = 0, rec = 0, err = 0;
	double *all, first = 0, last = 0, secs;
	size_t n = 0, i, k;
	long c;

	parse_args(argc, argv);
	if (opt.body_file != NULL)
		load_bodies(opt.body_file);
	if ((ws = calloc((size_t)opt.connections, sizeof(*ws))) == NULL)
		die("out of memory");
	for (c = 0; c < opt.connections; c++) {
		ws[c].id = (int)c;
		if (pthread_create(&ws[c].thread, NULL, worker_run, &ws[c]) !=
		    0)
			die("pthread_create");
	}
	for (c = 0; c < opt.connections; c++) {
		pthread_join(ws[c].thread, NULL);
		req += ws[c].requests;
		rec += ws[c].records;
		err += ws[c].errors;
		n += ws[c].nlat;
		if (first == 0 || ws[c].first_send < first)
			first = ws[c].first_send;
		if (ws[c].last_answer > last)
			last = ws[c].last_answer;
		if (ws[c].first_error[0] != '\0')
			fprintf(stderr, "httpgen: %s\n", ws[c].first_error);
	}
	if ((all = malloc((n + 1) * sizeof(*all))) == NULL)
		die("out of memory");
	for (c = 0, k = 0; c < opt.connections; c++)
		for (i = 0; i < ws[c].nlat; i++)
			all[k++] = ws[c].lat_ms[i];
	qsort(all, n, sizeof(*all), cmp_double);
	secs = last > first ? last - first : 0;
	printf("requests=%lld records=%lld errors=%lld connections=%ld "
	       "seconds=%.3f records_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f\n",
	    req, rec, err, opt.connections, secs,
	    secs > 0 ? (double)rec / secs : 0, n ? all[n / 2] : 0,
	    n ? all[(size_t)((double)n * 0.99)] : 0, n ? all[n - 1] : 0);
	return err > 0;
}
