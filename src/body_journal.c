/*
 * body_journal: the Journal Export Format (systemd docs/
 * JOURNAL_EXPORT_FORMATS.md) that systemd-journal-upload POSTs to
 * /upload, decoded entry by entry into records (include/logsink/body.h).
 *
 * The format:
 *   - entries are separated by an empty line;
 *   - a text field is NAME=value LF (the value has no LF);
 *   - a binary field is NAME LF, a 64-bit little-endian length, that
 *     many bytes (any byte, LF and NUL too), LF;
 *   - NAME is 1..64 of A-Z, 0-9 and '_', not starting with a digit
 *     (journal_field_valid() in systemd); metadata fields start with
 *     "__" (__CURSOR, __REALTIME_TIMESTAMP, __MONOTONIC_TIMESTAMP, ...).
 *
 * Streaming: a chunked upload has no length, so the decoder consumes
 * every byte it is given into its own copy of the current entry and holds
 * at most one entry: lim->max_entry_bytes of names and values (plus
 * JOURNAL_FIELD_COST per field), and past that the first value of each
 * column field cut to JOURNAL_COLUMN_KEEP bytes.  A bigger entry is still
 * stored, not refused (refusing it would make journal-upload fail on it
 * at every run, and lose everything after it): the value that crosses the
 * limit is cut at a character boundary, later values are dropped (column
 * fields kept as just said), and fields gets "logsink_cut": the number of
 * bytes dropped.  A binary length is only counted down, never allocated;
 * one past JOURNAL_DATA_MAX (systemd's own DATA_SIZE_MAX) is an error.
 *
 * Mapping (README "journald upload"): MESSAGE -> message, _HOSTNAME ->
 * host, SYSLOG_IDENTIFIER (else _COMM) -> app, _PID (else SYSLOG_PID) ->
 * procid, MESSAGE_ID -> msgid, PRIORITY (0..7) -> severity,
 * SYSLOG_FACILITY (0..23) -> facility, __REALTIME_TIMESTAMP (us) ->
 * event_time.  The first occurrence of each feeds its column; a value
 * that does not fit the column (out of range, not a number, a host or
 * app over JOURNAL_COLUMN_MAX bytes) stays in fields instead.  Every
 * other field goes to fields, a JSON object of strings; a name repeated
 * in one entry becomes an array of its values in arrival order.
 *
 * Leaf module: no I/O, no logging, no globals.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/body.h"
#include "logsink/body_journal.h"
#include "logsink/buf.h"
#include "logsink/record.h"
#include "logsink/utf8.h"
#include "parser_int.h"

/* journal_field_valid(): at most 64 characters. */
#define JOURNAL_NAME_MAX     64
/* systemd's DATA_SIZE_MAX (journal-importer.h): the largest field. */
#define JOURNAL_DATA_MAX     (768u * 1024 * 1024)
/* What one field costs against max_entry_bytes beside its bytes. */
#define JOURNAL_FIELD_COST   16
/* Past the limit, a column field's first value keeps this much. */
#define JOURNAL_COLUMN_KEEP  256
/* has_repeat()'s table: entries of up to half as many fields skip the sort. */
#define JOURNAL_REPEAT_SLOTS 128
/* Longer host, app, procid or msgid values stay in fields. */
#define JOURNAL_COLUMN_MAX   255

enum jstate {
	J_LINE,    /* at the start of a line */
	J_NAME,    /* in a field name */
	J_TEXT,    /* in a text value, up to LF */
	J_BINLEN,  /* in the 8 length bytes of a binary field */
	J_BINDATA, /* in the bytes of a binary field */
	J_BINEND,  /* the LF after a binary field */
	J_ERROR,   /* bad input: consume everything */
	J_DONE,    /* the body ended */
};

/* The columns, in the order of the col_names table. */
enum jcol {
	JC_MESSAGE,
	JC_HOSTNAME,
	JC_IDENT,
	JC_COMM,
	JC_PID,
	JC_SYSLOG_PID,
	JC_MESSAGE_ID,
	JC_PRIORITY,
	JC_FACILITY,
	JC_REALTIME,
	JC_NONE,
};

