/*
 * parser: one framed message -> the columns of a record (see
 * include/logsink/parser.h).  This file only dispatches: syslog
 * (parser_syslog.c) first, its MSG then tried as logfmt; then JSON lines
 * (parser_json.c, which hands GELF objects to parser_gelf.c); then logfmt
 * (parser_logfmt.c); else plain.  Each detector gives up on the first
 * bytes of a message that is not its kind, so the order costs the other
 * formats little.
 *
 * Memory: fields point into the message or into scratch, which is reset
 * per call and grown with buf_reserve(); nothing else is allocated.
 * Columns built in scratch are tracked as offsets (struct pctx) and turned
 * into pointers only once scratch has stopped growing.
 */
#include <stddef.h>

#include "logsink/parser.h"
#include "parser_int.h"

/* Turns the scratch offsets of c into pointers (scratch is final now). */
static void
finish_scratch(struct pctx *c)
{
	struct record *r = c->rec;

	if (c->message_off != PARSER_NOOFF)
		r->message.ptr = c->sc->data + c->message_off;
	if (c->fields_off != PARSER_NOOFF)
		r->fields.ptr = c->sc->data + c->fields_off;
	if (c->host_off != PARSER_NOOFF)
		r->host.ptr = c->sc->data + c->host_off;
	if (c->app_off != PARSER_NOOFF)
		r->app.ptr = c->sc->data + c->app_off;
}

/*
 * A syslog message whose MSG is logfmt gets fields and message from it
 * (parser_logfmt_msg()); any other stays as parsed.
 */
static enum parser_rc
syslog_logfmt(struct pctx *c)
{
	enum parser_rc rc = parser_logfmt_msg(c);

	return rc == PARSER_NOMATCH ? PARSER_OK : rc;
}

/*
 * Parses msg (len bytes, not NUL-terminated) into rec.  Never rejects:
 * whatever is not syslog, JSON, GELF or logfmt is a plain message.  Returns -1
 * only when scratch could not grow; rec then holds the plain message.
 */
int
parser_parse(struct record *rec, const char *msg, size_t len,
    enum parser_format fmt, struct buf *scratch)
{
	return parser_parse_tz(rec, msg, len, fmt, NULL, scratch);
}

int
parser_parse_tz(struct record *rec, const char *msg, size_t len,
    enum parser_format fmt, const struct tzrule *tz, struct buf *scratch)
{
	struct pctx c = { rec, scratch, rec->received_us, PARSER_NOOFF,
		PARSER_NOOFF, PARSER_NOOFF, PARSER_NOOFF, tz };
	enum parser_rc rc = PARSER_NOMATCH;

	record_clear_parsed(rec);
	buf_reset(scratch);
	if (msg == NULL) {
		msg = "";
		len = 0;
	}
	if (fmt == PARSER_AUTO && len > 0) {
		rc = parser_syslog(&c, msg, len);
		if (rc == PARSER_OK)
			rc = syslog_logfmt(&c);
		if (rc == PARSER_NOMATCH)
			rc = parser_json(&c, msg, len);
		if (rc == PARSER_NOMATCH)
			rc = parser_logfmt(&c, msg, len);
	}
	if (rc == PARSER_OK) {
		finish_scratch(&c);
		return 0;
	}
	record_clear_parsed(rec);
	buf_reset(scratch);
	rec->message.ptr = msg;
	rec->message.len = len;
	return rc == PARSER_NOMEM ? -1 : 0;
}
