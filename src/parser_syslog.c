/*
 * parser_syslog: RFC 5424 and RFC 3164 (BSD syslog as real systems send
 * it) messages.
 *
 * A message is syslog if it starts with a valid PRI ("<0>".."<191>",
 * leading zeros tolerated), or, without PRI, with a BSD timestamp.  After
 * the PRI, "1 " selects RFC 5424, anything else RFC 3164.
 *
 * Bad data, decided here:
 * - A timestamp that has the right shape but impossible values (Feb 30,
 *   hour 25, offset +24:00) gives a NULL event time; the other header
 *   fields are kept.
 * - An RFC 5424 header that is otherwise malformed or truncated (missing
 *   fields, bad structured data) keeps only facility and severity; the
 *   message is everything after the PRI, so nothing is lost.
 * - A bad PRI ("<999>", "<>", "<12") makes the message plain.
 */
#include <stdbool.h>
#include <string.h>

#include "logsink/utf8.h"
#include "parser_int.h"

/* A BSD timestamp (RFC 3164 section 4.1.2) as written. */
struct bsd_ts {
	int mon, day, hour, min, sec, frac_us;
};

/*
 * Parses a PRI (RFC 5424 section 6.2.1): "<" 1*3DIGIT ">", 0..191.
 * Returns its length, or 0 if there is none.
 */
static size_t
parse_pri(const char *p, const char *end, int *pri)
{
	const char *q = p + 1;
	int v = 0;

	if (p == end || *p != '<')
		return 0;
	for (; q < end && q - p <= 3 && (unsigned)(*q - '0') <= 9; q++)
		v = v * 10 + (*q - '0');
	if (q == p + 1 || q == end || *q != '>' || v > 191)
		return 0;
	*pri = v;
	return (size_t)(q + 1 - p);
}

/* The end of the token at p: the next space, or end. */
static const char *
token_end(const char *p, const char *end)
{
	const char *q = memchr(p, ' ', (size_t)(end - p));

	return q != NULL ? q : end;
}

static void
set_text(struct text *t, const char *p, const char *q)
{
	t->ptr = p;
	t->len = (size_t)(q - p);
}

/* Like set_text(), but the RFC 5424 NILVALUE "-" is NULL. */
static void
set_field(struct text *t, const struct text *f)
{
	if (f->len == 1 && f->ptr[0] == '-')
		return;
	*t = *f;
}

/* SD-NAME characters, one lookup per byte (the scan was a tenth of an
 * RFC 5424 line's cost, docs/performance.md). */
#define SD_NAME_CHAR(c)                                                        \
	((c) > ' ' && (c) < 0x7f && (c) != '=' && (c) != ']' && (c) != '"')
#define SD_ROW(c)                                                              \
	SD_NAME_CHAR(c), SD_NAME_CHAR(c + 1), SD_NAME_CHAR(c + 2),             \
	    SD_NAME_CHAR(c + 3), SD_NAME_CHAR(c + 4), SD_NAME_CHAR(c + 5),     \
	    SD_NAME_CHAR(c + 6), SD_NAME_CHAR(c + 7), SD_NAME_CHAR(c + 8),     \
	    SD_NAME_CHAR(c + 9), SD_NAME_CHAR(c + 10), SD_NAME_CHAR(c + 11),   \
	    SD_NAME_CHAR(c + 12), SD_NAME_CHAR(c + 13), SD_NAME_CHAR(c + 14),  \
	    SD_NAME_CHAR(c + 15)
static const bool sd_name_char[256] = { SD_ROW(0), SD_ROW(16), SD_ROW(32),
	SD_ROW(48), SD_ROW(64), SD_ROW(80), SD_ROW(96), SD_ROW(112),
	SD_ROW(128), SD_ROW(144), SD_ROW(160), SD_ROW(176), SD_ROW(192),
	SD_ROW(208), SD_ROW(224), SD_ROW(240) };

/*
 * Parses an SD-NAME (RFC 5424 section 6.3: 1*32 PRINTUSASCII except '=',
 * SP, ']', '"'; the 32 limit is not enforced) and writes it to d as a
 * JSON string followed by ": ".  Returns the byte after the name or NULL.
 */
static const char *
sd_name(const char *p, const char *end, char **dp)
{
	const char *q = p;
	char *d = *dp;

	while (q < end && sd_name_char[(unsigned char)*q])
		q++;
	if (q == p)
		return NULL;
	*d++ = '"';
	d += parser_json_escape(d, p, (size_t)(q - p));
	memcpy(d, "\": ", 3);
	*dp = d + 3;
	return q;
}