#define COL(s)                                                                 \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}
static const struct {
	const char *name;
	size_t len;
} col_names[JC_NONE] = { COL("MESSAGE"), COL("_HOSTNAME"),
	COL("SYSLOG_IDENTIFIER"), COL("_COMM"), COL("_PID"), COL("SYSLOG_PID"),
	COL("MESSAGE_ID"), COL("PRIORITY"), COL("SYSLOG_FACILITY"),
	COL("__REALTIME_TIMESTAMP") };

/* One field of the entry being read: offsets into jdec.data. */
struct jfield {
	size_t name_off;
	size_t val_off;
	size_t val_len;
	unsigned char name_len;
	unsigned char col; /* enum jcol */
	bool used;         /* it fed a column */
};

/* A field of the fields text, for sorting by name, then by arrival. */
struct jkey {
	const char *name;
	size_t name_len;
	size_t idx; /* in jdec.f */
};

/* State of one request body; owned by the HTTP glue, freed by jd_free(). */
struct jdec {
	size_t max_entry;
	enum jstate st;
	const char *err;
	struct buf data;  /* the entry's names and values */
	struct buf json;  /* fields text of the entry being emitted */
	struct jfield *f; /* the entry's fields */
	size_t nf, capf;
	struct jkey *order; /* scratch for the fields text */
	size_t cap_order;
	size_t charged;     /* of max_entry */
	uint64_t cut_bytes; /* dropped from this entry */
	unsigned seen;      /* bit per enum jcol: a first value was kept */
	/* The field being read. */
	char name[JOURNAL_NAME_MAX];
	size_t name_len;
	size_t keep;     /* value bytes we may still store */
	uint64_t remain; /* binary bytes still to come */
	unsigned char lenbuf[8];
	size_t lenhave;
	bool dropping; /* the field is not stored at all */
	bool fcut;     /* bytes of the field's value were dropped */
	/* Counters for the glue. */
	uint64_t entries;
	uint64_t entries_cut;
};

static void *
jd_new(const struct body_limits *lim)
{
	struct jdec *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->max_entry = lim->max_entry_bytes;
	d->st = J_LINE;
	return d;
}

static void
jd_free(void *st)
{
	struct jdec *d = st;

	if (d == NULL)
		return;
	buf_free(&d->data);
	buf_free(&d->json);
	free(d->f);
	free(d->order);
	free(d);
}

static void
jd_fail(struct jdec *d, const char *why)
{
	d->st = J_ERROR;
	d->err = why;
}

