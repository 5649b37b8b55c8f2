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

void
framer_decide(struct framer *f)
{
	if (f->mode == FRAMER_AUTO)
		f->decide = true;
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

enum evidence {
	EV_NONE, /* nothing decides yet */
	EV_LF,   /* a line starting with "<digit" follows a LF */
	EV_NUL,  /* a NUL ends the data or precedes '<' */
};

/*
 * How many bytes of undecided data may decide (framer.h): evidence must
 * lie, lookahead included, within the first max_line + 3, so that it does
 * not depend on how the data was split into reads.
 */
static size_t
auto_window(const struct framer *f, size_t n)
{
	return n < f->max_line + 3 ? n : f->max_line + 3;
}

/*
 * Whether a message like the connection's first starts at p[i], within
 * the window w: "<digit" after a "<PRI>" one, '{' after a JSON (GELF) one.
 */
static bool
starts_message(const struct framer *f, const char *p, size_t i, size_t w)
{
	if (f->lead == '{')
		return i < w && p[i] == '{';
	return i + 1 < w && p[i] == '<' && is_digit(p[i + 1]);
}

/*
 * AUTO, data from a "<PRI>" (or JSON) sender: the first evidence of its framing
 * in p[0..n) (framer.h).  After a flush, p starts a line, so "<digit" at p is
 * LF evidence too.  f->scan skips what an earlier call scanned of the same
 * bytes (less the 2 bytes a decision may look ahead), so the undecided first
 * record costs one pass however it is split.
 */
static enum evidence
pri_evidence(struct framer *f, const char *p, size_t n)
{
	size_t i = f->scan, w = auto_window(f, n);

	if (f->flushed && i == 0 && starts_message(f, p, 0, w))
		return EV_LF;
	for (; i < w; i++) {
		if (p[i] == '\0' &&
		    (i + 1 == n || (i + 1 < w && p[i + 1] == f->lead)))
			return EV_NUL;
		if (p[i] == '\n' && starts_message(f, p, i + 1, w))
			return EV_LF;
	}
	f->scan = w > 2 ? w - 2 : 0;
	return EV_NONE;
}

/*
 * AUTO, the connection's first bytes.  Octet counting and plain LF
 * senders are decided at once: false with f->mode set (FRAMER_AUTO, with
 * f->need, while the first bytes are too few to tell).  A "<digit" or '{'
 * start returns true: the framer looks for evidence (f->pri, f->lead).
 */
static bool
detect_first(struct framer *f, const char *p, size_t n, bool eof)
{
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
		return false;
	}
	if (p[0] != '<' && p[0] != '{') /* '{': JSON lines, or GELF (NUL) */
		return false;
	if (p[0] == '<' && n < 2 && !eof) {
		f->mode = FRAMER_AUTO;
		f->need = 2;
		return false;
	}
	if (p[0] == '<' && (n < 2 || !is_digit(p[1])))
		return false;
	f->mode = FRAMER_AUTO;
	f->pri = true;
	f->lead = p[0];
	return true;
}

/*
 * AUTO: decides the framing from the first bytes (see framer.h).  Returns
 * false when more bytes are needed to decide (feed_auto()).
 */
static bool
detect(struct framer *f, const char *p, size_t n, bool eof)
{
	if (!f->pri && !detect_first(f, p, n, eof))
		return f->mode != FRAMER_AUTO;
	switch (pri_evidence(f, p, n)) {
	case EV_LF:
		f->mode = FRAMER_LF;
		return true;
	case EV_NUL:
		f->mode = FRAMER_NUL;
		return true;
	case EV_NONE:
		break;
	}
	if (!eof || n >= f->max_line + 3)
		return false; /* feed_auto(): wait, flush or cut */
	f->mode = FRAMER_LF;
	return true;
}

/*
 * AUTO, undecided.  A first record without a LF waits while it may still
 * fit, else its head is delivered cut and the rest skipped up to the
 * first LF or NUL, whose kind then decides.  With a LF, complete lines
 * are held (f->held) until evidence arrives, unless framer_decide() was
 * called, a flush happened already, or max_line + 3 bytes are undecided:
 * then the first line is delivered as a LF line (a flush) and the framer
 * stays undecided for the rest.
 */
static size_t
feed_auto(struct framer *f, const char *p, size_t n, framer_msg_cb cb,
    void *arg, bool *stop)
{
	const char *lf, *nul;
	size_t len;

	if (f->discarding) {
		lf = memchr(p, '\n', n);
		nul = memchr(p, '\0', lf != NULL ? (size_t)(lf - p) : n);
		if (nul == NULL && lf == NULL)
			return n;
		f->discarding = false;
		f->mode = nul != NULL ? FRAMER_NUL : FRAMER_LF;
		return (size_t)((nul != NULL ? nul : lf) - p) + 1;
	}
	if (!f->pri)
		return 0; /* f->need: as detect() left it */
	lf = memchr(p, '\n', auto_window(f, n));
	if (lf != NULL && (f->flushed || f->decide || n >= f->max_line + 3)) {
		len = (size_t)(lf - p);
		if (!f->flushed)
			f->flushes++;
		f->flushed = true;
		f->decide = false;
		f->scan = f->scan > len + 1 ? f->scan - len - 1 : 0;
		*stop = !deliver(f, p, len, cb, arg);
		return len + 1;
	}
	if (n >= f->max_line + 3) { /* no LF in the window: cut */
		f->discarding = true;
		*stop = !deliver_cut(f, p, f->max_line + 3, cb, arg);
		return f->max_line + 3;
	}
	f->held = lf != NULL;
	f->need = SIZE_MAX;
	return 0;
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
	f->held = false;
	while (pos < len && !stop) {
		mode = f->mode;
		if (mode == FRAMER_AUTO && !f->discarding &&
		    detect(f, buf + pos, len - pos, eof))
			continue;
		if (f->mode == FRAMER_AUTO) {
			used =
			    feed_auto(f, buf + pos, len - pos, cb, arg, &stop);
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
