/*
 * buf: a growable byte buffer.  The hot path reuses buffers (buf_reset keeps
 * the allocation), so steady-state operation allocates nothing per line.
 */
#ifndef LOGSINK_BUF_H
#define LOGSINK_BUF_H

#include <stddef.h>
#include <string.h>

/* Owned by whoever embeds it; freed by buf_free(). */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Makes room for at least n more bytes; -1 (errno ENOMEM) on failure. */
int buf_reserve(struct buf *b, size_t n) __attribute__((warn_unused_result));
void buf_free(struct buf *b);

static inline void
buf_reset(struct buf *b)
{
	b->len = 0;
}

/* Appends n bytes; the caller must have reserved room. */
static inline void
buf_put(struct buf *b, const void *p, size_t n)
{
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) == -1)
		return -1;
	buf_put(b, p, n);
	return 0;
}

#endif