/* A name byte: A-Z, 0-9, '_'. */
static bool
name_byte(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The column a field name feeds, or JC_NONE (by length first). */
static enum jcol
col_of(const char *name, size_t len)
{
	int i;

	for (i = 0; i < JC_NONE; i++)
		if (col_names[i].len == len &&
		    memcmp(col_names[i].name, name, len) == 0)
			return (enum jcol)i;
	return JC_NONE;
}

static void
entry_reset(struct jdec *d)
{
	d->data.len = 0;
	d->nf = 0;
	d->charged = 0;
	d->cut_bytes = 0;
	d->seen = 0;
}

/*
 * The name is complete: decides how much of its value is stored (keep),
 * or that the field is dropped, and opens the field.  -1: out of memory.
 */
static int
field_open(struct jdec *d)
{
	enum jcol col = col_of(d->name, d->name_len);
	size_t cost = d->name_len + JOURNAL_FIELD_COST;
	bool first_col = col != JC_NONE && !(d->seen & (1u << col));
	struct jfield *jf;

	d->dropping = false;
	d->fcut = false;
	if (d->charged + cost < d->max_entry) {
		d->keep = d->max_entry - d->charged - cost;
		d->charged += cost;
	} else if (first_col) {
		d->keep = 0;
	} else {
		d->dropping = true;
		d->cut_bytes += d->name_len;
		return 0;
	}
	if (first_col && d->keep < JOURNAL_COLUMN_KEEP)
		d->keep = JOURNAL_COLUMN_KEEP; /* the bounded extra */
	if (d->nf == d->capf) {
		size_t n = d->capf ? d->capf * 2 : 32;
		struct jfield *nfp = reallocarray(d->f, n, sizeof(*nfp));

		if (nfp == NULL)
			return -1;
		d->f = nfp;
		d->capf = n;
	}
	if (buf_append(&d->data, d->name, d->name_len) == -1)
		return -1;
	if (col != JC_NONE)
		d->seen |= 1u << col;
	jf = &d->f[d->nf++];
	jf->name_off = d->data.len - d->name_len;
	jf->name_len = (unsigned char)d->name_len;
	jf->val_off = d->data.len;
	jf->val_len = 0;
	jf->col = (unsigned char)col;
	jf->used = false;
	return 0;
}

/* Value bytes of the open field; past keep they are counted as cut. */
static int
field_bytes(struct jdec *d, const char *p, size_t n)
{
	size_t k;

	if (d->dropping) {
		d->cut_bytes += n;
		return 0;
	}
	k = n < d->keep ? n : d->keep;
	if (buf_append(&d->data, p, k) == -1)
		return -1;
	d->f[d->nf - 1].val_len += k;
	d->keep -= k;
	if (d->charged + k <= d->max_entry)
		d->charged += k;
	else
		d->charged = d->max_entry;
	if (k < n) {
		d->cut_bytes += n - k;
		d->fcut = true;
	}
	return 0;
}

/*
 * Where a cut value ends without splitting a character: before a lead
 * byte in the last three whose sequence the cut left incomplete.
 */
static size_t
trim_partial(const char *p, size_t n)
{
	size_t k;

	for (k = 1; k <= 3 && k <= n; k++) {
		unsigned char c = (unsigned char)p[n - k];

		if (!utf8_is_cont(c))
			return utf8_lead_len(c) > k ? n - k : n;
	}
	return n;
}

/* The field's value ended; a cut value loses a split character. */
static void
field_close(struct jdec *d)
{
	struct jfield *jf;
	size_t n;

	d->st = J_LINE;
	if (d->dropping || !d->fcut)
		return;
	jf = &d->f[d->nf - 1];
	n = trim_partial(d->data.data + jf->val_off, jf->val_len);
	d->cut_bytes += jf->val_len - n;
	d->data.len -= jf->val_len - n;
	jf->val_len = n;
}

/* Decimal digits only, at most max, without overflow: true and *v. */
static bool
parse_u64(const char *p, size_t n, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0 || n > 20)
		return false;
	for (i = 0; i < n; i++) {
		unsigned dg = (unsigned char)p[i] - '0';

		if (dg > 9 || dg > max || x > (max - dg) / 10)
			return false;
		x = x * 10 + dg;
	}
	*v = x;
	return true;
}

static struct text
val_text(const struct jdec *d, const struct jfield *jf)
{
	struct text t = { d->data.data + jf->val_off, jf->val_len };

	return t;
}

/*
 * Feeds the column of the first occurrence of each column field if its
 * value fits, marking the field used; app and procid take their second
 * choice only without the first.
 */
static void
map_columns(struct jdec *d, struct record *r)
{
	struct jfield *first[JC_NONE] = { 0 };
	struct jfield *jf;
	uint64_t v;
	size_t i;

	for (i = 0; i < d->nf; i++)
		if (d->f[i].col != JC_NONE && first[d->f[i].col] == NULL)
			first[d->f[i].col] = &d->f[i];
	if ((jf = first[JC_MESSAGE]) != NULL) {
		r->message = val_text(d, jf);
		jf->used = true;
	}
	for (i = JC_HOSTNAME; i <= JC_MESSAGE_ID; i++) {
		struct text *col = i == JC_HOSTNAME ? &r->host
		    : i <= JC_COMM                  ? &r->app
		    : i <= JC_SYSLOG_PID            ? &r->procid
						    : &r->msgid;

		if ((jf = first[i]) == NULL || col->ptr != NULL ||
		    jf->val_len > JOURNAL_COLUMN_MAX || jf->val_len == 0)
			continue;
		*col = val_text(d, jf);
		jf->used = true;
	}
	if ((jf = first[JC_PRIORITY]) != NULL &&
	    parse_u64(d->data.data + jf->val_off, jf->val_len, 7, &v)) {
		r->severity = (int)v;
		jf->used = true;
	}
	if ((jf = first[JC_FACILITY]) != NULL &&
	    parse_u64(d->data.data + jf->val_off, jf->val_len, 23, &v)) {
		r->facility = (int)v;
		jf->used = true;
	}
	if ((jf = first[JC_REALTIME]) != NULL &&
	    parse_u64(d->data.data + jf->val_off, jf->val_len, INT64_MAX, &v) &&
	    parser_event_in_range((int64_t)v)) {
		r->event_us = (int64_t)v;
		r->has_event_time = true;
		jf->used = true;
	}
}