/*
 * Copies a PARAM-VALUE (RFC 5424 section 6.3.3) from p (after the opening
 * quote) to d as a JSON string body.  The escapes \" \\ \] stand for the
 * character; a backslash before anything else is kept literally.
 * Returns the byte after the closing quote, or NULL if there is none.
 */
static const char *
sd_value(const char *p, const char *end, char **dp)
{
	const char *q;
	char *d = *dp;

	for (;;) {
		for (q = p; q < end && *q != '"' && *q != '\\'; q++)
			;
		d += parser_json_escape(d, p, (size_t)(q - p));
		if (q == end)
			return NULL;
		if (*q == '"')
			break;
		if (q + 1 < end && (q[1] == '"' || q[1] == '\\' || q[1] == ']'))
			q++;
		d += parser_json_escape(d, q, 1);
		p = q + 1;
	}
	*dp = d;
	return q + 1;
}

/*
 * Parses one SD-ELEMENT at p ('['): "[" SD-ID *(SP PARAM-NAME "=" %d34
 * PARAM-VALUE %d34) "]", writing "id": {"name": "value", ...} to d.
 * Extra spaces between params are tolerated.  Returns the byte after ']'.
 */
static const char *
sd_element(const char *p, const char *end, char **dp)
{
	bool first = true;

	if ((p = sd_name(p + 1, end, dp)) == NULL)
		return NULL;
	*(*dp)++ = '{';
	for (;;) {
		if (p < end && *p == ']')
			break;
		if (p == end || *p != ' ')
			return NULL;
		while (p < end && *p == ' ')
			p++;
		if (p < end && *p == ']')
			break;
		if (!first) {
			memcpy(*dp, ", ", 2);
			*dp += 2;
		}
		first = false;
		if ((p = sd_name(p, end, dp)) == NULL || end - p < 2 ||
		    p[0] != '=' || p[1] != '"')
			return NULL;
		*(*dp)++ = '"';
		if ((p = sd_value(p + 2, end, dp)) == NULL)
			return NULL;
		*(*dp)++ = '"';
	}
	*(*dp)++ = '}';
	return p + 1;
}

/*
 * STRUCTURED-DATA (RFC 5424 section 6.3) at *pp, as the JSON text
 * {"sd-id": {"param": "value", ...}, ...} in scratch (offset in
 * c->fields_off).  Repeated SD-IDs or params are emitted as they come;
 * jsonb keeps the last of duplicate keys.  Each input byte yields at most
 * 6 output bytes (a control character becomes \u00XX; the punctuation
 * around names and values never costs more), so one reservation of
 * 6 * remaining + 16 bytes covers the worst case and pointers into
 * scratch stay valid while we write.
 */
static enum parser_rc
sd_parse(struct pctx *c, const char **pp, const char *end)
{
	const char *p = *pp;
	char *d, *d0;

	if (p < end && *p == '-') {
		*pp = p + 1;
		return PARSER_OK;
	}
	if (p == end || *p != '[')
		return PARSER_NOMATCH;
	if (buf_reserve(
		c->sc, PARSER_JSON_ESCAPE_MAX((size_t)(end - p)) + 16) == -1)
		return PARSER_NOMEM;
	d = d0 = c->sc->data + c->sc->len;
	*d++ = '{';
	while (p < end && *p == '[') {
		if (d != d0 + 1) {
			memcpy(d, ", ", 2);
			d += 2;
		}
		if ((p = sd_element(p, end, &d)) == NULL)
			return PARSER_NOMATCH;
	}
	*d++ = '}';
	*pp = p;
	c->fields_off = c->sc->len;
	c->rec->fields.len = (size_t)(d - d0);
	c->sc->len += c->rec->fields.len;
	return PARSER_OK;
}

/*
 * RFC 5424 section 6: after "<PRI>1 ", TIMESTAMP HOSTNAME APP-NAME PROCID
 * MSGID STRUCTURED-DATA [SP MSG].  "-" is NULL for every header field;
 * a leading UTF-8 BOM is stripped from MSG (section 6.4).  Field length
 * limits are not enforced.  PARSER_NOMATCH if the header is malformed.
 */
