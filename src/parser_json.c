/*
 * parser_json: JSON lines (one JSON object per message) and JSON string
 * escaping for the other parsers.
 *
 * The scanner validates RFC 8259 without allocating: one recursive pass
 * over the object that also notes where the few top-level keys we map to
 * columns are.  Nesting is limited to JSON_MAX_DEPTH; deeper input is
 * treated as not JSON (plain), which also bounds our stack use.
 *
 * The object text goes to the "fields" column (jsonb).  PostgreSQL rejects
 * the escapes \u0000 and unpaired UTF-16 surrogates, so when the scanner
 * sees one the object is copied to scratch with each such escape replaced
 * by \ufffd (same length); a single odd client must not make the database
 * reject a whole batch.  Invalid UTF-8 is left to the COPY encoder.
 *
 * Numbers that PostgreSQL's numeric cannot hold (huge exponents) make the
 * line plain for the same reason.
 *
 * Top-level keys mapped to columns, first present wins:
 *   message  <- message, msg, log (a string is unescaped; other values
 *               keep their JSON text; none: the whole line)
 *   severity <- level, severity (names, 0..7, pino levels 10..60)
 *   event    <- time, timestamp, @timestamp, ts (RFC 3339 or epoch number)
 *   host     <- host, hostname (strings only)
 * Keys are matched verbatim (a key written with escapes never matches).
 * GELF objects (see parser_json()) are mapped by parser_gelf.c instead.
 * With duplicate keys the last one wins, as in jsonb.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "logsink/utf8.h"
#include "parser_int.h"

#define JSON_MAX_DEPTH 64

/* Scanner flags, per string and OR-ed per object (parser_int.h). */
#define JF_ESC PARSER_JF_ESC
#define JF_BAD PARSER_JF_BAD /* \u0000, lone surrogate */

/* The top-level keys we map to columns. */
enum jkey {
	JK_MESSAGE,
	JK_MSG,
	JK_LOG,
	JK_LEVEL,
	JK_SEVERITY,
	JK_TIME,
	JK_TIMESTAMP,
	JK_ATTIMESTAMP,
	JK_TS,
	JK_HOST,
	JK_HOSTNAME,
	JK_VERSION,       /* GELF detection */
	JK_SHORT_MESSAGE, /* GELF detection */
	JK_FULL_MESSAGE,  /* GELF detection */
	JK_COUNT,
	JK_NONE = JK_COUNT,
};

/* A top-level value: raw JSON text (strings with their quotes). */
struct jval {
	const char *p; /* NULL if the key is absent */
	size_t n;
	unsigned flags;
};

struct jpicks {
	struct jval v[JK_COUNT];
};

static const char *json_value(const char *, const char *, int, unsigned *);

/* Skips RFC 8259 whitespace (section 2: space, tab, LF, CR). */
static const char *
json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int
hexval(unsigned char c)
{
	if ((unsigned)(c - '0') <= 9)
		return c - '0';
	c |= 0x20;
	if ((unsigned)(c - 'a') <= 5)
		return c - 'a' + 10;
	return -1;
}

/* Four hex digits at p as 0..0xffff, or -1. */
static int32_t
hex4(const char *p)
{
	int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]),
	    d = hexval(p[3]);

	if ((a | b | c | d) < 0)
		return -1;
	return a << 12 | b << 8 | c << 4 | d;
}

/*
 * Decodes the \uXXXX escape at p, joined with the low surrogate escape
 * that must follow a high one (RFC 8259 section 7).  Returns the bytes
 * consumed (6 or 12; 0 if the hex is malformed) and sets *cp to the code
 * point, or to -1 when PostgreSQL would reject the escape: \u0000, a lone
 * high surrogate (then only its 6 bytes are consumed) or a lone low one.
 */
static int
u_escape(const char *p, const char *end, int32_t *cp)
{
	int32_t hi, lo;

	if (end - p < 6 || (hi = hex4(p + 2)) < 0)
		return 0;
	*cp = -1;
	if (hi == 0 || (hi >= 0xdc00 && hi <= 0xdfff))
		return 6;
	if (hi < 0xd800 || hi > 0xdbff) {
		*cp = hi;
		return 6;
	}
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
		return 6;
	lo = hex4(p + 8);
	if (lo < 0xdc00 || lo > 0xdfff)
		return 6;
	*cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	return 12;
}

