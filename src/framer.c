/*
 * framer: message framing for LF, NUL and RFC 6587 octet-counted streams
 * (see include/logsink/framer.h).
 */
#include <string.h>
#include <strings.h>

#include "logsink/framer.h"
#include "logsink/utf8.h"

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

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Trims the terminator's companions (LF framing: a final CR; the others: a
 * final LF or CR LF, so at most 2 bytes), cuts to max_line, skips empty
 * messages.
 */
static bool
deliver(
    struct framer *f, const char *p, size_t len, framer_msg_cb cb, void *arg)
{
	bool truncated = false;

	if (len > 0 && p[len - 1] == '\n' && f->mode != FRAMER_LF)
		len--;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > f->max_line) {
		len = utf8_cut(p, f->max_line, len);
		truncated = true;
		f->truncated++;
	}
	if (len == 0)
		return true;
	return cb(arg, p, len, truncated);
}

/*
 * The message is known to be longer than max_line (+ the 2 bytes deliver()
 * may trim) before all of it has arrived: deliver its head, cut.
 */
static bool
deliver_cut(
    struct framer *f, const char *p, size_t avail, framer_msg_cb cb, void *arg)
{
	f->truncated++;
	return cb(arg, p, utf8_cut(p, f->max_line, avail), true);
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
	if (p[0] != '<' && p[0] != '{')
		return true;
	/* A NUL that ends the data or precedes the next "<PRI>" (or, for
	 * GELF over TCP, "{"). */
	nul = memchr(p, '\0', n);
	if (nul != NULL && (nul == p + n - 1 || nul[1] == p[0]))
		f->mode = FRAMER_NUL;
	else if (nul == NULL && memchr(p, '\n', n) == NULL && !eof)
		f->mode = FRAMER_AUTO; /* wait, or cut: feed_auto_cut() */
	return f->mode != FRAMER_AUTO;
}

/*
 * AUTO, and the first message has no terminator yet: wait while it may
 * still fit, else deliver its head and skip to the first LF or NUL, whose
 * kind then decides the framing.
 */
static size_t
feed_auto_cut(struct framer *f, const char *p, size_t n, framer_msg_cb cb,
    void *arg, bool *stop)
{
	const char *lf, *nul;

	if (!f->discarding) {
		if (n < f->max_line + 3)
			return 0; /* f->need: as detect() left it */
		f->discarding = true;
		*stop = !deliver_cut(f, p, n, cb, arg);
		return n;
	}
	lf = memchr(p, '\n', n);
	nul = memchr(p, '\0', lf != NULL ? (size_t)(lf - p) : n);
	if (nul == NULL && lf == NULL)
		return n;
	f->discarding = false;
	f->mode = nul != NULL ? FRAMER_NUL : FRAMER_LF;
	return (size_t)((nul != NULL ? nul : lf) - p) + 1;
}

/* LF or NUL framing: one message (or one discarded piece) from p. */
static size_t
feed_delim(struct framer *f, const char *p, size_t n, bool eof,
    framer_msg_cb cb, void *arg, bool *stop)
{
	const char *end;
	size_t len;

	if (f->mode == FRAMER_NUL && !f->discarding &&
	    (*p == '\n' || *p == '\r'))
		return 1; /* separators some senders put between messages */
	end = memchr(p, framer_terminator(f), n);
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
	if (n < f->max_line + 3) {
		f->need = 0;
		return 0; /* wait for the rest of the message */
	}
	f->discarding = true; /* too long, no end in sight: cut, skip rest */
	*stop = !deliver_cut(f, p, n, cb, arg);
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
	if (len <= avail) {
		*stop = !deliver(f, p + hdr, len, cb, arg);
		return hdr + len;
	}
	if (len > f->max_line + 2 && avail >= f->max_line) {
		/* Longer than max_line whatever deliver() would trim. */
		*stop = !deliver_cut(f, p + hdr, avail, cb, arg);
		f->skip = len - avail;
		return n;
	}
	if (!eof) {
		f->need = hdr + (len <= f->max_line + 2 ? len : f->max_line);
		return 0;
	}
	f->bad_frames++; /* cut off by EOF: keep what came */
	*stop = !deliver(f, p + hdr, avail, cb, arg);
	return n;
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
		if (mode == FRAMER_AUTO && !f->discarding &&
		    detect(f, buf + pos, len - pos, eof))
			continue;
		if (f->mode == FRAMER_AUTO) {
			used = feed_auto_cut(
			    f, buf + pos, len - pos, cb, arg, &stop);
			if (used == 0)
				return pos;
			pos += used;
			continue;
		}
		if (mode == FRAMER_OCTET)
			used = feed_octet(
			    f, buf + pos, len - pos, eof, cb, arg, &stop);
		else
			used = feed_delim(
			    f, buf + pos, len - pos, eof, cb, arg, &stop);
		if (used == 0 && f->mode == mode)
			return pos; /* needs more bytes; f->need says how many
				     */
		pos += used;
	}
	return pos;
}
