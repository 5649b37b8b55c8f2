/*
 * proxy_bench: proxy_parse() cost per header on one core, for the forms
 * haproxy sends (v1 TCP4, v1 TCP6, v2 inet, v2 inet6 with TLVs, v2 LOCAL).
 * A PROXY header is decoded once per connection, not per line: this is
 * what a connection on a proxy= listener adds before its first line.
 * Prints the best of a few runs as ns/header; under
 * `valgrind --tool=callgrind` the instructions per header are
 * Ir(proxy_parse) / (forms * N).
 *
 * usage: proxy_bench [headers]      (default 1000000 per form)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logsink/proxy.h"

#define RUNS 5

struct form {
	const char *name;
	const char *hdr;
	size_t len;
};

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define F(n, s)                                                                \
	{                                                                      \
		n, s, sizeof(s) - 1                                            \
	}

static const struct form forms[] = {
	F("v1-tcp4", "PROXY TCP4 192.0.2.7 198.51.100.1 56324 5140\r\n"),
	F("v1-tcp6", "PROXY TCP6 2001:db8::1:2 2001:db8::2 56324 5140\r\n"),
	F("v2-inet",
	    SIG "\x21\x11\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01"
		"\xdc\x04\x14\x14"),
	F("v2-inet6-tlv",
	    SIG "\x21\x21\x00\x2b"
		"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\x01\0\x02"
		"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
		"\xdc\x04\x14\x14"
		"\x01\x00\x04h2ab"),
	F("v2-local", SIG "\x20\x00\x00\x00"),
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct proxy_header h;
	enum proxy_failure why;
	char err[256];
	double best, t;
	size_t f;
	long i;
	int run;
	uint64_t sum = 0;

	if (n <= 0) {
		fprintf(stderr, "usage: proxy_bench [headers]\n");
		return 2;
	}
	for (f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
		best = 1e30;
		for (run = 0; run < RUNS; run++) {
			t = now_s();
			for (i = 0; i < n; i++) {
				if (proxy_parse(forms[f].hdr, forms[f].len,
					1024, &h, &why, err, sizeof(err)) != 1)
					return 1;
				sum += h.len;
			}
			t = now_s() - t;
			if (t < best)
				best = t;
		}
		printf("%-14s %7.1f ns/header\n", forms[f].name,
		    best * 1e9 / (double)n);
	}
	return sum == 0;
}
