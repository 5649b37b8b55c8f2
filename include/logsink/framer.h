/*
 * framer: a byte stream -> messages.  A message ends at LF; a CR right
 * before the LF is dropped; empty messages are skipped; at EOF the bytes
 * after the last LF are a message too.  Messages longer than max_line are
 * cut to at most max_line bytes (at a UTF-8 character boundary) and the rest
 * up to the next LF is discarded.
 *
 * Leaf module: no I/O, no logging, no globals.  The caller owns the bytes;
 * the framer keeps no pointer into them.
 */
#ifndef LOGSINK_FRAMER_H
#define LOGSINK_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Called once per message; msg is valid only during the call.  Returns
 * false to make framer_feed() stop after this message (the queue is full).
 */
typedef bool (*framer_msg_cb)(void *arg, const char *msg, size_t len,
    bool truncated);

/* Embedded in its connection; holds no memory. */
struct framer {
	size_t max_line;
	bool discarding;    /* skipping the rest of a cut message */
	uint64_t truncated; /* messages cut to max_line */
};

void framer_init(struct framer *f, size_t max_line);

/*
 * Frames the contiguous bytes buf[0..len) and returns how many were
 * consumed.  Unconsumed bytes are an incomplete message (fewer than
 * max_line + 2 bytes) or were not looked at because cb returned false;
 * feed them again, with whatever arrived after them appended.
 */
size_t framer_feed(struct framer *f, const char *buf, size_t len, bool eof,
    framer_msg_cb cb, void *arg);

/* Length <= n of buf[0..n) that does not end inside a UTF-8 sequence. */
size_t framer_utf8_cut(const char *buf, size_t n, size_t avail);

#endif
