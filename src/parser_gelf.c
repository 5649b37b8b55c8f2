/*
 * parser_gelf: GELF 1.1 payloads (the Graylog Extended Log Format, a JSON
 * object; over TCP each one ends with a NUL, no chunking or compression).
 * parser_json() scans the object and hands it here when it has a string
 * "version" and a "short_message" or "full_message".
 *
 * Mapping (GELF 1.1 specification, "GELF Payload Specification"):
 *   short_message -> message (a string unescaped; another value its JSON
 *                    text); without it, full_message is the message
 *   full_message  -> fields "full_message" when short_message is there
 *   host          -> host (a string)
 *   timestamp     -> event time: seconds since the epoch with a decimal
 *                    fraction (a number, or a string of one), or RFC 3339
 *   level         -> severity: the syslog severity 0..7 (a number or a
 *                    string; level names as for JSON lines)
 *   _app, _application_name, _facility, facility (GELF 1.0's deprecated
 *                    string) -> app, first present; they stay in fields
 *   _name          -> fields "name": the leading underscore of additional
 *                    fields is stripped; "_id" (reserved by GELF) is kept
 *                    as "_id"
 *   version, and host/short_message/timestamp/level when they fed their
 *   column, are not repeated in fields; anything else (facility, file,
 *   line, unknown keys, values a column could not take) is kept as sent.
 * fields is NULL when nothing is left.  With duplicate keys the last one
 * feeds the column, and jsonb keeps the last in fields.
 *
 * Escapes jsonb rejects (\u0000, lone surrogates) become \ufffd in fields,
 * as for JSON lines.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "parser_int.h"

/* One member of the object: key body (without quotes) and value text. */
struct gmember {
	const char *key, *val;
	size_t klen, vlen;
	unsigned kflags, vflags;
};

/* The GELF keys that feed columns. */
enum gkey {
	GK_SHORT,
	GK_FULL,
	GK_HOST,
	GK_TIMESTAMP,
	GK_LEVEL,
	GK_VERSION,
	GK_APP, /* _app, _application_name, _facility, facility: see gk_app */
	GK_NONE,
};

/* What one walk over the object picked for the columns. */
struct gpicks {
	struct gmember msg; /* val NULL: none */
	struct gmember host;
	struct gmember app[4]; /* by preference */
	int severity;
	bool has_time;
	int64_t time_us;
};

static bool
key_is(const struct gmember *m, const char *s)
{
	return !(m->kflags & PARSER_JF_ESC) && m->klen > 0 &&
	    m->key[0] == s[0] && m->klen == strlen(s) &&
	    memcmp(m->key, s, m->klen) == 0;
}

