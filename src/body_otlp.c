/*
 * body_otlp: OpenTelemetry logs over OTLP/HTTP (POST /v1/logs), the two
 * body decoders of body.h: body_otlp_proto (application/x-protobuf, an
 * ExportLogsServiceRequest) and body_otlp_json (application/json, its
 * OTLP/JSON form, body_otlp_json.c).  The .proto subset is proto/; the
 * specification is opentelemetry-proto docs/specification.md ("OTLP/HTTP").
 *
 * Whole-body decoders: nothing is consumed until the body is complete (at
 * most body_limits.max_body_bytes); then it is decoded at once into
 * protobuf-c structures and one record per LogRecord is emitted, resuming
 * after a stop.  The mapping (README "OpenTelemetry logs"):
 *
 *   resource attribute service.name -> app, host.name -> host
 *   severity_number 1-8 -> 7 (debug), 9-12 -> 6, 13-16 -> 4, 17-20 -> 3,
 *       21-24 -> 2; unset: severity_text if it is a level name
 *   body -> message: a string as is, any other value as its JSON text
 *   time_unix_nano, else observed_time_unix_nano (0: unset) -> event_time
 *   fields: {"attributes":{..},"resource":{..},"scope":{"name":..,
 *       "version":..,"attributes":{..}},"trace_id":"<hex>","span_id":
 *       "<hex>","severity_text":..,"severity_number":n,"flags":n,
 *       "event_name":..}, each member only when set
 *
 * Nested rather than flat with prefixes: attribute keys are kept exactly
 * (OpenTelemetry keys contain dots), a record attribute and a resource
 * attribute of the same name do not collide, and one containment query
 * selects on any part: fields @> '{"resource":{"service.namespace":"x"}}'.
 *
 * A record that cannot be stored (a trace_id not of 16 bytes, a span_id
 * not of 8, a time out of range, a record over max_entry_bytes) is refused
 * alone: the answer is an ExportLogsServiceResponse whose partial_success
 * counts it, in the request's encoding.
 *
 * Leaf module: no I/O, no logging, no globals.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "logsink/body.h"
#include "logsink/buf.h"
#include "logsink/record.h"
#include "body_otlp_int.h"
#include "parser_int.h"

#define OTLP_LOGS(name) OTLP(Logs__V1__##name)
#define OTLP_RESP       OTLP(Collector__Logs__V1__ExportLogsServiceResponse)
#define OTLP_PARTIAL    OTLP(Collector__Logs__V1__ExportLogsPartialSuccess)

/*
 * The allocator of one body: an arena.  protobuf-c makes one allocation
 * per string, array and message, and malloc/free were 55% of decoding
 * (callgrind, bench/otlp_decode: 35,700 instructions per SDK record);
 * blocks are cut from chunks (4 KiB, doubling up to 1 MiB; a bigger
 * block gets its own) and freed all at once with the body.  The chunks
 * count against mem_budget.
 */
#define OTLP_CHUNK_MIN (4 * 1024)
#define OTLP_CHUNK_MAX (1024 * 1024)
#define OTLP_ALIGN     16 /* max_align_t on the platforms we build on */

/* A chunk of the arena; the blocks follow the header. */
struct otlp_chunk {
	struct otlp_chunk *next;
	size_t size, used; /* bytes after the header */
	_Alignas(OTLP_ALIGN) unsigned char data[];
};

static void *
otlp_alloc(void *arg, size_t size)
{
	struct otlp *o = arg;
	struct otlp_chunk *c = o->chunks;
	size_t want, n = (size + OTLP_ALIGN - 1) & ~(size_t)(OTLP_ALIGN - 1);

	if (n < size) /* wrapped */
		return o->mem_refused = true, NULL;
	if (c == NULL || c->size - c->used < n) {
		want = o->chunk_next > n ? o->chunk_next : n;
		if (want > o->mem_budget - o->mem_used ||
		    (c = malloc(sizeof(*c) + want)) == NULL)
			return o->mem_refused = true, NULL;
		o->mem_used += want;
		c->size = want;
		c->used = 0;
		if (o->chunks != NULL && want == n &&
		    o->chunks->size - o->chunks->used >= OTLP_ALIGN) {
			/* a big block behind the current chunk */
			c->next = o->chunks->next;
			o->chunks->next = c;
		} else {
			c->next = o->chunks;
			o->chunks = c;
		}
		if (o->chunk_next < OTLP_CHUNK_MAX)
			o->chunk_next *= 2;
	}
	c->used += n;
	return c->data + c->used - n;
}

