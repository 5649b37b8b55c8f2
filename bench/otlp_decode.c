/*
 * otlp_decode: the OTLP body decoders alone (body_otlp.c), without the
 * daemon: decodes a body file (protobuf, or OTLP/JSON if its name ends in
 * .json) ROUNDS times, as the HTTP glue would, and prints the records/s of
 * decoding and mapping, the CPU per record and the peak resident memory
 * (getrusage: the body, one decoded copy and the program).
 *
 *   build/bench/otlp_decode bench/otlp/logs-100.pb 2000
 */
#include <sys/resource.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logsink/body.h"

static bool
count_record(void *arg, struct record *rec)
{
	size_t *n = arg;

	(*n) += rec->message.len > 0 || rec->fields.len > 0;
	return true;
}

static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct body_limits lim = { 64 * 1024, (size_t)1 << 30, 64 };
	const struct body_decoder *dec = &body_otlp_proto;
	struct rusage ru;
	size_t len, need, records = 0;
	long rounds, i;
	double t0, t1;
	char *body;
	FILE *fp;

	if (argc != 3 || (rounds = atol(argv[2])) < 1) {
		fprintf(stderr, "usage: otlp_decode FILE ROUNDS\n");
		return 2;
	}
	if ((fp = fopen(argv[1], "rb")) == NULL || fseek(fp, 0, SEEK_END) != 0)
		return perror(argv[1]), 1;
	len = (size_t)ftell(fp);
	rewind(fp);
	if ((body = malloc(len + 1)) == NULL || fread(body, 1, len, fp) != len)
		return perror(argv[1]), 1;
	fclose(fp);
	if (len >= 5 && strcmp(argv[1] + strlen(argv[1]) - 5, ".json") == 0)
		dec = &body_otlp_json;
	t0 = cpu_s();
	for (i = 0; i < rounds; i++) {
		void *st = dec->new (&lim);

		if (st == NULL)
			return fprintf(stderr, "out of memory\n"), 1;
		(void)dec->feed(
		    st, body, len, true, &need, count_record, &records);
		if (dec->error(st) != NULL)
			return fprintf(stderr, "%s\n", dec->error(st)), 1;
		dec->free(st);
	}
	t1 = cpu_s();
	getrusage(RUSAGE_SELF, &ru);
	printf("decoder=%s body_bytes=%zu records=%zu records_per_s=%.0f "
	       "cpu_us_per_record=%.2f maxrss_kib=%ld\n",
	    dec->name, len, records, (double)records / (t1 - t0),
	    (t1 - t0) * 1e6 / (double)records, ru.ru_maxrss);
	free(body);
	return 0;
}