/* The column key of m, and for GK_APP its preference in *rank. */
static enum gkey
gelf_key(const struct gmember *m, int *rank)
{
	static const char *const app[4] = { "_app", "_application_name",
		"_facility", "facility" };
	static const struct {
		const char *name;
		enum gkey k;
	} keys[] = { { "short_message", GK_SHORT }, { "full_message", GK_FULL },
		{ "host", GK_HOST }, { "timestamp", GK_TIMESTAMP },
		{ "level", GK_LEVEL }, { "version", GK_VERSION } };
	size_t i;

	/* Additional fields (most keys) are only app candidates. */
	if (m->klen > 0 && m->key[0] == '_') {
		for (i = 0; i < 3; i++)
			if (key_is(m, app[i])) {
				*rank = (int)i;
				return GK_APP;
			}
		return GK_NONE;
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (key_is(m, keys[i].name))
			return keys[i].k;
	if (key_is(m, app[3])) {
		*rank = 3;
		return GK_APP;
	}
	return GK_NONE;
}

static bool
is_string(const struct gmember *m)
{
	return m->val[0] == '"';
}

/* Event time of a GELF timestamp value. */
static bool
gelf_time(const struct gmember *m, int64_t *us)
{
	const char *p = m->val;
	size_t n = m->vlen;

	if (is_string(m)) {
		if (m->vflags & PARSER_JF_ESC)
			return false;
		p++;
		n -= 2;
		if (n > 0 && (unsigned)(*p - '0') <= 9 &&
		    parser_json_epoch(p, n, us))
			return true;
		return parser_rfc3339(p, n, us);
	}
	return parser_json_epoch(p, n, us);
}

/* Severity of a GELF level value: 0..7, or a level name; -1 if neither. */
static int
gelf_level(const struct gmember *m)
{
	if (is_string(m))
		return m->vflags & PARSER_JF_ESC
		    ? -1
		    : parser_level_name(m->val + 1, m->vlen - 2);
	if (m->vlen == 1 && (unsigned)(m->val[0] - '0') <= 7)
		return m->val[0] - '0';
	return -1;
}

/*
 * Notes what member m feeds and returns whether it stays in fields.
 */
static bool
gelf_pick(struct gpicks *pk, const struct gmember *m, bool has_short)
{
	int rank = 0, sev;
	int64_t us;

	switch (gelf_key(m, &rank)) {
	case GK_SHORT:
		pk->msg = *m;
		return false;
	case GK_FULL:
		if (has_short)
			return true;
		pk->msg = *m;
		return false;
	case GK_HOST:
		if (!is_string(m))
			return true;
		pk->host = *m;
		return false;
	case GK_TIMESTAMP:
		if (!gelf_time(m, &us))
			return true;
		pk->has_time = true;
		pk->time_us = us;
		return false;
	case GK_LEVEL:
		if ((sev = gelf_level(m)) < 0)
			return true;
		pk->severity = sev;
		return false;
	case GK_VERSION:
		return false;
	case GK_APP:
		if (is_string(m))
			pk->app[rank] = *m;
		return true;
	case GK_NONE:
		return true;
	}
	return true;
}

/* Copies s..s+n to d, with the escapes jsonb rejects fixed if bad. */
static size_t
gelf_copy(char *d, const char *s, size_t n, bool bad)
{
	if (bad)
		return parser_json_fix_escapes(d, s, s + n);
	memcpy(d, s, n);
	return n;
}

/*
 * Writes member m to d as "key":value (no spaces), the leading '_' of an
 * additional field's name stripped but for "_id" and a bare "_".  Returns
 * the length, never more than the member's text in the object.
 */
static size_t
gelf_member(char *d, const struct gmember *m)
{
	const char *k = m->key;
	size_t kn = m->klen;
	char *d0 = d;

	if (kn > 1 && k[0] == '_' && !key_is(m, "_id")) {
		k++;
		kn--;
	}
	*d++ = '"';
	d += gelf_copy(d, k, kn, m->kflags & PARSER_JF_BAD);
	*d++ = '"';
	*d++ = ':';
	d += gelf_copy(d, m->val, m->vlen, m->vflags & PARSER_JF_BAD);
	return (size_t)(d - d0);
}

/* Reads the member at p (a key's opening quote) of a scanned object. */
static const char *
gelf_read(const char *p, const char *end, struct gmember *m)
{
	const char *q;

	m->kflags = m->vflags = 0;
	q = parser_json_string(p, end, &m->kflags);
	m->key = p + 1;
	m->klen = (size_t)(q - p - 2);
	p = parser_json_ws(q, end);
	m->val = p = parser_json_ws(p + 1, end); /* after ':' */
	q = parser_json_member_value(p, end, &m->vflags);
	m->vlen = (size_t)(q - p);
	return parser_json_ws(q, end);
}

/* Points *t at the text of the string value m (unescaped into scratch at
 * *off if needed; room reserved by the caller); other values: JSON text. */
static void
gelf_text(struct pctx *c, const struct gmember *m, struct text *t, size_t *off)
{
	if (!is_string(m)) {
		t->ptr = m->val;
		t->len = m->vlen;
	} else if (!(m->vflags & PARSER_JF_ESC)) {
		t->ptr = m->val + 1;
		t->len = m->vlen - 2;
	} else {
		*off = c->sc->len;
		t->ptr = NULL; /* set from *off at the end of parser_parse() */
		t->len = parser_json_unescape(
		    c->sc->data + c->sc->len, m->val + 1, m->val + m->vlen - 1);
		c->sc->len += t->len;
	}
}

/* The columns from the picks. */
static void
gelf_columns(struct pctx *c, const struct gpicks *pk)
{
	struct record *r = c->rec;
	int i;

	if (pk->msg.val != NULL)
		gelf_text(c, &pk->msg, &r->message, &c->message_off);
	if (pk->host.val != NULL)
		gelf_text(c, &pk->host, &r->host, &c->host_off);
	for (i = 0; i < 4; i++)
		if (pk->app[i].val != NULL) {
			gelf_text(c, &pk->app[i], &r->app, &c->app_off);
			break;
		}
	r->severity = pk->severity;
	r->has_event_time = pk->has_time;
	r->event_us = pk->time_us;
}

/*
 * The GELF object obj..end (scanned by parser_json(): valid, '{' to '}');
 * has_short: it has a "short_message".  Scratch gets the fields object
 * (at most the object's length) and the unescaped columns (at most as
 * much again).
 */
enum parser_rc
parser_gelf(struct pctx *c, const char *obj, const char *end, bool has_short)
{
	struct gpicks pk;
	struct gmember m;
	const char *p;
	char *d, *d0;

	if (buf_reserve(c->sc, 2 * (size_t)(end - obj) + 2) == -1)
		return PARSER_NOMEM;
	memset(&pk, 0, sizeof(pk));
	pk.severity = -1;
	d = d0 = c->sc->data + c->sc->len;
	*d++ = '{';
	p = parser_json_ws(obj + 1, end);
	while (*p == '"') {
		p = gelf_read(p, end, &m);
		if (gelf_pick(&pk, &m, has_short)) {
			if (d != d0 + 1)
				*d++ = ',';
			d += gelf_member(d, &m);
		}
		if (*p == ',')
			p = parser_json_ws(p + 1, end);
	}
	*d++ = '}';
	c->rec->message.ptr = obj;
	c->rec->message.len = (size_t)(end - obj);
	if (d != d0 + 2) {
		c->fields_off = c->sc->len;
		c->rec->fields.len = (size_t)(d - d0);
		c->sc->len += c->rec->fields.len;
	}
	gelf_columns(c, &pk);
	return PARSER_OK;
}