static enum parser_rc
rfc5424(struct pctx *c, const char *p, const char *end)
{
	struct record *r = c->rec;
	struct text f[5]; /* TIMESTAMP HOSTNAME APP-NAME PROCID MSGID */
	const char *q;
	enum parser_rc rc;
	int i;

	for (i = 0; i < 5; i++) {
		q = token_end(p, end);
		if (q == p || q == end)
			return PARSER_NOMATCH;
		set_text(&f[i], p, q);
		p = q + 1;
	}
	if ((rc = sd_parse(c, &p, end)) != PARSER_OK)
		return rc;
	if (p < end && *p++ != ' ')
		return PARSER_NOMATCH;
	if (end - p >= UTF8_BOM_LEN && memcmp(p, UTF8_BOM, UTF8_BOM_LEN) == 0)
		p += UTF8_BOM_LEN;
	set_text(&r->message, p, end);
	if (!(f[0].len == 1 && f[0].ptr[0] == '-'))
		r->has_event_time =
		    parser_rfc3339(f[0].ptr, f[0].len, &r->event_us);
	set_field(&r->host, &f[1]);
	set_field(&r->app, &f[2]);
	set_field(&r->procid, &f[3]);
	set_field(&r->msgid, &f[4]);
	return PARSER_OK;
}

/* Month 1..12 of a case-insensitive English abbreviation, or 0. */
static int
month_of(const char *p)
{
	static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	char m[3] = { (char)(p[0] | 0x20), (char)(p[1] | 0x20),
		(char)(p[2] | 0x20) };
	int i;

	for (i = 0; i < 12; i++)
		if (memcmp(names + 3 * i, m, 3) == 0)
			return i + 1;
	return 0;
}

static bool
is_digit(char c)
{
	return (unsigned)(c - '0') <= 9;
}

/*
 * Parses a BSD timestamp (RFC 3164 section 4.1.2) "Mmm dd hh:mm:ss" at p:
 * the day may be space-padded ("Nov  1") or, leniently, one digit; an
 * optional ".fraction" (Cisco) is kept to microseconds.  Checks the
 * shape only, not the ranges.  Returns its length (it must be followed by
 * a space or the end), or 0.
 */
static size_t
bsd_timestamp(const char *p, const char *end, struct bsd_ts *ts)
{
	const char *q = p + 4;
	int frac = 0, nf = 0;

	if (end - p < 14 || p[3] != ' ' || (ts->mon = month_of(p)) == 0)
		return 0;
	if (*q == ' ')
		q++;
	if (!is_digit(q[0]))
		return 0;
	if (is_digit(q[1])) {
		ts->day = (q[0] - '0') * 10 + q[1] - '0';
		q += 2;
	} else {
		ts->day = q[0] - '0';
		q++;
	}
	if (end - q < 9 || q[0] != ' ' || q[3] != ':' || q[6] != ':' ||
	    !is_digit(q[1]) || !is_digit(q[2]) || !is_digit(q[4]) ||
	    !is_digit(q[5]) || !is_digit(q[7]) || !is_digit(q[8]))
		return 0;
	ts->hour = (q[1] - '0') * 10 + q[2] - '0';
	ts->min = (q[4] - '0') * 10 + q[5] - '0';
	ts->sec = (q[7] - '0') * 10 + q[8] - '0';
	q += 9;
	if (q < end && *q == '.') {
		for (q++; q < end && is_digit(*q); q++, nf++)
			if (nf < 6)
				frac = frac * 10 + *q - '0';
	}
	for (; nf < 6; nf++)
		frac *= 10;
	ts->frac_us = frac;
	if (q < end && *q != ' ')
		return 0;
	return (size_t)(q - p);
}

/*
 * Parses a TAG (RFC 3164 section 4.1.3) at p: name[pid]: , name: ,
 * name[pid] or, unless need_colon, a bare name.  Sets app and procid and
 * returns where the message starts (one space after the tag skipped), or
 * p if there is no tag.  With need_colon the colon must be followed by a
 * space or the end, so "<14>http://x" is not tag "http".
 */
