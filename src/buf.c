/*
 * buf: growable byte buffer (see include/logsink/buf.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "logsink/buf.h"

int
buf_reserve(struct buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len) {
		errno = ENOMEM;
		return -1;
	}
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
