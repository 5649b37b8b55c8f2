/*
 * parser: one framed message -> the columns of a record (RFC 5424,
 * RFC 3164/BSD, JSON lines, GELF, logfmt, plain text).  Pure: no I/O, no
 * logging, no globals.  It never rejects a message: what does not parse is a
 * plain message.
 */
#ifndef LOGSINK_PARSER_H
#define LOGSINK_PARSER_H

#include <stddef.h>

#include "logsink/buf.h"
#include "logsink/record.h"

enum parser_format {
	PARSER_AUTO, /* detect syslog / JSON / GELF / logfmt / plain per
			message */
	PARSER_RAW,  /* message only, no parsing */
};

/*
 * Fills the parsed columns of rec (received_us and peer are left alone;
 * received_us is used to resolve year-less timestamps).  The fields point
 * into msg or into scratch, which the parser may reset and grow; they stay
 * valid until the next call with the same scratch.  Returns 0 on success,
 * -1 only if scratch could not grow (rec then holds the plain message).
 */
int parser_parse(struct record *rec, const char *msg, size_t len,
    enum parser_format fmt, struct buf *scratch)
    __attribute__((warn_unused_result));

struct tzrule;

/*
 * parser_parse() with the zone RFC 3164 (BSD) timestamps are in (a
 * listener's tz=, logsink/tzrule.h); NULL: the daemon's local zone at
 * the offset in force when the message was received, as parser_parse().
 */
int parser_parse_tz(struct record *rec, const char *msg, size_t len,
    enum parser_format fmt, const struct tzrule *tz, struct buf *scratch)
    __attribute__((warn_unused_result));

#endif
