/*
 * copyenc: records -> rows of PostgreSQL's COPY text format.
 *
 * Text is escaped per the COPY docs (backslash, newline, carriage return
 * and tab get backslash escapes) and made valid UTF-8 on the way: a NUL
 * byte and each byte that does not belong to a well-formed UTF-8 sequence
 * (Unicode 15, table 3-7: no overlongs, surrogates or code points above
 * U+10FFFF) becomes U+FFFD, so one bad byte never makes the database reject
 * a batch.  Leaf module.
 */
#ifndef LOGSINK_COPYENC_H
#define LOGSINK_COPYENC_H

#include <stddef.h>
#include <stdint.h>

#include "logsink/buf.h"
#include "logsink/record.h"

/* The column list, in row order, for "COPY table (...) FROM STDIN". */
#define COPYENC_COLUMNS                                                        \
	"received_at, peer, host, app, procid, msgid, facility, severity, "    \
	"event_time, message, fields, tls_subject"
#define COPYENC_NCOLUMNS 12
/* Names the row encoding; spool segments record it (hashed) so that rows
 * are never replayed into a table layout they were not encoded for. */
#define COPYENC_FORMAT   "text " COPYENC_COLUMNS

/*
 * Appends rec as one row (ending in LF) to out.  *replaced gets the number
 * of bytes that were replaced by U+FFFD.  -1 if out could not grow.
 */
int copyenc_row(struct buf *out, const struct record *rec, size_t *replaced)
    __attribute__((warn_unused_result));

/*
 * Appends the escaped form of p[0..len); out must have room for 3 * len
 * bytes.  Returns the number of bytes replaced by U+FFFD.
 */
size_t copyenc_text(struct buf *out, const char *p, size_t len);

/* Appends "YYYY-MM-DD HH:MM:SS.uuuuuu+00"; out needs room for 40 bytes. */
void copyenc_timestamp(struct buf *out, int64_t us);

#endif
