/*
 * poison: batch bisection and dead-letter rows (see include/logsink/poison.h).
 */
#include <stdlib.h>
#include <string.h>

#include "logsink/copyenc.h"
#include "logsink/poison.h"

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

	poison_current(b, &r);
	if (r.lines < 2)
		return -1;
	/* The end of row lines/2: rows end at the only raw LFs of COPY text. */
	p = b->rows.data + r.off;
	end = p + r.len;
	for (n = 0; n < r.lines / 2; n++)
		p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
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

/* Decodes COPY text escapes (\\ \n \r \t, and \N for NULL). */
static int
unescape(const char *p, size_t len, struct buf *out)
{
	size_t i;
	char c;

	if (buf_reserve(out, len + 1) == -1)
		return -1;
	for (i = 0; i < len; i++) {
		c = p[i];
		if (c == '\\' && i + 1 < len) {
			c = p[++i];
			c = c == 'n'   ? '\n'
			    : c == 'r' ? '\r'
			    : c == 't' ? '\t'
				       : c;
		}
		out->data[out->len++] = c;
	}
	return 0;
}

/* Field indexes in a row (the order of COPYENC_COLUMNS). */
#define FIELD_MESSAGE     9
#define FIELD_TLS_SUBJECT 11

int
poison_row_fields(const char *row, size_t len, char *received_at, size_t ralen,
    char *peer, size_t peerlen, struct buf *raw, struct buf *subject,
    bool *has_subject)
{
	const char *f[COPYENC_NCOLUMNS], *end = row + len, *tab;
	size_t flen[COPYENC_NCOLUMNS];
	int i;

	for (i = 0; i < COPYENC_NCOLUMNS; i++) {
		tab = memchr(row, '\t', (size_t)(end - row));
		f[i] = row;
		flen[i] = (size_t)((tab != NULL ? tab : end) - row);
		row = tab != NULL ? tab + 1 : end;
	}
	if (flen[0] >= ralen || flen[1] >= peerlen)
		return -1;
	memcpy(received_at, f[0], flen[0]);
	received_at[flen[0]] = '\0';
	if (flen[1] == 2 && memcmp(f[1], "\\N", 2) == 0)
		peer[0] = '\0';
	else {
		memcpy(peer, f[1], flen[1]);
		peer[flen[1]] = '\0';
	}
	buf_reset(subject);
	*has_subject = !(flen[FIELD_TLS_SUBJECT] == 2 &&
	    memcmp(f[FIELD_TLS_SUBJECT], "\\N", 2) == 0);
	if (*has_subject &&
	    (unescape(f[FIELD_TLS_SUBJECT], flen[FIELD_TLS_SUBJECT], subject) ==
		    -1 ||
		buf_append(subject, "", 1) == -1))
		return -1;
	buf_reset(raw);
	return unescape(f[FIELD_MESSAGE], flen[FIELD_MESSAGE], raw);
}