static int
cmp_key(const void *a, const void *b)
{
	const struct jkey *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	if (x->name_len != y->name_len)
		return x->name_len < y->name_len ? -1 : 1;
	return x->idx < y->idx ? -1 : 1;
}

static bool
same_key(const struct jkey *x, const struct jkey *y)
{
	return x->name_len == y->name_len &&
	    memcmp(x->name, y->name, x->name_len) == 0;
}

/*
 * Whether a name occurs twice in k[0..n): a small open-addressing table
 * (FNV-1a), so that the usual entry, without repeats, keeps its arrival
 * order and needs no sort (a quarter of the decoder's time).
 */
static bool
has_repeat(const struct jkey *k, size_t n)
{
	short slot[JOURNAL_REPEAT_SLOTS];
	size_t i, j;

	if (n > JOURNAL_REPEAT_SLOTS / 2)
		return true;
	memset(slot, 0xff, sizeof(slot));
	for (i = 0; i < n; i++) {
		uint32_t h = 2166136261u;

		for (j = 0; j < k[i].name_len; j++)
			h = (h ^ (unsigned char)k[i].name[j]) * 16777619u;
		for (h %= JOURNAL_REPEAT_SLOTS; slot[h] >= 0;
		     h = (h + 1) % JOURNAL_REPEAT_SLOTS)
			if (same_key(&k[slot[h]], &k[i]))
				return true;
		slot[h] = (short)i;
	}
	return false;
}

/* A JSON string; room reserved by the caller. */
static void
put_string(struct buf *b, const char *p, size_t n)
{
	b->data[b->len++] = '"';
	b->len += parser_json_escape(b->data + b->len, p, n);
	b->data[b->len++] = '"';
}

