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
 *         OCTET; data that does not start with "<digit" or '{' is LF.
 *         Data starting with "<digit" (a "<PRI>" message) or '{' (JSON
 *         lines, or GELF over TCP: NUL-terminated JSON) is decided by the
 *         first evidence in it:
 *           - a NUL that ends the data read so far or precedes the same
 *             first byte ('<' or '{'; a sender writes one message per
 *             send): NUL;
 *           - a LF followed by the start of a next message ("<digit",
 *             or '{'): LF;
 *           - the end of the connection: LF.
 *         A LF followed by anything else is no evidence (a multi-line
 *         message, e.g. a Python traceback, in NUL framing; or a LF
 *         sender's next line not yet here), and neither is a NUL followed
 *         by other bytes.  Until evidence comes nothing is consumed and
 *         the complete lines read so far are held (f->held).  They are
 *         delivered as LF lines, one by one (a "flush"), when the owner
 *         calls framer_decide() (the listener does after
 *         framing-detect-timeout without new bytes: a LF sender that sent
 *         one line and went quiet) or when max_line + 3 bytes are
 *         undecided.  After a flush the framer stays undecided but
 *         delivers each complete line at once; "<digit" at the start of
 *         a line is then LF evidence too, and a NUL as above switches to
 *         NUL framing from the current line on.  So a LF sender's lines
 *         never wait longer than the timeout, and a NUL record split at
 *         a LF is one message unless the sender pauses longer than that
 *         exactly after a LF: then it is stored as two or more messages
 *         (the lines before the pause, the rest up to the NUL) and the
 *         connection's later records are framed right.  A first record
 *         without a LF that outgrows max_line is cut (its head
 *         delivered); the rest is skipped up to the first LF or NUL,
 *         whose kind decides.
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
	bool pri;              /* AUTO: the data started with "<digit" or '{' */
	char lead;             /* AUTO, pri: '<' or '{', the first byte */
	bool flushed;          /* AUTO: lines delivered before a decision */
	bool decide;           /* AUTO: framer_decide() was called */
	bool held;             /* AUTO: complete lines wait (framer_feed()) */
	size_t scan;           /* AUTO: bytes already scanned for evidence */
	size_t skip;           /* OCTET: bytes of a cut frame still to skip */
	size_t need;           /* see framer_feed() */
	uint64_t truncated;    /* messages cut to max_line */
	uint64_t bad_frames;   /* malformed or cut-off octet-count frames */
	uint64_t flushes;      /* AUTO: 1 once lines were delivered undecided */
};

void framer_init(struct framer *f, size_t max_line, enum framer_mode mode);

/*
 * Frames the contiguous bytes buf[0..len) and returns how many were
 * consumed.  Unconsumed bytes are an incomplete message (fewer than
 * max_line + 3 bytes, or an octet-count header and max_line + 2), or were not
 * looked at because cb returned false; feed them again with whatever
 * arrived after them appended.  When nothing could be consumed, f->need
 * says how many contiguous bytes the next step wants (0: up to and
 * including the next terminator byte, framer_terminator(); SIZE_MAX: all
 * there are).  f->held is set when the unconsumed bytes are complete
 * lines of an undecided AUTO connection: see framer_decide().
 */
size_t framer_feed(struct framer *f, const char *buf, size_t len, bool eof,
    framer_msg_cb cb, void *arg);

/*
 * AUTO: the next framer_feed() delivers the held lines as LF lines (see
 * AUTO above); the owner calls it when no byte has come for a while after
 * framer_feed() left f->held set.  No effect once the framing is decided.
 */
void framer_decide(struct framer *f);

/* The byte that ends a message in the current framing ('\n' in AUTO). */
char framer_terminator(const struct framer *f);

/* Parses a framing name ("auto", "lf", "nul", "octet"); -1 if unknown. */
int framer_mode_parse(const char *name);
const char *framer_mode_name(enum framer_mode mode);

#endif