/* Blocks go with the arena (otlp_free). */
static void
otlp_release(void *arg, void *ptr)
{
	(void)arg;
	(void)ptr;
}

static void *
otlp_new(const struct body_limits *lim, bool json)
{
	struct otlp *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->json = json;
	o->lim = *lim;
	o->pa.alloc = otlp_alloc;
	o->pa.free = otlp_release;
	o->chunk_next = OTLP_CHUNK_MIN;
	o->pa.allocator_data = o;
	return o;
}

static void *
otlp_new_proto(const struct body_limits *lim)
{
	return otlp_new(lim, false);
}

static void *
otlp_new_json(const struct body_limits *lim)
{
	return otlp_new(lim, true);
}

static void
otlp_free(void *st)
{
	struct otlp *o = st;

	if (o == NULL)
		return;
	while (o->chunks != NULL) { /* req and all under it */
		struct otlp_chunk *c = o->chunks;

		o->chunks = c->next;
		free(c);
	}
	buf_free(&o->res_json);
	buf_free(&o->scope_json);
	buf_free(&o->sc);
	free(o);
}

void
otlp_reject(struct otlp *o, size_t ri, size_t si, size_t li, const char *why)
{
	if (o->rej.n++ == 0) {
		o->rej.why = why;
		o->rej.ri = ri;
		o->rej.si = si;
		o->rej.li = li;
	}
}

/* --- protobuf: a depth check before protobuf-c, then unpack --- */

/* Reads a varint (at most 10 bytes) at *p before end; false if cut short. */
static bool
pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	unsigned shift;

	for (shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		r |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* A message being walked by pb_check(): its type and where it ends. */
struct pb_frame {
	const ProtobufCMessageDescriptor *d;
	const uint8_t *end;
};

/*
 * Walks the wire format of buf[0..len) as an ExportLogsServiceRequest
 * with an explicit stack of at most cap nested messages (protobuf-c
 * unpacks recursively without a limit, and an AnyValue can nest as deep
 * as the body is long).  The descriptors say which length-delimited
 * fields are messages.  Returns NULL if fine, else the error reason.
 */
static const char *
pb_walk(struct pb_frame *st, int cap, const uint8_t *buf, size_t len)
{
	const ProtobufCFieldDescriptor *f;
	const uint8_t *p = buf;
	uint64_t tag, v;
	int top = 0;

	st[0].d =
	    &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
	st[0].end = buf + len;
	for (;;) {
		if (p == st[top].end) {
			if (top-- == 0)
				return NULL;
			continue;
		}
		if (!pb_varint(&p, st[top].end, &tag) || tag >> 3 == 0 ||
		    tag >> 3 > 0x1fffffff) /* field numbers are 29 bits */
			return "bad-protobuf";
		switch (tag & 7) {
		case 0: /* varint */
			if (!pb_varint(&p, st[top].end, &v))
				return "bad-protobuf";
			break;
		case 1: /* 64-bit */
		case 5: /* 32-bit */
			v = (tag & 7) == 1 ? 8 : 4;
			if (v > (uint64_t)(st[top].end - p))
				return "bad-protobuf";
			p += v;
			break;
		case 2: /* length-delimited: a message, or bytes to skip */
			if (!pb_varint(&p, st[top].end, &v) ||
			    v > (uint64_t)(st[top].end - p))
				return "bad-protobuf";
			f = protobuf_c_message_descriptor_get_field(
			    st[top].d, (unsigned)(tag >> 3));
			if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE) {
				p += v;
				break;
			}
			if (top + 1 >= cap)
				return "too-deep";
			top++;
			st[top].d = f->descriptor;
			st[top].end = p + v;
			break;
		default: /* groups (3, 4) are not proto3; 6, 7 do not exist */
			return "bad-protobuf";
		}
	}
}