/* ,"logsink_cut":"N" */
static void
put_cut(struct buf *b, uint64_t v)
{
	char num[24];
	size_t k = 0;

	do
		num[sizeof(num) - 1 - k++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	if (b->len > 1)
		buf_put(b, ",", 1);
	buf_put(b, "\"logsink_cut\":\"", 15);
	buf_put(b, num + sizeof(num) - k, k);
	buf_put(b, "\"", 1);
}

/*
 * The fields that fed no column, into d->order, sorted by name (then
 * arrival) if a name repeats; *n: how many.
 * *need: the fields text's worst-case length.  -1: out of memory.
 */
static int
sort_unused(struct jdec *d, size_t *n, size_t *need)
{
	size_t i;

	*n = 0;
	*need = 64;
	if (d->nf > d->cap_order) {
		struct jkey *o = reallocarray(d->order, d->nf, sizeof(*o));

		if (o == NULL)
			return -1;
		d->order = o;
		d->cap_order = d->nf;
	}
	for (i = 0; i < d->nf; i++) {
		const struct jfield *jf = &d->f[i];

		if (jf->used)
			continue;
		d->order[*n].name = d->data.data + jf->name_off;
		d->order[*n].name_len = jf->name_len;
		d->order[(*n)++].idx = i;
		*need += jf->name_len + 8 + PARSER_JSON_ESCAPE_MAX(jf->val_len);
	}
	if (has_repeat(d->order, *n))
		qsort(d->order, *n, sizeof(*d->order), cmp_key);
	return 0;
}

/*
 * The fields text: one member per name of the fields that fed no column
 * (in arrival order, or sorted by name when a name repeats: jsonb keeps
 * its own order anyway), an array for a repeated name, and "logsink_cut"
 * for a cut entry.  -1: out of memory.
 */
static int
build_fields(struct jdec *d, struct record *r)
{
	struct buf *b = &d->json;
	size_t n, need, i, j, k;

	if (sort_unused(d, &n, &need) == -1)
		return -1;
	if (n == 0 && d->cut_bytes == 0)
		return 0;
	b->len = 0;
	if (buf_reserve(b, need) == -1)
		return -1;
	buf_put(b, "{", 1);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && same_key(&d->order[i], &d->order[j]);
		     j++)
			;
		if (b->len > 1)
			buf_put(b, ",", 1);
		put_string(b, d->order[i].name, d->order[i].name_len);
		buf_put(b, j - i > 1 ? ":[" : ":", j - i > 1 ? 2 : 1);
		for (k = i; k < j; k++) {
			const struct jfield *jf = &d->f[d->order[k].idx];

			if (k > i)
				buf_put(b, ",", 1);
			put_string(b, d->data.data + jf->val_off, jf->val_len);
		}
		if (j - i > 1)
			buf_put(b, "]", 1);
	}
	if (d->cut_bytes > 0)
		put_cut(b, d->cut_bytes);
	buf_put(b, "}", 1);
	r->fields.ptr = b->data;
	r->fields.len = b->len;
	return 0;
}

/*
 * The entry is complete: maps it and hands it to cb (an empty entry, from
 * extra empty lines, is skipped).  Returns cb's answer (true if skipped).
 */
static bool
entry_emit(struct jdec *d, body_record_cb cb, void *arg)
{
	struct record r;
	bool go;

	if (d->nf == 0 && d->cut_bytes == 0)
		return true;
	memset(&r, 0, sizeof(r));
	record_clear_parsed(&r);
	map_columns(d, &r);
	if (build_fields(d, &r) == -1) {
		jd_fail(d, "out-of-memory");
		return false;
	}
	d->entries++;
	if (d->cut_bytes > 0)
		d->entries_cut++;
	go = cb(arg, &r);
	entry_reset(d);
	return go;
}

/* J_LINE and J_NAME: one name byte (or the LF ending the entry). */
static int
step_name(
    struct jdec *d, unsigned char c, body_record_cb cb, void *arg, bool *stop)
{
	if (d->st == J_LINE && c == '\n') {
		*stop = !entry_emit(d, cb, arg);
		return 0;
	}
	if (d->st == J_LINE)
		d->name_len = 0;
	if (c == '=' || c == '\n') {
		if (d->name_len == 0 ||
		    (d->name[0] >= '0' && d->name[0] <= '9')) {
			jd_fail(d, "bad-field-name");
			return 0;
		}
		if (field_open(d) == -1)
			return -1;
		d->st = c == '=' ? J_TEXT : J_BINLEN;
		d->lenhave = 0;
		return 0;
	}
	if (!name_byte(c) || d->name_len == JOURNAL_NAME_MAX) {
		jd_fail(d, "bad-field-name");
		return 0;
	}
	d->name[d->name_len++] = (char)c;
	d->st = J_NAME;
	return 0;
}

/* J_NAME: takes the name bytes that follow, up to the name's limit. */
static size_t
name_run(struct jdec *d, const char *p, size_t n)
{
	size_t k = 0, room = JOURNAL_NAME_MAX - d->name_len;

	while (k < n && k < room && name_byte((unsigned char)p[k]))
		k++;
	memcpy(d->name + d->name_len, p, k);
	d->name_len += k;
	return k;
}

/* J_BINLEN: one length byte; the last one checks the length. */
static void
step_binlen(struct jdec *d, unsigned char c)
{
	uint64_t v = 0;
	int i;

	d->lenbuf[d->lenhave++] = c;
	if (d->lenhave < 8)
		return;
	for (i = 7; i >= 0; i--)
		v = v << 8 | d->lenbuf[i];
	if (v > JOURNAL_DATA_MAX) {
		jd_fail(d, "bad-binary-length");
		return;
	}
	d->remain = v;
	d->st = v > 0 ? J_BINDATA : J_BINEND;
}

