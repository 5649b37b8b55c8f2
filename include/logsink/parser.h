/*
 * parser: one framed message -> the columns of a record (RFC 5424,
 * RFC 3164/BSD, JSON lines, GELF, logfmt, plain text).  Pure: no I/O, no
 * logging, no globals.  It never rejects a message: what does not parse is a
 * plain message.
 */
#ifndef LOGSINK_PARSER_H
#define LOGSINK_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * Shared with decoders of other encodings (forward.c), as JSON lines use
 * them.  Severity from a level name ("warn", "ERROR", "eror"...) or one
 * digit 0..7; -1 if unknown.
 */
int parser_level_name(const char *s, size_t n);
/*
 * Escapes n bytes of src as the body of a JSON string into dst, which has
 * room for PARSER_JSON_ESCAPE_MAX(n) bytes; NUL becomes \ufffd.  Returns
 * the length written.
 */
size_t parser_json_escape(char *dst, const char *src, size_t n);
#define PARSER_JSON_ESCAPE_MAX(n) ((n)*6)
/* An event time (us since the epoch) the table takes. */
bool parser_event_in_range(int64_t us);

#endif