/*
 * Scans the string whose opening quote is at p (RFC 8259 section 7).
 * Returns the byte after the closing quote, or NULL if the string is
 * unterminated, holds a raw control character or a bad escape.
 */
static const char *
json_string(const char *p, const char *end, unsigned *flags)
{
	int32_t cp;
	int n;

	for (p++; p < end;) {
		while (p < end && *p != '"' && *p != '\\' &&
		    (unsigned char)*p >= 0x20)
			p++;
		if (p == end || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '"')
			return p + 1;
		*flags |= JF_ESC;
		if (end - p < 2)
			return NULL;
		if (p[1] != 'u') {
			if (p[1] == '\0' || strchr("\"\\/bfnrt", p[1]) == NULL)
				return NULL;
			p += 2;
			continue;
		}
		if ((n = u_escape(p, end, &cp)) == 0)
			return NULL;
		if (cp < 0)
			*flags |= JF_BAD;
		p += n;
	}
	return NULL;
}

static const char *
digits(const char *p, const char *end)
{
	while (p < end && (unsigned)(*p - '0') <= 9)
		p++;
	return p;
}

/* What json_number() learnt about a number, for numeric_fits(). */
struct jnum {
	int64_t msd;   /* decimal position of the first nonzero digit */
	int64_t nfrac; /* digits written after the point */
	int64_t exp;   /* exponent, clamped to +-1e10 */
	bool zero;     /* no nonzero digit */
};

/*
 * True if PostgreSQL's numeric, and so jsonb, can store the number
 * (checked against PostgreSQL 15 numeric.c): an exponent below INT_MAX/2,
 * at most 16383 digits after the point (dscale: written zeros count too)
 * and, unless it is zero, the first digit at most 131071 places before
 * the point.  jsonb rejects the whole object otherwise ("value overflows
 * numeric format"), and one such line must not fail a batch.
 */
static bool
numeric_fits(const struct jnum *n)
{
	if (n->exp >= 1073741823 || n->exp <= -1073741823)
		return false;
	if (n->nfrac - n->exp > 16383)
		return false;
	return n->zero || n->msd + n->exp <= 131071;
}

/* Parses an exponent's digits at p..q into *exp, clamped to +-1e10. */
static void
json_exponent(const char *p, const char *q, bool neg, int64_t *exp)
{
	for (*exp = 0; p < q; p++)
		if (*exp < INT64_C(10000000000))
			*exp = *exp * 10 + (*p - '0');
	if (neg)
		*exp = -*exp;
}

/*
 * Scans a number (RFC 8259 section 6).  NULL if malformed, or if jsonb
 * could not store it (see numeric_fits()).
 */
static const char *
json_number(const char *p, const char *end)
{
	struct jnum n = { 0, 0, 0, true };
	const char *q, *z;
	bool neg;

	if (p < end && *p == '-')
		p++;
	if (p == end || (unsigned)(*p - '0') > 9)
		return NULL;
	q = *p == '0' ? p + 1 : digits(p, end);
	if (*p != '0') {
		n.msd = q - p - 1;
		n.zero = false;
	}
	if ((p = q) < end && *p == '.') {
		if ((q = digits(p + 1, end)) == p + 1)
			return NULL;
		n.nfrac = q - p - 1;
		for (z = p + 1; n.zero && z < q; z++)
			if (*z != '0') {
				n.msd = -(z - p);
				n.zero = false;
			}
		p = q;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		neg = ++p < end && *p == '-';
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if ((q = digits(p, end)) == p)
			return NULL;
		json_exponent(p, q, neg, &n.exp);
		p = q;
	}
	return numeric_fits(&n) ? p : NULL;
}

