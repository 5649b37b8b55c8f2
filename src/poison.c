/*
 * poison: batch bisection and dead-letter rows (see include/logsink/poison.h).
 */
#include <stdlib.h>
#include <string.h>

#include "logsink/copyenc.h"
#include "logsink/poison.h"
#include "batch_int.h"

bool
poison_is_data_error(const char *sqlstate)
{
	return strncmp(sqlstate, "22", 2) == 0 ||
	    strncmp(sqlstate, "23", 2) == 0 ||
	    strncmp(sqlstate, "P0", 2) == 0 || strncmp(sqlstate, "54", 2) == 0;
}

void
poison_current(const struct batch *b, struct batch_range *r)
{
	if (b->npending > 0) {
		*r = b->pending[b->npending - 1];
		return;
	}
	r->off = 0;
	r->len = b->rows.len;
	r->lines = b->lines;
}

static int
push(struct batch *b, struct batch_range r)
{
	struct batch_range *t;
	size_t cap;

	if (b->npending == b->cappending) {
		cap = b->cappending ? b->cappending * 2 : 16;
		if ((t = reallocarray(b->pending, cap, sizeof(*t))) == NULL)
			return -1;
		b->pending = t;
		b->cappending = cap;
	}
	b->pending[b->npending++] = r;
	return 0;
}

int
poison_split(struct batch *b)
{
	struct batch_range r, first, second;
	const char *p, *end;
	uint32_t n;
	size_t len;

	poison_current(b, &r);
	if (r.lines < 2)
		return -1;
	/* The end of row lines/2, walking the rows' field lengths. */
	p = b->rows.data + r.off;
	end = p + r.len;
	for (n = 0; n < r.lines / 2; n++) {
		if ((len = copyenc_row_size(p, (size_t)(end - p))) == 0)
			return -1; /* not rows: cannot happen */
		p += len;
	}
	first.off = r.off;
	first.len = (size_t)(p - (b->rows.data + r.off));
	first.lines = r.lines / 2;
	second.off = r.off + first.len;
	second.len = r.len - first.len;
	second.lines = r.lines - first.lines;
	if (b->npending > 0)
		b->npending--; /* replace the current range */
	if (push(b, second) == -1 || push(b, first) == -1) {
		/* ENOMEM: the halves that fit stay; retrying is safe. */
		return -1;
	}
	return 0;
}

bool
poison_pop(struct batch *b)
{
	if (b->npending == 0)
		return true;
	b->npending--;
	return b->npending == 0;
}

int
poison_row_fields(const char *row, size_t len, char *received_at, size_t ralen,
    char *peer, size_t peerlen, struct buf *raw, struct buf *text_row,
    struct buf *subject, bool *has_subject)
{
	struct record rec;
	struct buf ts = { received_at, 0, ralen };
	size_t replaced;

	if (ralen < 40 || copyenc_decode(row, len, &rec, peer, peerlen) == -1)
		return -1;
	if (rec.peer == NULL)
		peer[0] = '\0';
	copyenc_timestamp(&ts, rec.received_us);
	received_at[ts.len] = '\0';
	buf_reset(raw);
	buf_reset(text_row);
	if (buf_reserve(raw, rec.message.len + 1) == -1 ||
	    copyenc_row_text(text_row, &rec, &replaced) == -1)
		return -1;
	buf_put(raw, rec.message.ptr, rec.message.len);
	text_row->data[text_row->len - 1] = '\0'; /* was the LF */
	buf_reset(subject);
	*has_subject = rec.tls_subject.ptr != NULL;
	if (*has_subject &&
	    (buf_append(subject, rec.tls_subject.ptr, rec.tls_subject.len) ==
		    -1 ||
		buf_append(subject, "", 1) == -1))
		return -1;
	return 0;
}