static const char *
tag_parse(struct record *r, const char *p, const char *end, bool need_colon)
{
	const char *q = p, *pid = NULL, *pid_end = NULL;
	bool colon = false;

	while (q < end && *q != ' ' && *q != '[' && *q != ':')
		q++;
	if (q == p)
		return p;
	if (q < end && *q == '[') {
		pid = q + 1;
		for (pid_end = pid;
		     pid_end < end && *pid_end != ']' && *pid_end != ' ';
		     pid_end++)
			;
		if (pid_end == end || *pid_end != ']')
			return p;
	}
	set_text(&r->app, p, q);
	q = pid != NULL ? pid_end + 1 : q;
	if (q < end && *q == ':') {
		colon = true;
		q++;
	}
	/* After the tag: a space or the end; "name:text" is fine. */
	if ((need_colon && (!colon || (q < end && *q != ' '))) ||
	    (!colon && q < end && *q != ' ')) {
		r->app.ptr = NULL;
		r->app.len = 0;
		return p;
	}
	if (pid != NULL)
		set_text(&r->procid, pid, pid_end);
	return q < end && *q == ' ' ? q + 1 : q;
}

/*
 * The timestamp after an RFC 3164 PRI: BSD style, or RFC 3339 as sent by
 * rsyslog's RFC3339 templates (a token starting "dddd-").  Sets the event
 * time when the values are valid and returns the byte after the timestamp
 * and its space, or NULL if there is no timestamp.
 */
static const char *
rfc3164_time(struct pctx *c, const char *p, const char *end)
{
	struct record *r = c->rec;
	struct bsd_ts ts;
	const char *q;
	size_t n;

	if ((n = bsd_timestamp(p, end, &ts)) > 0) {
		r->has_event_time = c->tz != NULL
		    ? parser_bsd_time_tz(c->tz, c->received_us, ts.mon, ts.day,
			  ts.hour, ts.min, ts.sec, ts.frac_us, &r->event_us)
		    : parser_bsd_time(c->received_us, ts.mon, ts.day, ts.hour,
			  ts.min, ts.sec, ts.frac_us, &r->event_us);
		q = p + n;
	} else if (end - p >= 10 && is_digit(p[0]) && is_digit(p[1]) &&
	    is_digit(p[2]) && is_digit(p[3]) && p[4] == '-') {
		q = token_end(p, end);
		r->has_event_time =
		    parser_rfc3339(p, (size_t)(q - p), &r->event_us);
	} else {
		return NULL;
	}
	return q < end ? q + 1 : q;
}

/*
 * RFC 3164 after the PRI (if any): [TIMESTAMP SP [HOSTNAME SP]] TAG MSG.
 * The token after the timestamp is the host unless it ends with ':' or
 * contains '[' (then the sender left the host out and it is the tag);
 * after the host the next word is the tag, colon or not, as rsyslog does.
 * Without a timestamp (Python's SysLogHandler sends "<14>text") there is
 * no host and a tag is only taken in the "name: " or "name[pid]: " form.
 */
static void
rfc3164(struct pctx *c, const char *p, const char *end)
{
	struct record *r = c->rec;
	const char *q;

	if ((q = rfc3164_time(c, p, end)) == NULL) {
		p = tag_parse(r, p, end, true);
		set_text(&r->message, p, end);
		return;
	}
	p = q;
	q = token_end(p, end);
	if (q > p && q[-1] != ':' && memchr(p, '[', (size_t)(q - p)) == NULL) {
		set_text(&r->host, p, q);
		p = q < end ? q + 1 : q;
	}
	p = tag_parse(r, p, end, false);
	set_text(&r->message, p, end);
}

/*
 * Syslog, if msg is: RFC 5424 or RFC 3164 with a valid PRI, or RFC 3164
 * starting with a BSD timestamp.  PARSER_NOMATCH otherwise.
 */
enum parser_rc
parser_syslog(struct pctx *c, const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len;
	struct bsd_ts ts;
	enum parser_rc rc;
	size_t n;
	int pri;

	if ((n = parse_pri(p, end, &pri)) == 0) {
		if (bsd_timestamp(p, end, &ts) == 0)
			return PARSER_NOMATCH;
		rfc3164(c, p, end);
		return PARSER_OK;
	}
	p += n;
	c->rec->facility = pri / 8;
	c->rec->severity = pri % 8;
	if (end - p >= 2 && p[0] == '1' && p[1] == ' ') {
		if ((rc = rfc5424(c, p + 2, end)) != PARSER_NOMATCH)
			return rc;
		c->sc->len = 0;
		c->fields_off = PARSER_NOOFF;
		c->rec->fields.len = 0;
		c->rec->has_event_time = false;
		set_text(&c->rec->message, p, end);
		return PARSER_OK;
	}
	rfc3164(c, p, end);
	return PARSER_OK;
}
