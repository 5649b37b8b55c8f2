/*
 * framer: a connection's byte stream -> messages.  Framings:
 *
 *  LF     a message ends at LF; a CR right before it is dropped.  NUL bytes
 *         are content (later replaced by U+FFFD).
 *  NUL    a message ends at NUL (Python's SysLogHandler over TCP sends
 *         "<PRI>msg\0"); LFs inside are content, so a multi-line message
 *         (a traceback) stays one message; CR/LF around it are trimmed.
 *  OCTET  RFC 6587 octet counting, "LEN SP MSG": MSG may hold any byte.
 *  AUTO   decided from the connection's first bytes: "[1-9][0-9]* <" is
 *         OCTET; data starting with '<' (or '{': GELF over TCP) that
 *         holds a NUL which ends the data read so far or precedes the
 *         next '<' (or '{') is NUL (a sender writes one message per
 *         send); anything else is LF.
 *
 * In every framing empty messages are skipped, the bytes after the last
 * terminator at EOF are a message too, and messages longer than max_line
 * are cut to at most max_line bytes at a UTF-8 character boundary
 * (utf8_cut() of logsink/utf8.h; the rest is discarded and counted).  A
 * malformed octet-count header (not 1-9 digits then a space) is counted in
 * bad_frames and the connection continues in LF framing from that byte on,
 * so nothing is skipped.
 *
 * Leaf module: no I/O, no logging, no globals.  The caller owns the bytes;
 * the framer keeps no pointer into them.
 */
#ifndef LOGSINK_FRAMER_H
#define LOGSINK_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum framer_mode {
	FRAMER_AUTO,
	FRAMER_LF,
	FRAMER_NUL,
	FRAMER_OCTET,
};

/*
 * Called once per message; msg is valid only during the call.  Returns
 * false to make framer_feed() stop after this message (the queue is full).
 */
typedef bool (*framer_msg_cb)(
    void *arg, const char *msg, size_t len, bool truncated);

/* Embedded in its connection; holds no memory. */
struct framer {
	size_t max_line;
	enum framer_mode mode; /* AUTO until the first bytes decide */
	bool discarding;       /* LF/NUL: skipping the rest of a cut message */
	size_t skip;           /* OCTET: bytes of a cut frame still to skip */
	size_t need;           /* see framer_feed() */
	uint64_t truncated;    /* messages cut to max_line */
	uint64_t bad_frames;   /* malformed or cut-off octet-count frames */
};

void framer_init(struct framer *f, size_t max_line, enum framer_mode mode);

/*
 * Frames the contiguous bytes buf[0..len) and returns how many were
 * consumed.  Unconsumed bytes are an incomplete message (fewer than
 * max_line + 3 bytes, or an octet-count header and max_line + 2), or were not
 * looked at because cb returned false; feed them again with whatever
 * arrived after them appended.  When nothing could be consumed, f->need
 * says how many contiguous bytes the next step wants (0: up to and
 * including the next terminator byte, framer_terminator()).
 */
size_t framer_feed(struct framer *f, const char *buf, size_t len, bool eof,
    framer_msg_cb cb, void *arg);

/* The byte that ends a message in the current framing ('\n' in AUTO). */
char framer_terminator(const struct framer *f);

/* Parses a framing name ("auto", "lf", "nul", "octet"); -1 if unknown. */
int framer_mode_parse(const char *name);
const char *framer_mode_name(enum framer_mode mode);

#endif
