/*
 * parser_logfmt: logfmt lines (`level=warn msg="disk full" host=db1`), as
 * written by Go's log/slog TextHandler, logrus' TextFormatter, go-kit,
 * log15/Grafana and the Heroku router.
 *
 * Grammar (the go-logfmt encoder's output, read strictly so that free text
 * is not mistaken for it):
 *   line   = token *(1*WSP token) *WSP
 *   token  = key [ "=" value ]              ; a bare key means true
 *   key    = (ALPHA / "_") *(ALPHA / DIGIT / "_" / "." / "-"); the
 *            line's first key starts with a lowercase letter or "_"
 *   value  = *bare-char / DQUOTE *qchar DQUOTE
 *   bare-char = any byte above SP except DQUOTE and "="
 *   qchar  = any byte from SP up except DQUOTE and "\", or an escape:
 *            \" \\ \/ \a \b \f \n \r \t \v, \xHH, \uHHHH, \UHHHHHHHH
 *            (strconv.Quote and go-logfmt); an unknown escape is kept
 *            as written
 * A line is logfmt only if it matches the grammar and, counting tokens:
 * at least 2 have a value, at every bare key more tokens so far had one
 * than are bare (so the first token has a value; a sentence with a few
 * "=" in it fails at its first word after them), and one of msg,
 * message, level, lvl, severity or at has one.
 * Sentences with an "=" in them ("set x=1 done", "WHERE a=1", URLs with
 * query strings) fail one of these; tests/data/plain_lines.txt holds the
 * lines that must stay plain text.
 *
 * The columns, as for JSON lines (parser_json.c), first present wins and
 * the last of duplicate keys:
 *   message  <- message, msg (unescaped; none: the whole line)
 *   severity <- level, lvl, severity, at (level names as for JSON)
 *   event    <- time, timestamp, ts (RFC 3339, or epoch seconds)
 *   host     <- host, hostname
 *   app      <- app, service
 * fields is a JSON object of every token as a string (bare keys: true),
 * in line order, the mapped keys included.
 *
 * A syslog message whose MSG is logfmt (parser_logfmt_msg()) keeps the
 * columns of its header; only message and fields come from the logfmt.
 * Its first key must be one of those logfmt writers put first (time, ts,
 * t, timestamp, level, lvl, severity, at, msg, message).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "logsink/utf8.h"
#include "parser_int.h"

/*
 * Byte classes, one lookup per byte (the scan is most of a line's cost):
 * LF_K1 may start a key, LF_KC may follow, LF_BARE may be in an unquoted
 * value, LF_QUOTED in a quoted one without ending it or starting an
 * escape, LF_K0 may start the line's first key.
 */
#define LF_K1     0x1
#define LF_KC     0x2
#define LF_BARE   0x4
#define LF_QUOTED 0x8
#define LF_K0     0x10
#define LF_ALPHA(c)                                                            \
	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || (c) == '_')
#define LF_DIGITISH(c) (((c) >= '0' && (c) <= '9') || (c) == '.' || (c) == '-')
#define LF_CLS(c)                                                              \
	((LF_ALPHA(c) ? LF_K1 | LF_KC : 0) | (LF_DIGITISH(c) ? LF_KC : 0) |    \
	    (((c) >= 'a' && (c) <= 'z') || (c) == '_' ? LF_K0 : 0) |           \
	    ((c) > 0x20 && (c) != '"' && (c) != '=' ? LF_BARE : 0) |           \
	    ((c) >= 0x20 && (c) != '"' && (c) != '\\' ? LF_QUOTED : 0))
#define LF_ROW(c)                                                              \
	LF_CLS(c), LF_CLS(c + 1), LF_CLS(c + 2), LF_CLS(c + 3), LF_CLS(c + 4), \
	    LF_CLS(c + 5), LF_CLS(c + 6), LF_CLS(c + 7), LF_CLS(c + 8),        \
	    LF_CLS(c + 9), LF_CLS(c + 10), LF_CLS(c + 11), LF_CLS(c + 12),     \
	    LF_CLS(c + 13), LF_CLS(c + 14), LF_CLS(c + 15)
