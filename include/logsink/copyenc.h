/*
 * copyenc: records -> rows of PostgreSQL's COPY, binary format (what the
 * batches hold and logsinkd sends: it costs PostgreSQL 11 % less CPU per
 * row than the text format with the shipped indexes, docs/performance.md)
 * and text format (the dead-letter table's copy_row column).
 *
 * Text is made valid UTF-8 on the way: a NUL byte and each byte that does
 * not belong to a well-formed UTF-8 sequence (Unicode 15, table 3-7: no
 * overlongs, surrogates or code points above U+10FFFF) becomes U+FFFD, so
 * one bad byte never makes the database reject a batch.  In the text
 * format it is also escaped per the COPY docs (backslash, newline,
 * carriage return and tab get backslash escapes).  Leaf module.
 *
 * Adding a column: COPYENC_COLUMNS, COPYENC_NCOLUMNS, copyenc_row(),
 * copyenc_row_text() and copyenc_decode(), in the same place of each.
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
#define COPYENC_FORMAT   "binary " COPYENC_COLUMNS

/* The COPY options of copyenc_row()'s rows. */
#define COPYENC_OPTIONS     "(FORMAT binary)"
/* A binary COPY stream: this header (signature, no flags, no extension),
 * rows, this trailer (field count -1). */
#define COPYENC_HEADER      "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0"
#define COPYENC_HEADER_LEN  19
#define COPYENC_TRAILER     "\377\377"
#define COPYENC_TRAILER_LEN 2

/*
 * Appends rec as one row of the binary format to out.  *replaced gets the
 * number of bytes that were replaced by U+FFFD.  -1 if out could not grow.
 * A NULL message is stored as empty text; a peer that is not an IP
 * address as NULL.
 */
int copyenc_row(struct buf *out, const struct record *rec, size_t *replaced)
    __attribute__((warn_unused_result));

/* The same row in the text format (tab-separated, ending in LF). */
int copyenc_row_text(struct buf *out, const struct record *rec,
    size_t *replaced) __attribute__((warn_unused_result));

/* The length of the whole binary row at p[0..avail), or 0 if it is not
 * one (cut short, malformed, or the trailer). */
size_t copyenc_row_size(const char *p, size_t avail);

/*
 * Decodes one binary row of copyenc_row() (exactly len bytes) into rec:
 * the texts point into row, the peer's text goes to peer (peerlen bytes,
 * INET6_ADDRSTRLEN suffice).  -1 if it is not such a row.
 */
int copyenc_decode(const char *row, size_t len, struct record *rec, char *peer,
    size_t peerlen) __attribute__((warn_unused_result));

/*
 * Appends the escaped form of p[0..len); out must have room for 3 * len
 * bytes.  Returns the number of bytes replaced by U+FFFD.
 */
size_t copyenc_text(struct buf *out, const char *p, size_t len);

/* The same without escapes (binary format): only sanitised. */
size_t copyenc_utf8(struct buf *out, const char *p, size_t len);

/* Appends "YYYY-MM-DD HH:MM:SS.uuuuuu+00"; out needs room for 40 bytes. */
void copyenc_timestamp(struct buf *out, int64_t us);

#endif