/* pb_walk() with a stack of max_depth frames (the request is the first). */
static const char *
pb_check(const uint8_t *buf, size_t len, int max_depth)
{
	int cap = max_depth > 0 ? max_depth : 1;
	struct pb_frame *st = calloc((size_t)cap, sizeof(*st));
	const char *why;

	if (st == NULL)
		return "out-of-memory";
	why = pb_walk(st, cap, buf, len);
	free(st);
	return why;
}

static void
otlp_proto_decode(struct otlp *o, const char *buf, size_t len)
{
	ProtobufCMessage *m;

	if ((o->err = pb_check((const uint8_t *)buf, len, o->lim.max_depth)) !=
	    NULL)
		return;
	o->mem_budget = len * OTLP_MEM_FACTOR_PROTO + OTLP_MEM_SLACK;
	m = protobuf_c_message_unpack(
	    &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
	    &o->pa, len, (const uint8_t *)buf);
	if (m == NULL) {
		/* A wire type a known field does not have, or memory. */
		o->err = o->mem_refused ? "too-complex" : "bad-protobuf";
		return;
	}
	o->req = (OTLP_REQ *)(void *)m;
}

/* --- JSON text of values (fields, and a body that is not a string) --- */

/* A JSON writer into a buf; oom is sticky and checked once at the end. */
struct jw {
	struct buf *b;
	bool oom;
};

static void
jw_put(struct jw *w, const char *s, size_t n)
{
	if (!w->oom && buf_append(w->b, s, n) == -1)
		w->oom = true;
}

static void
jw_lit(struct jw *w, const char *s)
{
	jw_put(w, s, strlen(s));
}

/* A JSON string of s[0..n) (parser_json_escape(): NUL becomes U+FFFD). */
static void
jw_str(struct jw *w, const char *s, size_t n)
{
	if (w->oom || buf_reserve(w->b, PARSER_JSON_ESCAPE_MAX(n) + 2) == -1) {
		w->oom = true;
		return;
	}
	w->b->data[w->b->len++] = '"';
	w->b->len += parser_json_escape(w->b->data + w->b->len, s, n);
	w->b->data[w->b->len++] = '"';
}

static void
jw_cstr(struct jw *w, const char *s)
{
	jw_str(w, s, s != NULL ? strlen(s) : 0);
}

/* "key": */
static void
jw_key(struct jw *w, const char *k)
{
	jw_cstr(w, k);
	jw_put(w, ":", 1);
}

/* Decimal digits of v (snprintf was 8,500 instructions per SDK record). */
static void
jw_u64(struct jw *w, uint64_t v)
{
	char t[20];
	size_t i = sizeof(t);

	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	jw_put(w, t + i, sizeof(t) - i);
}

static void
jw_i64(struct jw *w, int64_t v)
{
	if (v < 0) {
		jw_put(w, "-", 1);
		jw_u64(w, (uint64_t)0 - (uint64_t)v); /* INT64_MIN too */
		return;
	}
	jw_u64(w, (uint64_t)v);
}

/*
 * A double as the shortest of %.15g and %.17g that reads back the same;
 * NaN and the infinities, which JSON lacks, as the strings proto3's JSON
 * mapping uses.
 */
