/*
 * framer: message framing for LF, NUL and RFC 6587 octet-counted streams
 * (see include/logsink/framer.h).
 */
#include <string.h>
#include <strings.h>

#include "logsink/framer.h"

/* RFC 6587 3.4.1: MSG-LEN is NONZERO-DIGIT *DIGIT; we take up to 9. */
#define OCTET_MAX_DIGITS 9

static const char *const mode_names[] = { "auto", "lf", "nul", "octet" };

void
framer_init(struct framer *f, size_t max_line, enum framer_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->max_line = max_line;
	f->mode = mode;
}

int
framer_mode_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (strcasecmp(name, mode_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
framer_mode_name(enum framer_mode mode)
{
	return mode_names[mode];
}

char
framer_terminator(const struct framer *f)
{
	return f->mode == FRAMER_NUL ? '\0' : '\n';
}

/*
 * Cutting buf at n must not split a multi-byte UTF-8 character: if the
 * byte at n (when there is one) continues a character, back up to that
 * character's first byte.  A sequence is at most 4 bytes long.
 */
size_t
framer_utf8_cut(const char *buf, size_t n, size_t avail)
{
	size_t k = 0;

	if (n >= avail)
		return n;
	while (k < 3 && k < n && ((unsigned char)buf[n - k] & 0xC0) == 0x80)
		k++;
	if (((unsigned char)buf[n - k] & 0xC0) == 0x80)
		return n; /* not UTF-8 anyway: cut where asked */
	return n - k;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Trims what the framing says, cuts to max_line, skips empty messages. */
static bool
deliver(struct framer *f, const char *p, size_t len, framer_msg_cb cb,
    void *arg)
{
	bool truncated = false;

	if (f->mode == FRAMER_NUL)
		while (len > 0 && (*p == '\n' || *p == '\r'))
			p++, len--;
	if (len > 0 && p[len - 1] == '\n' && f->mode != FRAMER_LF)
		len--;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (f->mode == FRAMER_NUL)
		while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
			len--;
	if (len > f->max_line) {
		len = framer_utf8_cut(p, f->max_line, len);
		truncated = true;
		f->truncated++;
	}
	if (len == 0)
		return true;
	return cb(arg, p, len, truncated);
}

/*
 * AUTO: decides the framing from the first bytes (see framer.h).  Returns
 * false when more bytes are needed to decide.
 */
static bool
detect(struct framer *f, const char *p, size_t n, bool eof)
{
	const char *nul;
	size_t i = 1;

	f->mode = FRAMER_LF;
	if (p[0] >= '1' && p[0] <= '9') {
		while (i < n && i < OCTET_MAX_DIGITS && is_digit(p[i]))
			i++;
		if (i + 1 >= n && !eof) {
			f->mode = FRAMER_AUTO;
			f->need = i + 2;
			return false;
		}
		if (i + 1 < n && p[i] == ' ' && p[i + 1] == '<')
			f->mode = FRAMER_OCTET;
		return true;
	}
	if (p[0] != '<')
		return true;
	/* A NUL that ends the data or precedes the next "<PRI>". */
	nul = memchr(p, '\0', n);
	if (nul != NULL && (nul == p + n - 1 || nul[1] == '<'))
		f->mode = FRAMER_NUL;
	else if (nul == NULL && memchr(p, '\n', n) == NULL && !eof &&
	    n < f->max_line + 2) {
		f->mode = FRAMER_AUTO;
		f->need = 0;
		return false;
	}
	return true;
}

/* LF or NUL framing: one message (or one discarded piece) from p. */
static size_t
feed_delim(struct framer *f, const char *p, size_t n, bool eof,
    framer_msg_cb cb, void *arg, bool *stop)
{
	const char *end = memchr(p, framer_terminator(f), n);
	size_t len;

	if (f->discarding) {
		if (end == NULL)
			return n;
		f->discarding = false;
		return (size_t)(end - p) + 1;
	}
	if (end != NULL) {
		len = (size_t)(end - p);
		*stop = !deliver(f, p, len, cb, arg);
		return len + 1;
	}
	if (eof) {
		*stop = !deliver(f, p, n, cb, arg);
		return n;
	}
	if (n < f->max_line + 2) {
		f->need = 0;
		return 0; /* wait for the rest of the message */
	}
	f->discarding = true; /* too long, no end in sight: cut, skip rest */
	*stop = !deliver(f, p, n, cb, arg);
	return n;
}

/*
 * OCTET framing: one frame (or one skipped piece) from p.  A header that
 * is not a length switches the connection to LF framing (returns 0 with
 * the mode changed); see framer.h.
 */
static size_t
feed_octet(struct framer *f, const char *p, size_t n, bool eof,
    framer_msg_cb cb, void *arg, bool *stop)
{
	size_t i = 0, len = 0, hdr, avail;

	if (f->skip > 0) {
		i = n < f->skip ? n : f->skip;
		f->skip -= i;
		return i;
	}
	if (*p == '\n' || *p == '\r' || *p == ' ')
		return 1; /* tolerated between frames */
	while (i < n && i < OCTET_MAX_DIGITS && is_digit(p[i]))
		len = len * 10 + (size_t)(p[i++] - '0');
	if (i == n && !eof) {
		f->need = i + 1;
		return 0;
	}
	if (i == n) { /* EOF in the middle of a header */
		f->bad_frames++;
		return n;
	}
	if (i == 0 || p[0] == '0' || p[i] != ' ') {
		f->bad_frames++;
		f->mode = FRAMER_LF;
		return 0;
	}
	hdr = i + 1;
	avail = n - hdr;
	if (avail < len && avail < f->max_line + 1) {
		if (!eof) {
			f->need = hdr + (len < f->max_line + 1 ? len :
								 f->max_line + 1);
			return 0;
		}
		f->bad_frames++; /* cut off by EOF: keep what came */
		*stop = !deliver(f, p + hdr, avail, cb, arg);
		return n;
	}
	if (len <= avail) {
		*stop = !deliver(f, p + hdr, len, cb, arg);
		return hdr + len;
	}
	/* Longer than max_line: deliver the head, skip the rest. */
	f->truncated++;
	*stop = !cb(arg, p + hdr, framer_utf8_cut(p + hdr, f->max_line, avail),
	    true);
	f->skip = len - (f->max_line + 1);
	return hdr + f->max_line + 1;
}

size_t
framer_feed(struct framer *f, const char *buf, size_t len, bool eof,
    framer_msg_cb cb, void *arg)
{
	enum framer_mode mode;
	size_t pos = 0, used;
	bool stop = false;

	f->need = 0;
	while (pos < len && !stop) {
		mode = f->mode;
		if (mode == FRAMER_AUTO) {
			if (!detect(f, buf + pos, len - pos, eof))
				return pos;
			continue;
		}
		if (mode == FRAMER_OCTET)
			used = feed_octet(f, buf + pos, len - pos, eof, cb, arg,
			    &stop);
		else
			used = feed_delim(f, buf + pos, len - pos, eof, cb, arg,
			    &stop);
		if (used == 0 && f->mode == mode)
			return pos; /* needs more bytes; f->need says how many */
		pos += used;
	}
	return pos;
}
