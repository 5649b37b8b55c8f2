/*
 * batch: a batch's life cycle, its acknowledgement runs and what a writer
 * reads of it (see include/logsink/batch.h and src/batch_int.h).
 */
#include <stdlib.h>

#include "batch_int.h"

struct batch *
batch_new(size_t rows_bytes)
{
	struct batch *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if (rows_bytes > 0 && buf_reserve(&b->rows, rows_bytes) == -1) {
		free(b);
		return NULL;
	}
	return b;
}

void
batch_free(struct batch *b, batch_ack_cb drop)
{
	size_t i;

	for (i = 0; i < b->nacks; i++)
		drop(b->acks[i].ref, b->acks[i].first, b->acks[i].n);
	free(b->acks);
	free(b->srcs);
	free(b->pending);
	buf_free(&b->rows);
	free(b);
}

int
batch_push_ack(struct batch *b, const struct batch_ack *run)
{
	struct batch_ack *a;
	size_t cap;

	if (b->nacks == b->capacks) {
		cap = b->capacks ? b->capacks * 2 : 8;
		if ((a = reallocarray(b->acks, cap, sizeof(*a))) == NULL)
			return -1;
		b->acks = a;
		b->capacks = cap;
	}
	b->acks[b->nacks++] = *run;
	return 0;
}

int
batch_add_src(struct batch *b, uint64_t src, size_t bytes)
{
	struct batch_src *s;
	size_t cap;

	if (b->nsrcs > 0 && b->srcs[b->nsrcs - 1].src == src) {
		b->srcs[b->nsrcs - 1].bytes += bytes;
		return 0;
	}
	if (b->nsrcs == b->capsrcs) {
		cap = b->capsrcs ? b->capsrcs * 2 : 8;
		if ((s = reallocarray(b->srcs, cap, sizeof(*s))) == NULL)
			return -1;
		b->srcs = s;
		b->capsrcs = cap;
	}
	b->srcs[b->nsrcs].src = src;
	b->srcs[b->nsrcs].bytes = bytes;
	b->nsrcs++;
	return 0;
}

const char *
batch_rows(const struct batch *b)
{
	return b->rows.data;
}

size_t
batch_rows_len(const struct batch *b)
{
	return b->rows.len;
}

uint32_t
batch_lines(const struct batch *b)
{
	return b->lines;
}

bool
batch_is_split(const struct batch *b)
{
	return b->npending > 0;
}