static const unsigned char lf_key[256] = { LF_ROW(0), LF_ROW(16), LF_ROW(32),
	LF_ROW(48), LF_ROW(64), LF_ROW(80), LF_ROW(96), LF_ROW(112),
	LF_ROW(128), LF_ROW(144), LF_ROW(160), LF_ROW(176), LF_ROW(192),
	LF_ROW(208), LF_ROW(224), LF_ROW(240) };

/* The keys mapped to columns. */
enum lkey {
	LK_MESSAGE,
	LK_MSG,
	LK_LEVEL,
	LK_LVL,
	LK_SEVERITY,
	LK_AT,
	LK_TIME,
	LK_TIMESTAMP,
	LK_TS,
	LK_HOST,
	LK_HOSTNAME,
	LK_APP,
	LK_SERVICE,
	LK_COUNT,
	LK_NONE = LK_COUNT,
};

/* One token: key, and value without its quotes (val NULL: bare key). */
struct ltok {
	const char *key, *val;
	size_t klen, vlen;
	bool quoted, esc; /* esc: the quoted value holds a backslash */
};

/* Tokens lf_scan() keeps for lf_fields(), which scans again past that. */
#define LF_CACHE 24

struct lpicks {
	unsigned have; /* bit k: v[k] is set */
	struct ltok v[LK_COUNT];
	struct ltok tok[LF_CACHE];
	size_t ntok; /* all of them are in tok[] if ntok <= LF_CACHE */
};

