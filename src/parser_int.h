/*
 * parser internals shared by parser.c (dispatch), parser_syslog.c
 * (RFC 5424, RFC 3164), parser_json.c (JSON lines and JSON text output),
 * parser_gelf.c (GELF, a kind of JSON object), parser_logfmt.c (logfmt)
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
	size_t app_off;          /* rec->app.ptr is scratch + this */
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
int parser_level_name(const char *, size_t);
bool parser_json_epoch(const char *, size_t, int64_t *);
/* The scanner, for parser_gelf.c's walk over an object already scanned. */
#define PARSER_JF_ESC 0x1 /* a string has a backslash escape */
#define PARSER_JF_BAD 0x2 /* ... one that jsonb rejects */
const char *parser_json_ws(const char *, const char *);
const char *parser_json_string(const char *, const char *, unsigned *);
const char *parser_json_member_value(const char *, const char *, unsigned *);
size_t parser_json_unescape(char *, const char *, const char *);
size_t parser_json_fix_escapes(char *, const char *, const char *);

/* parser_gelf.c */
enum parser_rc parser_gelf(struct pctx *, const char *, const char *, bool);

/* parser_logfmt.c */
enum parser_rc parser_logfmt(struct pctx *, const char *, size_t);
enum parser_rc parser_logfmt_msg(struct pctx *);

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