static const char *
json_literal(const char *p, const char *end, const char *lit, size_t n)
{
	if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

/* Maps a top-level key (without escapes) to the column it feeds. */
static enum jkey
json_key(const char *k, size_t n)
{
#define K(s, id)                                                               \
	if (n == sizeof(s) - 1 && memcmp(k, s, n) == 0)                        \
		return id;
	switch (n) {
	case 2:
		K("ts", JK_TS);
		break;
	case 3:
		K("msg", JK_MSG);
		K("log", JK_LOG);
		break;
	case 4:
		K("time", JK_TIME);
		K("host", JK_HOST);
		break;
	case 5:
		K("level", JK_LEVEL);
		break;
	case 7:
		K("message", JK_MESSAGE);
		K("version", JK_VERSION);
		break;
	case 8:
		K("severity", JK_SEVERITY);
		K("hostname", JK_HOSTNAME);
		break;
	case 9:
		K("timestamp", JK_TIMESTAMP);
		break;
	case 10:
		K("@timestamp", JK_ATTIMESTAMP);
		break;
	case 12:
		K("full_message", JK_FULL_MESSAGE);
		break;
	case 13:
		K("short_message", JK_SHORT_MESSAGE);
		break;
	}
	return JK_NONE;
#undef K
}

/*
 * Scans the object at p ('{') at nesting depth depth (RFC 8259 section 4).
 * When picks is not NULL (the top level), remembers the values of the keys
 * that feed columns.  Returns the byte after '}' or NULL.
 */
static const char *
json_object(const char *p, const char *end, int depth, unsigned *flags,
    struct jpicks *picks)
{
	const char *key, *val;
	unsigned kf, vf;
	size_t klen;
	enum jkey k;

	if (depth > JSON_MAX_DEPTH)
		return NULL;
	if ((p = json_ws(p + 1, end)) < end && *p == '}')
		return p + 1;
	for (;;) {
		kf = vf = 0;
		key = p;
		if (p == end || *p != '"' ||
		    (p = json_string(p, end, &kf)) == NULL)
			return NULL;
		klen = (size_t)(p - key - 2);
		if ((p = json_ws(p, end)) == end || *p != ':')
			return NULL;
		val = p = json_ws(p + 1, end);
		if ((p = json_value(p, end, depth, &vf)) == NULL)
			return NULL;
		*flags |= kf | vf;
		if (picks != NULL && !(kf & JF_ESC) &&
		    (k = json_key(key + 1, klen)) != JK_NONE) {
			picks->v[k].p = val;
			picks->v[k].n = (size_t)(p - val);
			picks->v[k].flags = vf;
		}
		if ((p = json_ws(p, end)) == end)
			return NULL;
		if (*p == '}')
			return p + 1;
		if (*p != ',')
			return NULL;
		p = json_ws(p + 1, end);
	}
}

/* Scans the array at p ('[') at nesting depth depth. */
static const char *
json_array(const char *p, const char *end, int depth, unsigned *flags)
{
	if (depth > JSON_MAX_DEPTH)
		return NULL;
	if ((p = json_ws(p + 1, end)) < end && *p == ']')
		return p + 1;
	for (;;) {
		if ((p = json_value(p, end, depth, flags)) == NULL)
			return NULL;
		if ((p = json_ws(p, end)) == end)
			return NULL;
		if (*p == ']')
			return p + 1;
		if (*p != ',')
			return NULL;
		p = json_ws(p + 1, end);
	}
}

/* Scans any value at p, inside a container at depth depth. */
static const char *
json_value(const char *p, const char *end, int depth, unsigned *flags)
{
	if (p == end)
		return NULL;
	switch (*p) {
	case '{':
		return json_object(p, end, depth + 1, flags, NULL);
	case '[':
		return json_array(p, end, depth + 1, flags);
	case '"':
		return json_string(p, end, flags);
	case 't':
		return json_literal(p, end, "true", 4);
	case 'f':
		return json_literal(p, end, "false", 5);
	case 'n':
		return json_literal(p, end, "null", 4);
	default:
		return json_number(p, end);
	}
}

/* The byte a one-letter escape (RFC 8259 section 7) stands for. */
static char
short_unescape(char c)
{
	switch (c) {
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	default:
		return c; /* '"', '\\', '/' */
	}
}

/*
 * Unescapes the body of a scanned (valid) string, p..end without quotes,
 * into d, which has room for end - p bytes (unescaping never grows the
 * text).  Escapes jsonb would reject become U+FFFD, so the text column
 * never receives a NUL.  Returns the length written.
 */
static size_t
json_unescape(char *d, const char *p, const char *end)
{
	char *d0 = d;
	const char *q;
	int32_t cp;

	while (p < end) {
		if ((q = memchr(p, '\\', (size_t)(end - p))) == NULL)
			q = end;
		memcpy(d, p, (size_t)(q - p));
		d += q - p;
		if ((p = q) == end)
			break;
		if (p[1] != 'u') {
			*d++ = short_unescape(p[1]);
			p += 2;
			continue;
		}
		p += u_escape(p, end, &cp);
		d += utf8_put(d, cp < 0 ? 0xFFFD : (uint32_t)cp);
	}
	return (size_t)(d - d0);
}

/*
 * Copies the scanned (valid) JSON text p..end to d with every escape that
 * jsonb rejects replaced by \ufffd.  Backslashes only occur inside strings
 * in valid JSON, so no string tracking is needed.  Same length as input.
 */
static size_t
json_fix_escapes(char *d, const char *p, const char *end)
{
	char *d0 = d;
	const char *q;
	int32_t cp;
	int n;

	while (p < end) {
		if ((q = memchr(p, '\\', (size_t)(end - p))) == NULL)
			q = end;
		memcpy(d, p, (size_t)(q - p));
		d += q - p;
		if ((p = q) == end)
			break;
		n = p[1] == 'u' ? u_escape(p, end, &cp) : 2;
		if (p[1] == 'u' && cp < 0)
			memcpy(d, "\\ufffd", 6);
		else
			memcpy(d, p, (size_t)n);
		d += n;
		p += n;
	}
	return (size_t)(d - d0);
}

/* Bytes copied as they are into a JSON string, one lookup per byte (RFC
 * 5424 structured data's hot loop, docs/performance.md). */
#define JSON_PLAIN(c) ((c) >= 0x20 && (c) != '"' && (c) != '\\')
#define JSON_ROW(c)                                                            \
	JSON_PLAIN(c), JSON_PLAIN(c + 1), JSON_PLAIN(c + 2),                   \
	    JSON_PLAIN(c + 3), JSON_PLAIN(c + 4), JSON_PLAIN(c + 5),           \
	    JSON_PLAIN(c + 6), JSON_PLAIN(c + 7), JSON_PLAIN(c + 8),           \
	    JSON_PLAIN(c + 9), JSON_PLAIN(c + 10), JSON_PLAIN(c + 11),         \
	    JSON_PLAIN(c + 12), JSON_PLAIN(c + 13), JSON_PLAIN(c + 14),        \
	    JSON_PLAIN(c + 15)
static const bool json_plain[256] = { JSON_ROW(0), JSON_ROW(16), JSON_ROW(32),
	JSON_ROW(48), JSON_ROW(64), JSON_ROW(80), JSON_ROW(96), JSON_ROW(112),
	JSON_ROW(128), JSON_ROW(144), JSON_ROW(160), JSON_ROW(176),
	JSON_ROW(192), JSON_ROW(208), JSON_ROW(224), JSON_ROW(240) };

/*
 * Escapes n bytes of src as the body of a JSON string into dst, which has
 * room for PARSER_JSON_ESCAPE_MAX(n) bytes: '"' and '\\' get a backslash,
 * control characters become \n etc. or \u00XX, and NUL (which jsonb
 * rejects, even escaped) becomes \ufffd.  Other bytes, including invalid
 * UTF-8, are copied.  Returns the length written.
 */
size_t
parser_json_escape(char *dst, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src, *end = s + n;
	char *d = dst;

	for (; s < end; s++) {
		if (json_plain[*s]) {
			*d++ = (char)*s;
			continue;
		}
		*d++ = '\\';
		switch (*s) {
		case '"':
		case '\\':
			*d++ = (char)*s;
			break;
		case '\n':
			*d++ = 'n';
			break;
		case '\r':
			*d++ = 'r';
			break;
		case '\t':
			*d++ = 't';
			break;
		case '\0':
			memcpy(d, "ufffd", 5);
			d += 5;
			break;
		default:
			memcpy(d, "u00", 3);
			d[3] = hex[*s >> 4];
			d[4] = hex[*s & 0xf];
			d += 5;
		}
	}
	return (size_t)(d - dst);
}

static bool
ascii_ieq(const char *a, size_t n, const char *b)
{
	size_t i;

	if (strlen(b) != n)
		return false;
	for (i = 0; i < n; i++)
		if ((a[i] | 0x20) != b[i])
			return false;
	return true;
}

/*
 * Severity from a level name (case-insensitive; log15's "eror" and "dbug"
 * too) or one digit 0..7, as written in a string.  -1 if unknown.  Shared
 * by JSON, GELF and logfmt.
 */
int
parser_level_name(const char *s, size_t n)
{
	static const struct {
		const char *name;
		int sev;
	} names[] = { { "emerg", 0 }, { "emergency", 0 }, { "panic", 0 },
		{ "alert", 1 }, { "crit", 2 }, { "critical", 2 },
		{ "fatal", 2 }, { "err", 3 }, { "error", 3 }, { "eror", 3 },
		{ "warn", 4 }, { "warning", 4 }, { "notice", 5 }, { "info", 6 },
		{ "information", 6 }, { "debug", 7 }, { "dbug", 7 },
		{ "trace", 7 } };
	size_t i;

	if (n == 1 && (unsigned)(*s - '0') <= 7)
		return *s - '0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (ascii_ieq(s, n, names[i].name))
			return names[i].sev;
	return -1;
}

/*
 * Severity from a level name or digit string (parser_level_name()), or a
 * number: 0..7 are syslog severities; 10..60 in steps of 10 are the
 * pino/bunyan levels (trace 10, debug 20, info 30, warn 40, error 50,
 * fatal 60).  -1 if unknown.
 */
static int
json_severity_of(const struct jval *v)
{
	static const signed char pino[7] = { -1, 7, 7, 6, 4, 3, 2 };
	const char *s = v->p;
	size_t n = v->n;

	if (*s == '"')
		return parser_level_name(s + 1, n - 2);
	if (n == 1 && (unsigned)(*s - '0') <= 7)
		return *s - '0';
	if (n == 2 && *s >= '1' && *s <= '6' && s[1] == '0')
		return pino[*s - '0'];
	return -1;
}

/*
 * Event time from a JSON number of seconds since the epoch with optional
 * fraction (no sign, no exponent).  Magnitudes above 1e11 are
 * milliseconds; as an extension above 1e14 microseconds and above 1e17
 * nanoseconds.
 */
bool
parser_json_epoch(const char *p, size_t n, int64_t *us)
{
	const char *end = p + n;
	int64_t ip = 0, fr = 0;
	int nd = 0, fd = 0;

	for (; p < end && (unsigned)(*p - '0') <= 9; p++, nd++) {
		if (ip > (INT64_MAX - (*p - '0')) / 10)
			return false;
		ip = ip * 10 + (*p - '0');
	}
	if (nd == 0)
		return false;
	if (p < end && *p == '.') {
		for (p++; p < end && (unsigned)(*p - '0') <= 9; p++) {
			if (fd < 6) {
				fr = fr * 10 + (*p - '0');
				fd++;
			}
		}
	}
	if (p != end)
		return false;
	for (; fd < 6; fd++)
		fr *= 10;
	if (ip > INT64_C(100000000000000000))
		*us = ip / 1000;
	else if (ip > INT64_C(100000000000000))
		*us = ip;
	else if (ip > INT64_C(100000000000))
		*us = ip * 1000 + fr / 1000;
	else
		*us = ip * 1000000 + fr;
	return parser_event_in_range(*us);
}

/* The first present of the keys in ks[0..n-1], or NULL. */
static const struct jval *
first_of(const struct jpicks *pk, const enum jkey *ks, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (pk->v[ks[i]].p != NULL)
			return &pk->v[ks[i]];
	return NULL;
}

/*
 * Points *t at the text of string value v: in place when it has no
 * escapes, else unescaped into scratch (room reserved by the caller) and
 * recorded in *off.
 */
static void
json_text(struct pctx *c, const struct jval *v, struct text *t, size_t *off)
{
	if (!(v->flags & JF_ESC)) {
		t->ptr = v->p + 1;
		t->len = v->n - 2;
		return;
	}
	*off = c->sc->len;
	t->ptr = NULL; /* set from *off at the end of parser_parse() */
	t->len =
	    json_unescape(c->sc->data + c->sc->len, v->p + 1, v->p + v->n - 1);
	c->sc->len += t->len;
}

/* The scalar columns: severity, event time, host. */
static void
json_columns(struct pctx *c, const struct jpicks *pk)
{
	static const enum jkey sev_k[] = { JK_LEVEL, JK_SEVERITY };
	static const enum jkey time_k[] = { JK_TIME, JK_TIMESTAMP,
		JK_ATTIMESTAMP, JK_TS };
	static const enum jkey host_k[] = { JK_HOST, JK_HOSTNAME };
	struct record *r = c->rec;
	const struct jval *v;

	if ((v = first_of(pk, sev_k, 2)) != NULL)
		r->severity = json_severity_of(v);
	if ((v = first_of(pk, time_k, 4)) != NULL) {
		if (v->p[0] == '"')
			r->has_event_time = !(v->flags & JF_ESC) &&
			    parser_rfc3339(v->p + 1, v->n - 2, &r->event_us);
		else
			r->has_event_time =
			    parser_json_epoch(v->p, v->n, &r->event_us);
	}
	if ((v = first_of(pk, host_k, 2)) != NULL && v->p[0] == '"')
		json_text(c, v, &r->host, &c->host_off);
}

/*
 * Scratch needed for one object: the rewritten object if it has escapes
 * jsonb rejects, plus the unescaped message and host strings.
 */
static size_t
json_scratch_need(const struct jval *msg, const struct jval *host,
    size_t objlen, unsigned flags)
{
	size_t need = flags & JF_BAD ? objlen : 0;

	if (msg != NULL && (msg->flags & JF_ESC))
		need += msg->n;
	if (host != NULL && (host->flags & JF_ESC))
		need += host->n;
	return need;
}

/*
 * JSON lines: if msg (after leading whitespace) is exactly one valid JSON
 * object, fills fields (the object), message (message/msg/log, else the
 * whole line), severity, event time and host.  An object with a string
 * "version" and a "short_message" or "full_message" is GELF and mapped
 * by parser_gelf().  Otherwise PARSER_NOMATCH.
 */
enum parser_rc
parser_json(struct pctx *c, const char *msg, size_t len)
{
	static const enum jkey msg_k[] = { JK_MESSAGE, JK_MSG, JK_LOG };
	static const enum jkey host_k[] = { JK_HOST, JK_HOSTNAME };
	const char *end = msg + len, *obj = json_ws(msg, end), *q;
	const struct jval *m, *h;
	struct jpicks pk;
	unsigned flags = 0;
	size_t objlen;

	if (obj == end || *obj != '{')
		return PARSER_NOMATCH;
	memset(&pk, 0, sizeof(pk));
	q = json_object(obj, end, 1, &flags, &pk);
	if (q == NULL || json_ws(q, end) != end)
		return PARSER_NOMATCH;
	if (pk.v[JK_VERSION].p != NULL && pk.v[JK_VERSION].p[0] == '"' &&
	    (pk.v[JK_SHORT_MESSAGE].p != NULL ||
		pk.v[JK_FULL_MESSAGE].p != NULL))
		return parser_gelf(c, obj, q, pk.v[JK_SHORT_MESSAGE].p != NULL);
	objlen = (size_t)(q - obj);
	m = first_of(&pk, msg_k, 3);
	h = first_of(&pk, host_k, 2);
	if (buf_reserve(c->sc, json_scratch_need(m, h, objlen, flags)) == -1)
		return PARSER_NOMEM;
	c->rec->fields.ptr = obj;
	c->rec->fields.len = objlen;
	if (flags & JF_BAD) {
		c->fields_off = c->sc->len;
		c->sc->len +=
		    json_fix_escapes(c->sc->data + c->sc->len, obj, q);
	}
	c->rec->message.ptr = msg;
	c->rec->message.len = len;
	if (m != NULL && m->p[0] == '"')
		json_text(c, m, &c->rec->message, &c->message_off);
	else if (m != NULL) {
		c->rec->message.ptr = m->p;
		c->rec->message.len = m->n;
	}
	json_columns(c, &pk);
	return PARSER_OK;
}

/* Exported for parser_gelf.c (parser_int.h); see the static versions. */
const char *
parser_json_ws(const char *p, const char *end)
{
	return json_ws(p, end);
}

const char *
parser_json_string(const char *p, const char *end, unsigned *flags)
{
	return json_string(p, end, flags);
}

/* Scans the value of a member of a top-level object. */
const char *
parser_json_member_value(const char *p, const char *end, unsigned *flags)
{
	return json_value(p, end, 1, flags);
}

size_t
parser_json_unescape(char *d, const char *p, const char *end)
{
	return json_unescape(d, p, end);
}

size_t
parser_json_fix_escapes(char *d, const char *p, const char *end)
{
	return json_fix_escapes(d, p, end);
}