static void
jw_double(struct jw *w, double v)
{
	char t[32];
	int n;

	if (isnan(v)) {
		jw_lit(w, "\"NaN\"");
		return;
	}
	if (isinf(v)) {
		jw_lit(w, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	if (v == trunc(v) && fabs(v) < 9007199254740992.0 && /* 2^53 */
	    !(v == 0 && signbit(v))) {
		jw_i64(w, (int64_t)v);
		return;
	}
	n = snprintf(t, sizeof(t), "%.15g", v);
	if (strtod(t, NULL) != v)
		n = snprintf(t, sizeof(t), "%.17g", v);
	jw_put(w, t, (size_t)n);
}

/* Bytes as a base64 string (RFC 4648 section 4), as proto3 JSON has them. */
static void
jw_base64(struct jw *w, const uint8_t *p, size_t n)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *d;
	size_t i;

	if (w->oom || buf_reserve(w->b, (n + 2) / 3 * 4 + 2) == -1) {
		w->oom = true;
		return;
	}
	d = w->b->data + w->b->len;
	*d++ = '"';
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t x =
		    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*d++ = a[x >> 18];
		*d++ = a[(x >> 12) & 63];
		*d++ = a[(x >> 6) & 63];
		*d++ = a[x & 63];
	}
	if (i < n) {
		uint32_t x = (uint32_t)p[i] << 16 |
		    (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		*d++ = a[x >> 18];
		*d++ = a[(x >> 12) & 63];
		*d++ = i + 1 < n ? a[(x >> 6) & 63] : '=';
		*d++ = '=';
	}
	*d++ = '"';
	w->b->len = (size_t)(d - w->b->data);
}

static void jw_kvlist(struct jw *, OTLP_KV *const *, size_t);

/*
 * An AnyValue as JSON: scalars as themselves, arrays and maps as arrays
 * and objects, bytes as base64, an empty value as null.  Recursion is
 * bounded by the depth check of the decoders.
 */
static void
jw_any(struct jw *w, const OTLP_ANY *v)
{
	size_t i;

	switch (v != NULL ? v->value_case : 0) {
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
		jw_cstr(w, v->string_value);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
		jw_lit(w, v->bool_value ? "true" : "false");
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
		jw_i64(w, v->int_value);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
		jw_double(w, v->double_value);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
		jw_base64(w, v->bytes_value.data, v->bytes_value.len);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
		jw_put(w, "[", 1);
		for (i = 0;
		     v->array_value != NULL && i < v->array_value->n_values;
		     i++) {
			if (i > 0)
				jw_put(w, ",", 1);
			jw_any(w, v->array_value->values[i]);
		}
		jw_put(w, "]", 1);
		break;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
		if (v->kvlist_value == NULL)
			jw_lit(w, "{}");
		else
			jw_kvlist(w, v->kvlist_value->values,
			    v->kvlist_value->n_values);
		break;
	default: /* unset, or a profiles string index */
		jw_lit(w, "null");
	}
}

/* Key/value pairs as a JSON object (a repeated key: jsonb keeps the last). */
static void
jw_kvlist(struct jw *w, OTLP_KV *const *kv, size_t n)
{
	size_t i;

	jw_put(w, "{", 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			jw_put(w, ",", 1);
		jw_key(w, kv[i]->key);
		jw_any(w, kv[i]->value);
	}
	jw_put(w, "}", 1);
}

static void
jw_hex(struct jw *w, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (w->oom || buf_reserve(w->b, 2 * n + 2) == -1) {
		w->oom = true;
		return;
	}
	w->b->data[w->b->len++] = '"';
	for (i = 0; i < n; i++) {
		w->b->data[w->b->len++] = hex[p[i] >> 4];
		w->b->data[w->b->len++] = hex[p[i] & 15];
	}
	w->b->data[w->b->len++] = '"';
}

/* --- the mapping --- */

/* A string attribute's value, or NULL (absent, not a string, empty). */
static const char *
kv_string(OTLP_KV *const *kv, size_t n, const char *key)
{
	size_t i;
	const char *s = NULL;

	for (i = 0; i < n; i++)
		if (strcmp(kv[i]->key, key) == 0 && kv[i]->value != NULL)
			s = kv[i]->value->value_case ==
				OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE
			    ? kv[i]->value->string_value
			    : NULL;
	return s != NULL && *s != '\0' ? s : NULL;
}

/* Renders the resource of resource_logs[o->ri]: app, host, "resource". */
static bool
res_prepare(struct otlp *o, const OTLP_LOGS(ResourceLogs) * rl)
{
	const OTLP(Resource__V1__Resource) *r = rl->resource;
	struct jw w = { &o->res_json, false };

	buf_reset(&o->res_json);
	o->app = o->host = NULL;
	if (r == NULL || r->n_attributes == 0)
		return true;
	o->app = kv_string(r->attributes, r->n_attributes, "service.name");
	o->host = kv_string(r->attributes, r->n_attributes, "host.name");
	jw_lit(&w, "\"resource\":");
	jw_kvlist(&w, r->attributes, r->n_attributes);
	return !w.oom;
}

/* Renders the scope of scope_logs[o->si]: "scope":{name,version,attrs}. */
static bool
scope_prepare(struct otlp *o, const OTLP_LOGS(ScopeLogs) * sl)
{
	const OTLP(Common__V1__InstrumentationScope) *s = sl->scope;
	struct jw w = { &o->scope_json, false };
	const char *sep = "";

	buf_reset(&o->scope_json);
	if (s == NULL ||
	    (*s->name == '\0' && *s->version == '\0' && s->n_attributes == 0))
		return true;
	jw_lit(&w, "\"scope\":{");
	if (*s->name != '\0') {
		jw_key(&w, "name");
		jw_cstr(&w, s->name);
		sep = ",";
	}
	if (*s->version != '\0') {
		jw_lit(&w, sep);
		jw_key(&w, "version");
		jw_cstr(&w, s->version);
		sep = ",";
	}
	if (s->n_attributes > 0) {
		jw_lit(&w, sep);
		jw_key(&w, "attributes");
		jw_kvlist(&w, s->attributes, s->n_attributes);
	}
	jw_put(&w, "}", 1);
	return !w.oom;
}

/*
 * OpenTelemetry severity number -> syslog severity, by groups of four:
 * TRACE 1-4 and DEBUG 5-8 -> 7, INFO -> 6, WARN -> 4, ERROR -> 3,
 * FATAL -> 2.  Unset or out of range: the severity text if it is a level
 * name ("INFO", "Warning", ...), else -1 (NULL).
 */
static int
otlp_severity(int num, const char *text)
{
	static const signed char by_four[6] = { 7, 7, 6, 4, 3, 2 };

	if (num >= 1 && num <= 24)
		return by_four[(num - 1) / 4];
	return *text != '\0' ? parser_level_name(text, strlen(text)) : -1;
}

/* fields: the record's attributes, resource, scope, ids and the rest. */
static void
rec_fields(struct otlp *o, struct jw *w, const OTLP_LOGS(LogRecord) * lr)
{
	const char *sep = "";

	jw_put(w, "{", 1);
	if (lr->n_attributes > 0) {
		jw_key(w, "attributes");
		jw_kvlist(w, lr->attributes, lr->n_attributes);
		sep = ",";
	}
	if (o->res_json.len > 0) {
		jw_lit(w, sep);
		jw_put(w, o->res_json.data, o->res_json.len);
		sep = ",";
	}
	if (o->scope_json.len > 0) {
		jw_lit(w, sep);
		jw_put(w, o->scope_json.data, o->scope_json.len);
		sep = ",";
	}
	if (lr->trace_id.len > 0) {
		jw_lit(w, sep);
		jw_key(w, "trace_id");
		jw_hex(w, lr->trace_id.data, lr->trace_id.len);
		sep = ",";
	}
	if (lr->span_id.len > 0) {
		jw_lit(w, sep);
		jw_key(w, "span_id");
		jw_hex(w, lr->span_id.data, lr->span_id.len);
		sep = ",";
	}
	if (*lr->severity_text != '\0') {
		jw_lit(w, sep);
		jw_key(w, "severity_text");
		jw_cstr(w, lr->severity_text);
		sep = ",";
	}
	if (lr->severity_number != 0) {
		jw_lit(w, sep);
		jw_key(w, "severity_number");
		jw_i64(w, lr->severity_number);
		sep = ",";
	}
	if (lr->flags != 0) {
		jw_lit(w, sep);
		jw_key(w, "flags");
		jw_u64(w, lr->flags);
		sep = ",";
	}
	if (*lr->event_name != '\0') {
		jw_lit(w, sep);
		jw_key(w, "event_name");
		jw_cstr(w, lr->event_name);
	}
	jw_put(w, "}", 1);
}

/*
 * Fills rec's parsed columns from lr and the caches of its resource and
 * scope; the message and fields are built in o->sc.  Returns NULL, or why
 * the record is refused.
 */
static const char *
rec_build(struct otlp *o, const OTLP_LOGS(LogRecord) * lr, struct record *rec)
{
	struct jw w = { &o->sc, false };
	const OTLP_ANY *body = lr->body;
	size_t mlen;
	uint64_t t;

	if (lr->trace_id.len != 0 && lr->trace_id.len != 16)
		return "trace_id is not 16 bytes";
	if (lr->span_id.len != 0 && lr->span_id.len != 8)
		return "span_id is not 8 bytes";
	record_clear_parsed(rec);
	t = lr->time_unix_nano != 0 ? lr->time_unix_nano
				    : lr->observed_time_unix_nano;
	if (t != 0) {
		rec->event_us = (int64_t)(t / 1000); /* < 2^54: no overflow */
		if (!parser_event_in_range(rec->event_us))
			return "time_unix_nano out of range";
		rec->has_event_time = true;
	}
	rec->severity = otlp_severity(lr->severity_number, lr->severity_text);
	buf_reset(&o->sc);
	if (body != NULL &&
	    body->value_case ==
		OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
		jw_lit(&w, body->string_value);
	else if (body != NULL &&
	    body->value_case !=
		OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET)
		jw_any(&w, body);
	mlen = o->sc.len;
	rec_fields(o, &w, lr);
	if (w.oom)
		return "out of memory";
	if (o->sc.len > o->lim.max_entry_bytes)
		return "log record over max-line-bytes";
	if (mlen > 0) {
		rec->message.ptr = o->sc.data;
		rec->message.len = mlen;
	}
	if (o->sc.len - mlen > 2) {
		rec->fields.ptr = o->sc.data + mlen;
		rec->fields.len = o->sc.len - mlen;
	}
	if (o->app != NULL) {
		rec->app.ptr = o->app;
		rec->app.len = strlen(o->app);
	}
	if (o->host != NULL) {
		rec->host.ptr = o->host;
		rec->host.len = strlen(o->host);
	}
	return NULL;
}

/*
 * Emits the records from (ri, si, li) on, until the end or until cb asks
 * to stop; the position is kept for the next call.
 */
static void
otlp_emit(struct otlp *o, body_record_cb cb, void *arg)
{
	const OTLP_REQ *req = o->req;
	struct record rec = { 0 };
	const char *why;

	for (; o->ri < req->n_resource_logs;
	     o->ri++, o->si = 0, o->res_ready = false) {
		const OTLP_LOGS(ResourceLogs) *rl = req->resource_logs[o->ri];

		if (!o->res_ready && !(o->res_ready = res_prepare(o, rl)))
			buf_reset(&o->res_json); /* OOM: without resource */
		for (; o->si < rl->n_scope_logs;
		     o->si++, o->li = 0, o->scope_ready = false) {
			const OTLP_LOGS(ScopeLogs) *sl = rl->scope_logs[o->si];

			if (!o->scope_ready &&
			    !(o->scope_ready = scope_prepare(o, sl)))
				buf_reset(&o->scope_json);
			while (o->li < sl->n_log_records) {
				size_t li = o->li++;

				why = rec_build(o, sl->log_records[li], &rec);
				if (why != NULL)
					otlp_reject(o, o->ri, o->si, li, why);
				else if (!cb(arg, &rec))
					return;
			}
		}
	}
	o->done = true;
}

/*
 * body_decoder.feed: nothing is consumed before end; then the whole body
 * is decoded and consumed, and the records are emitted (the next feeds,
 * after a stop, go on emitting).
 */
static size_t
otlp_feed(void *st, const char *buf, size_t len, bool end, size_t *need,
    body_record_cb cb, void *arg)
{
	struct otlp *o = st;

	if (o->err != NULL)
		return len;
	if (!o->decoded) {
		if (len > o->lim.max_body_bytes) {
			o->err = "body-too-large";
			return len;
		}
		if (!end) {
			*need = SIZE_MAX;
			return 0;
		}
		o->decoded = true;
		if (o->json)
			otlp_json_decode(o, buf, len);
		else
			otlp_proto_decode(o, buf, len);
		if (o->err != NULL)
			return len;
	}
	if (!o->done && o->req != NULL)
		otlp_emit(o, cb, arg);
	return len;
}

static const char *
otlp_error(const void *st)
{
	const struct otlp *o = st;

	return o->err;
}

static uint64_t
otlp_rejected(const void *st)
{
	const struct otlp *o = st;

	return o->rej.n;
}

/* The partial success text: how many, and the first one's place and why. */
static void
reject_text(const struct otlp *o, char *t, size_t cap)
{
	snprintf(t, cap,
	    "%" PRIu64 " log record%s refused; the first, %s[%zu].%s[%zu].%s"
	    "[%zu]: %s",
	    o->rej.n, o->rej.n == 1 ? "" : "s",
	    o->json ? "resourceLogs" : "resource_logs", o->rej.ri,
	    o->json ? "scopeLogs" : "scope_logs", o->rej.si,
	    o->json ? "logRecords" : "log_records", o->rej.li, o->rej.why);
}

/*
 * body_decoder.answer: an ExportLogsServiceResponse, empty on full
 * success, else with partial_success {rejected_log_records,
 * error_message}; protobuf or JSON as the request was.  The text is left
 * out if the answer would not fit in cap.
 */
static size_t
otlp_answer(const void *st, char *out, size_t cap, const char **content_type)
{
	const struct otlp *o = st;
	OTLP_RESP resp =
	    OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_SERVICE_RESPONSE__INIT;
	OTLP_PARTIAL ps =
	    OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_PARTIAL_SUCCESS__INIT;
	char text[256], esc[PARSER_JSON_ESCAPE_MAX(sizeof(text))];
	size_t n;
	int k;

	*content_type = o->json ? "application/json" : "application/x-protobuf";
	if (o->rej.n > 0)
		reject_text(o, text, sizeof(text));
	if (o->json) {
		if (o->rej.n == 0)
			k = snprintf(out, cap, "{}");
		else {
			n = parser_json_escape(esc, text, strlen(text));
			k = snprintf(out, cap,
			    "{\"partialSuccess\":{\"rejectedLogRecords\":"
			    "\"%" PRIu64 "\",\"errorMessage\":\"%.*s\"}}",
			    o->rej.n, (int)n, esc);
			if (k >= 0 && (size_t)k >= cap)
				k = snprintf(out, cap,
				    "{\"partialSuccess\":{"
				    "\"rejectedLogRecords\":"
				    "\"%" PRIu64 "\"}}",
				    o->rej.n);
		}
		return k >= 0 && (size_t)k < cap ? (size_t)k : 0;
	}
	if (o->rej.n == 0)
		return 0;
	ps.rejected_log_records =
	    o->rej.n > INT64_MAX ? INT64_MAX : (int64_t)o->rej.n;
	ps.error_message = text;
	resp.partial_success = &ps;
	if (protobuf_c_message_get_packed_size(&resp.base) > cap)
		ps.error_message = (char *)protobuf_c_empty_string;
	if ((n = protobuf_c_message_get_packed_size(&resp.base)) > cap)
		return 0;
	return protobuf_c_message_pack(&resp.base, (uint8_t *)out);
}

const struct body_decoder body_otlp_proto = {
	.name = "otlp-proto",
	.new = otlp_new_proto,
	.free = otlp_free,
	.feed = otlp_feed,
	.error = otlp_error,
	.answer = otlp_answer,
	.rejected = otlp_rejected,
};

const struct body_decoder body_otlp_json = {
	.name = "otlp-json",
	.new = otlp_new_json,
	.free = otlp_free,
	.feed = otlp_feed,
	.error = otlp_error,
	.answer = otlp_answer,
	.rejected = otlp_rejected,
};