/*
 * The body ended: the last entry needs no empty line after it, and its
 * last text field no LF; a body ending inside a name or a binary field
 * is an error.
 */
static void
jd_end(struct jdec *d, body_record_cb cb, void *arg)
{
	if (d->st == J_TEXT)
		field_close(d);
	if (d->st != J_LINE) {
		jd_fail(d, "truncated-entry");
		return;
	}
	(void)entry_emit(d, cb, arg);
	if (d->st != J_ERROR)
		d->st = J_DONE;
}

static size_t
jd_feed(void *st, const char *buf, size_t len, bool end, size_t *need,
    body_record_cb cb, void *arg)
{
	struct jdec *d = st;
	size_t pos = 0;
	bool stop = false;

	*need = 1;
	if (d->st == J_ERROR || d->st == J_DONE)
		return len;
	while (pos < len && !stop && d->st != J_ERROR) {
		const char *p = buf + pos, *lf;
		size_t n = len - pos, take;

		switch (d->st) {
		case J_LINE:
		case J_NAME:
			take = d->st == J_NAME ? name_run(d, p, n) : 0;
			if (take > 0) {
				pos += take;
				break;
			}
			if (step_name(d, (unsigned char)*p, cb, arg, &stop) ==
			    -1)
				goto nomem;
			pos++;
			break;
		case J_TEXT:
			lf = memchr(p, '\n', n);
			take = lf != NULL ? (size_t)(lf - p) : n;
			if (field_bytes(d, p, take) == -1)
				goto nomem;
			pos += take;
			if (lf != NULL) {
				field_close(d);
				pos++;
			}
			break;
		case J_BINLEN:
			step_binlen(d, (unsigned char)*p);
			pos++;
			break;
		case J_BINDATA:
			take = n < d->remain ? n : (size_t)d->remain;
			if (field_bytes(d, p, take) == -1)
				goto nomem;
			d->remain -= take;
			pos += take;
			if (d->remain == 0)
				d->st = J_BINEND;
			break;
		case J_BINEND:
			if (*p != '\n') {
				jd_fail(d, "bad-binary-field");
				break;
			}
			field_close(d);
			pos++;
			break;
		default:
			abort();
		}
	}
	if (d->st == J_ERROR)
		return len;
	if (stop && pos == len && end && d->st == J_LINE && d->nf == 0)
		d->st = J_DONE; /* nothing left to emit */
	if (stop || pos < len)
		return pos;
	if (end)
		jd_end(d, cb, arg);
	return len;
nomem:
	jd_fail(d, "out-of-memory");
	return len;
}

static const char *
jd_error(const void *st)
{
	const struct jdec *d = st;

	return d->err;
}

/*
 * What systemd-journal-remote answers (journal-remote-main.c
 * process_http_upload(): 202 "OK."); journal-upload takes any 2xx and
 * only logs the text.
 */
static size_t
jd_answer(const void *st, char *out, size_t cap, const char **content_type)
{
	static const char ok[] = "OK.\n";

	(void)st;
	*content_type = "text/plain";
	if (cap < sizeof(ok) - 1)
		return 0;
	memcpy(out, ok, sizeof(ok) - 1);
	return sizeof(ok) - 1;
}

/* Journal entries are never refused one by one: a bad one fails the body. */
static uint64_t
jd_rejected(const void *st)
{
	(void)st;
	return 0;
}

uint64_t
body_journal_entries(const void *st)
{
	return ((const struct jdec *)st)->entries;
}

uint64_t
body_journal_entries_cut(const void *st)
{
	return ((const struct jdec *)st)->entries_cut;
}

const struct body_decoder body_journal = {
	.name = "journal",
	.new = jd_new,
	.free = jd_free,
	.feed = jd_feed,
	.error = jd_error,
	.answer = jd_answer,
	.rejected = jd_rejected,
};
