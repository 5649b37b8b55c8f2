/*
 * parse_bench: parser_parse() throughput on one core, per format.
 *
 * For each format (plain, RFC 3164, RFC 5424 with structured data, JSON,
 * logfmt, GELF) generates N realistic lines of about 120 bytes in memory
 * (varying numbers, so nothing is trivially predictable), parses them all
 * a few times and prints the best run as lines/s and MB/s.
 *
 * usage: parse_bench [lines [format]]   (default 1000000, all formats)
 *
 * One format alone under callgrind gives its instructions per line:
 * valgrind --tool=callgrind --toggle-collect=run parse_bench 20000 gelf
 * (Ir / (lines * 5 runs)).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logsink/buf.h"
#include "logsink/parser.h"
#include "logsink/record.h"

#define RUNS 5

/* N generated lines: bytes back to back, line i at off[i]..off[i+1]. */
struct lines {
	char *bytes;
	size_t *off;
	size_t n;
};

typedef int (*gen_fn)(char *, size_t, unsigned);

/* Application log text without any header: plain. */
static int
gen_plain(char *d, size_t cap, unsigned i)
{
	return snprintf(d, cap,
	    "2026-11-21 10:%02u:%02u.%03u worker-%u INFO GET /api/v1/items/%u "
	    "status=200 bytes=%u dur_ms=%u user=u%u trace=%08x",
	    i / 60 % 60, i % 60, i % 1000, i % 16, i * 7919 % 100000,
	    i * 31 % 65536, i % 900, i % 5000, i * 2654435761u);
}

/* logger --rfc3164 / sshd style. */
static int
gen_rfc3164(char *d, size_t cap, unsigned i)
{
	return snprintf(d, cap,
	    "<38>Nov %2u %02u:%02u:%02u host%03u sshd[%u]: Accepted publickey "
	    "for user%u from 10.%u.%u.%u port %u ssh2: ED25519 SHA256:%08x",
	    i % 28 + 1, i / 3600 % 24, i / 60 % 60, i % 60, i % 500,
	    1000 + i % 30000, i % 100, i % 256, i / 256 % 256, i * 7 % 256,
	    1024 + i % 60000, i * 2654435761u);
}

/* logger --rfc5424 --sd-id style, with two SD elements. */
static int
gen_rfc5424(char *d, size_t cap, unsigned i)
{
	return snprintf(d, cap,
	    "<%u>1 2026-11-21T10:%02u:%02u.%06u+01:00 host%03u app%u %u ID%u "
	    "[meta@32473 seq=\"%u\" zone=\"eu-1\"] order %u shipped",
	    8 + i % 8, i / 60 % 60, i % 60, i * 37 % 1000000, i % 500, i % 10,
	    1000 + i % 30000, i % 50, i, i * 13 % 100000);
}

/* Go zap style JSON line. */
static int
gen_json(char *d, size_t cap, unsigned i)
{
	return snprintf(d, cap,
	    "{\"level\":\"info\",\"ts\":1732186800.%03u,\"caller\":"
	    "\"api/h.go:%u\",\"msg\":\"request done\",\"host\":\"web%u\","
	    "\"status\":200,\"dur_ms\":%u}",
	    i % 1000, 10 + i % 300, i % 50, i % 900);
}

/* Go slog TextHandler style logfmt line. */
static int
gen_logfmt(char *d, size_t cap, unsigned i)
{
	return snprintf(d, cap,
	    "time=2026-11-21T10:%02u:%02u.%03uZ level=INFO msg=\"request "
	    "done\" host=web%u path=/api/v1/items/%u status=200 dur=%ums",
	    i / 60 % 60, i % 60, i % 1000, i % 50, i * 7919 % 100000, i % 900);
}

/* gelf-pro style GELF payload (the NUL already taken by the framer). */
static int
gen_gelf(char *d, size_t cap, unsigned i)
{
	return snprintf(d, cap,
	    "{\"version\":\"1.1\",\"short_message\":\"request done\","
	    "\"timestamp\":1732186800.%03u,\"host\":\"web%u\",\"level\":6,"
	    "\"_status\":200,\"_dur_ms\":%u}",
	    i % 1000, i % 50, i % 900);
}

/* Generates n lines with gen; exits on OOM (a benchmark, not the daemon). */
static void
generate(struct lines *l, size_t n, gen_fn gen)
{
	size_t cap = n * 160 + 256, len = 0, i;
	int w;

	l->bytes = malloc(cap);
	l->off = malloc((n + 1) * sizeof(*l->off));
	if (l->bytes == NULL || l->off == NULL) {
		perror("malloc");
		exit(1);
	}
	for (i = 0; i < n; i++) {
		l->off[i] = len;
		w = gen(l->bytes + len, cap - len, (unsigned)i);
		if (w < 0 || (size_t)w >= cap - len) {
			fprintf(stderr, "line %zu too long\n", i);
			exit(1);
		}
		len += (size_t)w;
	}
	l->off[n] = len;
	l->n = n;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Parses every line once; returns the elapsed seconds.  *check sums a
 * few columns so the work cannot be optimised away and so a format that
 * silently fell back to plain shows up in the output.
 */
static double
run(const struct lines *l, struct buf *sc, uint64_t *check)
{
	struct record r = { 0 };
	double t0 = now_s();
	size_t i;

	r.received_us = INT64_C(1795262400000000); /* 2026-11-21 12:00Z */
	for (i = 0; i < l->n; i++) {
		if (parser_parse(&r, l->bytes + l->off[i],
			l->off[i + 1] - l->off[i], PARSER_AUTO, sc) == -1) {
			fprintf(stderr, "parser_parse: out of memory\n");
			exit(1);
		}
		*check += r.message.len + (r.fields.ptr != NULL) +
		    (uint64_t)(r.severity + 1) + r.has_event_time;
	}
	return now_s() - t0;
}

/* Benchmarks one format and prints its line. */
static void
bench(const char *name, gen_fn gen, size_t n)
{
	struct lines l;
	struct buf sc = { 0 };
	struct record r = { 0 };
	uint64_t check = 0;
	double best = 1e30, t;
	int i;

	generate(&l, n, gen);
	if (parser_parse(&r, l.bytes, l.off[1], PARSER_AUTO, &sc) == -1)
		exit(1);
	for (i = 0; i < RUNS; i++)
		if ((t = run(&l, &sc, &check)) < best)
			best = t;
	printf("%-8s %10.0f lines/s %8.1f MB/s  avg %5.1f B/line  "
	       "(line 0: sev=%d time=%d fields=%d; check %llu)\n",
	    name, (double)n / best, (double)l.off[n] / best / 1e6,
	    (double)l.off[n] / (double)n, r.severity, r.has_event_time,
	    r.fields.ptr != NULL, (unsigned long long)check);
	buf_free(&sc);
	free(l.bytes);
	free(l.off);
}

int
main(int argc, char *argv[])
{
	static const struct {
		const char *name;
		gen_fn gen;
	} formats[] = { { "plain", gen_plain }, { "rfc3164", gen_rfc3164 },
		{ "rfc5424", gen_rfc5424 }, { "json", gen_json },
		{ "logfmt", gen_logfmt }, { "gelf", gen_gelf } };
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000, i;

	if (n == 0) {
		fprintf(stderr, "usage: parse_bench [lines]\n");
		return 2;
	}
	if (setenv("TZ", "UTC", 1) == -1)
		return 1;
	tzset();
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (argc < 3 || strcmp(argv[2], formats[i].name) == 0)
			bench(formats[i].name, formats[i].gen, n);
	return 0;
}
