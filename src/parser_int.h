/*
 * parser internals shared by parser.c (dispatch), parser_syslog.c
 * (RFC 5424, RFC 3164), parser_json.c (JSON lines and JSON text output)
 * and parser_time.c (timestamps).  Not part of the public API.
 */
#ifndef LOGSINK_PARSER_INT_H
#define LOGSINK_PARSER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/buf.h"
#include "logsink/record.h"

/* "No offset": the column does not live in scratch. */
#define PARSER_NOOFF SIZE_MAX

/*
 * State of one parser_parse() call.  Columns built in scratch are kept as
 * offsets until the end of the call (scratch may be reallocated while we
 * build); parser_parse() turns them into pointers last.
 */
struct pctx {
	struct record *rec;
	struct buf *sc;
	int64_t received_us;
	size_t message_off;      /* rec->message.ptr is scratch + this */
	size_t fields_off;       /* rec->fields.ptr is scratch + this */
	size_t host_off;         /* rec->host.ptr is scratch + this */
	const struct tzrule *tz; /* BSD timestamps' zone; NULL: local */
};

/* Outcome of a format-specific parser. */
enum parser_rc {
	PARSER_OK,      /* rec filled */
	PARSER_NOMATCH, /* not this format; rec untouched, scratch reset */
	PARSER_NOMEM,   /* scratch could not grow */
};

/* parser_syslog.c */
enum parser_rc parser_syslog(struct pctx *, const char *, size_t);

/* parser_json.c */
enum parser_rc parser_json(struct pctx *, const char *, size_t);
size_t parser_json_escape(char *, const char *, size_t);

/* Worst case of parser_json_escape(): every byte becomes \u00XX. */
#define PARSER_JSON_ESCAPE_MAX(n) ((n)*6)

/* parser_time.c */
bool parser_event_in_range(int64_t);
bool parser_rfc3339(const char *, size_t, int64_t *);
struct tzrule;
bool parser_bsd_time(int64_t, int, int, int, int, int, int, int64_t *);
bool parser_bsd_time_tz(
    const struct tzrule *, int64_t, int, int, int, int, int, int, int64_t *);
void parser_time_flush_cache(void);

#endif