static bool
lf_ws(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Parses the token at p (a key-start byte) into *t.  Returns the byte
 * after it (the end or a separator), or NULL if p does not hold a token.
 */
static const char *
lf_token(const char *p, const char *end, struct ltok *t)
{
	t->key = p;
	t->val = NULL;
	t->quoted = t->esc = false;
	while (++p < end && (lf_key[(unsigned char)*p] & LF_KC))
		;
	t->klen = (size_t)(p - t->key);
	if (p == end || lf_ws(*p))
		return p;
	if (*p++ != '=')
		return NULL;
	t->val = p;
	if (p < end && *p == '"') {
		t->quoted = true;
		t->val = ++p;
		for (;;) {
			while (
			    p < end && (lf_key[(unsigned char)*p] & LF_QUOTED))
				p++;
			if (p == end || *p == '"')
				break;
			if (*p != '\\' || ++p == end)
				return NULL; /* a control byte, or a final '\\'
					      */
			t->esc = true;
			p++;
		}
		if (p == end)
			return NULL;
		t->vlen = (size_t)(p++ - t->val);
	} else {
		while (p < end && (lf_key[(unsigned char)*p] & LF_BARE))
			p++;
		t->vlen = (size_t)(p - t->val);
	}
	return p == end || lf_ws(*p) ? p : NULL;
}

/* Maps a key to the column it feeds. */
static enum lkey
lf_keyid(const char *k, size_t n)
{
#define K(s, id)                                                               \
	if (n == sizeof(s) - 1 && memcmp(k, s, n) == 0)                        \
		return id;
	switch (n) {
	case 2:
		K("ts", LK_TS);
		K("at", LK_AT);
		break;
	case 3:
		K("msg", LK_MSG);
		K("lvl", LK_LVL);
		K("app", LK_APP);
		break;
	case 4:
		K("time", LK_TIME);
		K("host", LK_HOST);
		break;
	case 5:
		K("level", LK_LEVEL);
		break;
	case 7:
		K("message", LK_MESSAGE);
		K("service", LK_SERVICE);
		break;
	case 8:
		K("severity", LK_SEVERITY);
		K("hostname", LK_HOSTNAME);
		break;
	case 9:
		K("timestamp", LK_TIMESTAMP);
		break;
	}
	return LK_NONE;
#undef K
}

/*
 * The length of the key p..end starts with when '=' follows, as a logfmt
 * line must (else 0), the key
 * starting with a lowercase letter or '_' (every logfmt writer starts
 * with time=, ts=, t=, level=, at= or msg=; most syslog messages start
 * with a capital and fail at once).  Most text fails here within its
 * first word, before any other work.
 */
static inline size_t
lf_maybe(const char *p, const char *end)
{
	const char *q = p;

	if (p == end || !(lf_key[(unsigned char)*p] & LF_K0))
		return 0;
	for (q++; q < end && (lf_key[(unsigned char)*q] & LF_KC); q++)
		;
	return q < end && *q == '=' ? (size_t)(q - p) : 0;
}

/*
 * Checks the whole line (lf_maybe() true) against the grammar and the detection
 * rule (see the top of the file), noting the mapped keys in *pk.
 */
static bool
lf_scan(const char *p, const char *end, struct lpicks *pk)
{
	size_t pairs = 0, bare = 0;
	bool anchor = false;
	struct ltok t;
	enum lkey k;

	while (end > p && lf_ws(end[-1]))
		end--;
	pk->have = 0;
	pk->ntok = 0;
	while (p < end) {
		if ((lf_key[(unsigned char)*p] & LF_K1) == 0 ||
		    (p = lf_token(p, end, &t)) == NULL)
			return false;
		if (pk->ntok < LF_CACHE)
			pk->tok[pk->ntok] = t;
		pk->ntok++;
		if (t.val == NULL) {
			if (++bare >= pairs)
				return false; /* text with a few "=" in it */
		} else {
			pairs++;
			if ((k = lf_keyid(t.key, t.klen)) != LK_NONE) {
				pk->v[k] = t;
				pk->have |= 1u << k;
				anchor |= k <= LK_AT;
			}
		}
		while (p < end && lf_ws(*p))
			p++;
	}
	return anchor && pairs >= 2;
}

/* Value of one hex digit, or -1. */
static int
lf_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* n (at most 8) hex digits at p as a number, or -1. */
static int64_t
lf_hexn(const char *p, const char *end, int n)
{
	int64_t v = 0;
	int i, h;

	if (end - p < n)
		return -1;
	for (i = 0; i < n; i++) {
		if ((h = lf_hex(p[i])) < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* The byte a one-letter escape stands for, or -1 if it is not one. */
static int
lf_short_escape(char c)
{
	static const char from[] = "\"\\/abfnrtv";
	static const char to[] = "\"\\/\a\b\f\n\r\t\v";
	const char *q = c != '\0' ? strchr(from, c) : NULL;

	return q != NULL ? to[q - from] : -1;
}

/*
 * Decodes the escape at p (a backslash, not the last byte) into the bytes
 * b (at most 4) and returns how many input bytes it took; *bn is the
 * number of bytes.  NUL, surrogates and code points past U+10FFFF become
 * U+FFFD; \xHH is that byte; an unknown escape stands for itself.
 */
static size_t
lf_escape(const char *p, const char *end, char *b, size_t *bn)
{
	int64_t cp;
	int c;

	if ((c = lf_short_escape(p[1])) >= 0) {
		b[0] = (char)c;
		*bn = 1;
		return 2;
	}
	if (p[1] == 'x' && (cp = lf_hexn(p + 2, end, 2)) >= 0) {
		if (cp == 0) {
			*bn = utf8_put(b, 0xFFFD);
			return 4;
		}
		b[0] = (char)cp;
		*bn = 1;
		return 4;
	}
	if ((p[1] == 'u' && (cp = lf_hexn(p + 2, end, 4)) >= 0) ||
	    (p[1] == 'U' && (cp = lf_hexn(p + 2, end, 8)) >= 0)) {
		if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) ||
		    cp > UTF8_MAX_CP)
			cp = 0xFFFD;
		*bn = utf8_put(b, (uint32_t)cp);
		return p[1] == 'u' ? 6 : 10;
	}
	memcpy(b, p, 2);
	*bn = 2;
	return 2;
}

/* Copies n bytes of s to d, JSON-escaped when json; returns the length. */
static size_t
lf_copy(char *d, const char *s, size_t n, bool json)
{
	if (json)
		return parser_json_escape(d, s, n);
	memcpy(d, s, n);
	return n;
}

/*
 * Writes the value bytes p..end to d: unescaped when esc, and then, when
 * json, escaped as the body of a JSON string (at most
 * PARSER_JSON_ESCAPE_MAX(end - p) bytes; unescaped alone, at most
 * end - p).  Returns the length written.
 */
static size_t
lf_put(char *d, const char *p, const char *end, bool esc, bool json)
{
	char *d0 = d, b[4];
	const char *q;
	size_t n, bn;

	while (p < end) {
		q = esc ? memchr(p, '\\', (size_t)(end - p)) : NULL;
		n = (size_t)((q != NULL ? q : end) - p);
		d += lf_copy(d, p, n, json);
		if ((p += n) == end)
			break;
		p += lf_escape(p, end, b, &bn);
		d += lf_copy(d, b, bn, json);
	}
	return (size_t)(d - d0);
}

/* Writes token t as a member of the fields object at d (first: no ", "). */
static size_t
lf_field(char *d, const struct ltok *t, bool first)
{
	char *d0 = d;

	if (!first) {
		memcpy(d, ", ", 2);
		d += 2;
	}
	*d++ = '"';
	memcpy(d, t->key, t->klen);
	d += t->klen;
	if (t->val == NULL) {
		memcpy(d, "\": true", 7);
		return (size_t)(d + 7 - d0);
	}
	memcpy(d, "\": \"", 4);
	d += 4;
	d += lf_put(d, t->val, t->val + t->vlen, t->esc, true);
	*d++ = '"';
	return (size_t)(d - d0);
}

/*
 * Writes the fields object {"key": "value", "bare": true, ...} of the
 * (scanned, valid) line p..end at d, from the tokens lf_scan() kept when
 * it could keep them all; returns its length.
 */
static size_t
lf_fields(char *d, const char *p, const char *end, const struct lpicks *pk)
{
	char *d0 = d;
	struct ltok t;
	size_t i;

	*d++ = '{';
	if (pk->ntok <= LF_CACHE) {
		for (i = 0; i < pk->ntok; i++)
			d += lf_field(d, &pk->tok[i], i == 0);
		*d++ = '}';
		return (size_t)(d - d0);
	}
	while (end > p && lf_ws(end[-1]))
		end--;
	while (p < end) {
		p = lf_token(p, end, &t);
		d += lf_field(d, &t, d == d0 + 1);
		while (p < end && lf_ws(*p))
			p++;
	}
	*d++ = '}';
	return (size_t)(d - d0);
}

/* The first present of the keys ks[0..n-1], or NULL. */
static const struct ltok *
lf_first(const struct lpicks *pk, const enum lkey *ks, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (pk->have & (1u << ks[i]))
			return &pk->v[ks[i]];
	return NULL;
}

/*
 * Points *t at the text of value v: in place without escapes, else
 * unescaped into scratch (room reserved by the caller) at *off.
 */
static void
lf_text(struct pctx *c, const struct ltok *v, struct text *t, size_t *off)
{
	if (!v->esc) {
		t->ptr = v->val;
		t->len = v->vlen;
		return;
	}
	*off = c->sc->len;
	t->ptr = NULL; /* set from *off at the end of parser_parse() */
	t->len = lf_put(
	    c->sc->data + c->sc->len, v->val, v->val + v->vlen, true, false);
	c->sc->len += t->len;
}

/* Event time of a value: epoch seconds (digits, '.') or RFC 3339. */
static bool
lf_time(const struct ltok *v, int64_t *us)
{
	size_t i;

	if (v->esc || v->vlen == 0)
		return false;
	for (i = 0; i < v->vlen; i++)
		if ((v->val[i] < '0' || v->val[i] > '9') && v->val[i] != '.')
			return parser_rfc3339(v->val, v->vlen, us);
	return parser_json_epoch(v->val, v->vlen, us);
}

/* The severity, event time, host and app columns. */
static void
lf_columns(struct pctx *c, const struct lpicks *pk)
{
	static const enum lkey sev_k[] = { LK_LEVEL, LK_LVL, LK_SEVERITY,
		LK_AT };
	static const enum lkey time_k[] = { LK_TIME, LK_TIMESTAMP, LK_TS };
	static const enum lkey host_k[] = { LK_HOST, LK_HOSTNAME };
	static const enum lkey app_k[] = { LK_APP, LK_SERVICE };
	struct record *r = c->rec;
	const struct ltok *v;

	if ((v = lf_first(pk, sev_k, 4)) != NULL && !v->esc)
		r->severity = parser_level_name(v->val, v->vlen);
	if ((v = lf_first(pk, time_k, 3)) != NULL)
		r->has_event_time = lf_time(v, &r->event_us);
	if ((v = lf_first(pk, host_k, 2)) != NULL && v->vlen > 0)
		lf_text(c, v, &r->host, &c->host_off);
	if ((v = lf_first(pk, app_k, 2)) != NULL && v->vlen > 0)
		lf_text(c, v, &r->app, &c->app_off);
}

/*
 * Decodes the logfmt line msg..msg+len into fields and message and, when
 * columns, the other columns.  PARSER_NOMATCH (nothing touched) if it is
 * not logfmt by the rule above.
 */
static enum parser_rc
lf_parse(struct pctx *c, const char *msg, size_t len, bool columns)
{
	static const enum lkey msg_k[] = { LK_MESSAGE, LK_MSG };
	const char *end = msg + len;
	const struct ltok *m;
	struct lpicks pk;
	size_t off;

	if (!lf_scan(msg, end, &pk))
		return PARSER_NOMATCH;
	if (buf_reserve(c->sc, PARSER_JSON_ESCAPE_MAX(len) + 16 + len) == -1)
		return PARSER_NOMEM;
	off = c->sc->len;
	c->rec->fields.len = lf_fields(c->sc->data + off, msg, end, &pk);
	c->rec->fields.ptr = NULL;
	c->fields_off = off;
	c->sc->len += c->rec->fields.len;
	c->rec->message.ptr = msg;
	c->rec->message.len = len;
	if ((m = lf_first(&pk, msg_k, 2)) != NULL)
		lf_text(c, m, &c->rec->message, &c->message_off);
	if (columns)
		lf_columns(c, &pk);
	return PARSER_OK;
}

/* A whole message that is logfmt: every column it names. */
enum parser_rc
parser_logfmt(struct pctx *c, const char *msg, size_t len)
{
	if (!lf_maybe(msg, msg + len))
		return PARSER_NOMATCH;
	return lf_parse(c, msg, len, true);
}

/*
 * The MSG part of a parsed syslog message (c->rec's header columns stay)
 * when it is logfmt, the message has no structured data and the MSG
 * starts with one of the keys logfmt writers put first (time, ts, t,
 * timestamp, level, lvl, severity, at, msg, message): so that the many
 * syslog messages that start "word=..." cost one word.  Fields and
 * message from it.  PARSER_NOMATCH leaves the record as it was.
 */
enum parser_rc
parser_logfmt_msg(struct pctx *c)
{
	struct record *r = c->rec;
	enum lkey k;
	size_t n;

	if (r->fields.ptr != NULL || c->fields_off != PARSER_NOOFF ||
	    r->message.ptr == NULL ||
	    (n = lf_maybe(r->message.ptr, r->message.ptr + r->message.len)) ==
		0)
		return PARSER_NOMATCH;
	k = lf_keyid(r->message.ptr, n);
	if (k > LK_TS && !(n == 1 && r->message.ptr[0] == 't'))
		return PARSER_NOMATCH;
	return lf_parse(c, r->message.ptr, r->message.len, false);
}
