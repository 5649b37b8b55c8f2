/*
 * framer: LF-delimited message framing (see include/logsink/framer.h).
 */
#include <string.h>

#include "logsink/framer.h"

void
framer_init(struct framer *f, size_t max_line)
{
	f->max_line = max_line;
	f->discarding = false;
	f->truncated = 0;
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

/* Delivers one message after stripping a final CR; skips empty ones. */
static bool
deliver(struct framer *f, const char *p, size_t len, framer_msg_cb cb,
    void *arg)
{
	bool truncated = false;

	if (len > 0 && p[len - 1] == '\r')
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

size_t
framer_feed(struct framer *f, const char *buf, size_t len, bool eof,
    framer_msg_cb cb, void *arg)
{
	size_t pos = 0, n;
	const char *nl;

	while (pos < len) {
		nl = memchr(buf + pos, '\n', len - pos);
		if (f->discarding) {
			if (nl == NULL)
				return len;
			f->discarding = false;
			pos = (size_t)(nl - buf) + 1;
			continue;
		}
		if (nl != NULL) {
			n = (size_t)(nl - (buf + pos));
			pos += n + 1;
			if (!deliver(f, buf + pos - n - 1, n, cb, arg))
				return pos;
			continue;
		}
		n = len - pos;
		if (eof) {
			deliver(f, buf + pos, n, cb, arg);
			return len;
		}
		if (n < f->max_line + 2)
			return pos; /* wait for the rest of the line */
		/* Too long and no end in sight: cut here, skip the rest. */
		f->discarding = true;
		deliver(f, buf + pos, n, cb, arg);
		return len;
	}
	return pos;
}
