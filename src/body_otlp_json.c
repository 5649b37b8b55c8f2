/*
 * body_otlp_json: an OTLP/JSON body (opentelemetry-proto
 * docs/specification.md "JSON Protobuf Encoding") turned into the
 * protobuf-c structures of an ExportLogsServiceRequest, so that both
 * encodings share body_otlp.c's mapping.  The encoding is proto3's JSON
 * mapping with lowerCamelCase keys, except that traceId and spanId are
 * hex strings and enums are integers; 64-bit integers come as decimal
 * strings or numbers; unknown keys are ignored.
 *
 * json-c parses the body (json_tokener_new_ex(max_depth) bounds the
 * nesting, JSON_TOKENER_STRICT rejects what RFC 8259 does); its tree is
 * estimated before parsing and refused over the budget (json-c takes no
 * allocator).  A value that does not fit its field inside a log record
 * refuses that record (partial success); anywhere else the body is
 * "bad-json".
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <protobuf-c/protobuf-c.h>

#include "body_otlp_int.h"

#define OTLP_LR     OTLP(Logs__V1__LogRecord)
#define OTLP_SL     OTLP(Logs__V1__ScopeLogs)
#define OTLP_RL     OTLP(Logs__V1__ResourceLogs)
#define ANY_CASE(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x

/*
 * The estimated cost of json-c's tree (json-c 0.16 on 64-bit): an object
 * is its json_object and a 16-entry hash table (~800 bytes with malloc's
 * overhead), any other value ~64 bytes besides its text.
 */
#define JSON_OBJECT_COST 800
#define JSON_VALUE_COST  64

/* Outcome of a conversion step. */
enum conv {
	CONV_OK,
	CONV_BAD,   /* a value does not fit its field: *why says which */
	CONV_NOMEM, /* the allocator refused */
};

/*
 * The cost of the tree json-c would build for p[0..n): objects and other
 * values counted outside strings (an upper bound on the values: every
 * ',' ':' '[' and string start may begin one).  *depth: the deepest
 * nesting of objects and arrays, so that a deep body is "too-deep"
 * whatever its cost.
 */
static size_t
json_cost(const char *p, size_t n, size_t *depth)
{
	size_t i, objects = 0, values = 1, d = 0;
	bool in_str = false;

	*depth = 0;
	for (i = 0; i < n; i++) {
		if (in_str) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_str = false;
			continue;
		}
		switch (p[i]) {
		case '"':
			in_str = true;
			values++;
			break;
		case '{':
		case '[':
			objects += p[i] == '{';
			values++;
			if (++d > *depth)
				*depth = d;
			break;
		case '}':
		case ']':
			d -= d > 0;
			break;
		case ',':
		case ':':
			values++;
			break;
		default:
			break;
		}
	}
	return n + objects * JSON_OBJECT_COST + values * JSON_VALUE_COST;
}

/* A member of an object, or NULL (absent, null, or j not an object). */
static json_object *
jget(json_object *j, const char *key)
{
	json_object *v = NULL;

	if (!json_object_is_type(j, json_type_object) ||
	    !json_object_object_get_ex(j, key, &v))
		return NULL;
	return v;
}

static void *
conv_alloc(struct otlp *o, size_t size)
{
	void *p = o->pa.alloc(o->pa.allocator_data, size);

	if (p != NULL)
		memset(p, 0, size);
	return p;
}

/* A new message of type d, initialised (its strings are ""). */
static void *
conv_msg(struct otlp *o, const ProtobufCMessageDescriptor *d)
{
	void *m = conv_alloc(o, d->sizeof_message);

	if (m != NULL)
		protobuf_c_message_init(d, m);
	return m;
}

/* A zeroed array of n pointers. */
static void *
conv_array(struct otlp *o, size_t n)
{
	if (n > SIZE_MAX / sizeof(void *))
		return NULL;
	return conv_alloc(o, n * sizeof(void *));
}

/* A string field from a JSON string (absent: left ""). */
static enum conv
conv_string(struct otlp *o, json_object *j, char **dst, const char **why,
    const char *bad)
{
	const char *s;
	size_t n;
	char *d;

	if (j == NULL)
		return CONV_OK;
	if (!json_object_is_type(j, json_type_string)) {
		*why = bad;
		return CONV_BAD;
	}
	s = json_object_get_string(j);
	n = (size_t)json_object_get_string_len(j);
	if ((d = conv_alloc(o, n + 1)) == NULL)
		return CONV_NOMEM;
	memcpy(d, s, n);
	*dst = d;
	return CONV_OK;
}

/* Digits only, no sign, no overflow. */
static bool
dec_u64(const char *s, size_t n, uint64_t *v)
{
	uint64_t r = 0;
	size_t i;

	if (n == 0 || n > 20)
		return false;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';

		if (d > 9 || r > (UINT64_MAX - d) / 10)
			return false;
		r = r * 10 + d;
	}
	*v = r;
	return true;
}

/*
 * An unsigned 64-bit value: a non-negative integer number, or its decimal
 * string.
 */
static bool
j_u64(json_object *j, uint64_t *v)
{
	int64_t i;

	if (json_object_is_type(j, json_type_string))
		return dec_u64(json_object_get_string(j),
		    (size_t)json_object_get_string_len(j), v);
	if (!json_object_is_type(j, json_type_int))
		return false;
	if ((i = json_object_get_int64(j)) < 0)
		return false;
	*v = i == INT64_MAX ? json_object_get_uint64(j) : (uint64_t)i;
	return true;
}

/* A signed 64-bit value: an integer number, or its decimal string. */
static bool
j_i64(json_object *j, int64_t *v)
{
	const char *s;
	size_t n;
	uint64_t m;
	bool neg;

	if (json_object_is_type(j, json_type_int)) {
		if (json_object_get_int64(j) == INT64_MAX &&
		    json_object_get_uint64(j) > INT64_MAX)
			return false;
		*v = json_object_get_int64(j);
		return true;
	}
	if (!json_object_is_type(j, json_type_string))
		return false;
	s = json_object_get_string(j);
	n = (size_t)json_object_get_string_len(j);
	neg = n > 0 && s[0] == '-';
	if (!dec_u64(s + neg, n - neg, &m) ||
	    m > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return false;
	if (!neg)
		*v = (int64_t)m;
	else
		*v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
	return true;
}

/* A double: a number, or "NaN", "Infinity", "-Infinity", a numeric string. */
static bool
j_double(json_object *j, double *v)
{
	const char *s;
	char *end;

	if (json_object_is_type(j, json_type_double) ||
	    json_object_is_type(j, json_type_int)) {
		*v = json_object_get_double(j);
		return true;
	}
	if (!json_object_is_type(j, json_type_string))
		return false;
	s = json_object_get_string(j);
	if (strcmp(s, "NaN") == 0)
		*v = NAN;
	else if (strcmp(s, "Infinity") == 0)
		*v = INFINITY;
	else if (strcmp(s, "-Infinity") == 0)
		*v = -INFINITY;
	else {
		errno = 0;
		*v = strtod(s, &end);
		if (*s == '\0' || *end != '\0' || errno != 0)
			return false;
	}
	return true;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * A hex string (traceId, spanId; case-insensitive) into a bytes field;
 * "" leaves it empty.  The length is checked by the mapping.
 */
static enum conv
conv_hex(struct otlp *o, json_object *j, ProtobufCBinaryData *dst,
    const char **why, const char *bad)
{
	const char *s;
	size_t n, i;
	uint8_t *d;

	if (j == NULL)
		return CONV_OK;
	if (!json_object_is_type(j, json_type_string) ||
	    (n = (size_t)json_object_get_string_len(j)) % 2 != 0) {
		*why = bad;
		return CONV_BAD;
	}
	if (n == 0)
		return CONV_OK;
	s = json_object_get_string(j);
	if ((d = conv_alloc(o, n / 2)) == NULL)
		return CONV_NOMEM;
	dst->data = d;
	dst->len = n / 2;
	for (i = 0; i < n; i += 2) {
		int hi = hexval((unsigned char)s[i]);
		int lo = hexval((unsigned char)s[i + 1]);

		if (hi < 0 || lo < 0) {
			*why = bad;
			return CONV_BAD;
		}
		d[i / 2] = (uint8_t)((unsigned)hi << 4 | (unsigned)lo);
	}
	return CONV_OK;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* base64 (RFC 4648 sections 4 and 5, padding optional) into dst. */
static enum conv
conv_base64(
    struct otlp *o, json_object *j, ProtobufCBinaryData *dst, const char **why)
{
	const char *s;
	size_t n, i, k = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	uint8_t *d;

	if (!json_object_is_type(j, json_type_string)) {
		*why = "bytesValue is not base64";
		return CONV_BAD;
	}
	s = json_object_get_string(j);
	n = (size_t)json_object_get_string_len(j);
	while (n > 0 && s[n - 1] == '=')
		n--;
	if ((d = conv_alloc(o, n * 3 / 4 + 1)) == NULL)
		return CONV_NOMEM;
	dst->data = d;
	for (i = 0; i < n; i++) {
		int v = b64val((unsigned char)s[i]);

		if (v < 0) {
			*why = "bytesValue is not base64";
			return CONV_BAD;
		}
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		if ((bits += 6) >= 8) {
			bits -= 8;
			d[k++] = (uint8_t)(acc >> bits);
		}
	}
	dst->len = k;
	return CONV_OK;
}

static enum conv conv_any(
    struct otlp *, json_object *, OTLP_ANY **, const char **);

/* {"key": "...", "value": AnyValue} into kv. */
static enum conv
conv_kv(struct otlp *o, json_object *j, OTLP_KV *kv, const char **why)
{
	enum conv rc;

	if (!json_object_is_type(j, json_type_object)) {
		*why = "a KeyValue is not an object";
		return CONV_BAD;
	}
	if ((rc = conv_string(o, jget(j, "key"), &kv->key, why,
		 "a key is not a string")) != CONV_OK)
		return rc;
	return conv_any(o, jget(j, "value"), &kv->value, why);
}

/*
 * A JSON array of KeyValue into a repeated KeyValue field (*dst, *n):
 * the array is attached first and grows by each element, so that the
 * structure is whole (and walkable) even after a failure.
 */
static enum conv
conv_kvs(
    struct otlp *o, json_object *j, OTLP_KV ***dst, size_t *n, const char **why)
{
	size_t i, len;
	enum conv rc;

	if (j == NULL)
		return CONV_OK;
	if (!json_object_is_type(j, json_type_array)) {
		*why = "attributes is not an array";
		return CONV_BAD;
	}
	if ((len = json_object_array_length(j)) == 0)
		return CONV_OK;
	if ((*dst = conv_array(o, len)) == NULL)
		return CONV_NOMEM;
	for (i = 0; i < len; i++) {
		OTLP_KV *kv = conv_msg(o,
		    &opentelemetry__proto__common__v1__key_value__descriptor);

		if (kv == NULL)
			return CONV_NOMEM;
		(*dst)[(*n)++] = kv;
		if ((rc = conv_kv(o, json_object_array_get_idx(j, i), kv,
			 why)) != CONV_OK)
			return rc;
	}
	return CONV_OK;
}

/* {"values": [AnyValue...]} into an ArrayValue. */
static enum conv
conv_array_value(struct otlp *o, json_object *j, OTLP_ANY *v, const char **why)
{
	OTLP(Common__V1__ArrayValue) * a;
	json_object *vals = jget(j, "values");
	size_t i, len;
	enum conv rc;

	if (!json_object_is_type(j, json_type_object) ||
	    (vals != NULL && !json_object_is_type(vals, json_type_array))) {
		*why = "arrayValue is not {\"values\":[...]}";
		return CONV_BAD;
	}
	a = conv_msg(
	    o, &opentelemetry__proto__common__v1__array_value__descriptor);
	if (a == NULL)
		return CONV_NOMEM;
	v->array_value = a;
	v->value_case = ANY_CASE(ARRAY_VALUE);
	if (vals == NULL || (len = json_object_array_length(vals)) == 0)
		return CONV_OK;
	if ((a->values = conv_array(o, len)) == NULL)
		return CONV_NOMEM;
	for (i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(vals, i);
		OTLP_ANY *ev = conv_msg(o,
		    &opentelemetry__proto__common__v1__any_value__descriptor);

		if (ev == NULL)
			return CONV_NOMEM;
		a->values[a->n_values++] = ev;
		if (e != NULL && (rc = conv_any(o, e, &ev, why)) != CONV_OK)
			return rc;
	}
	return CONV_OK;
}

/* {"values": [KeyValue...]} into a KeyValueList. */
static enum conv
conv_kvlist_value(struct otlp *o, json_object *j, OTLP_ANY *v, const char **why)
{
	OTLP(Common__V1__KeyValueList) * l;

	if (!json_object_is_type(j, json_type_object)) {
		*why = "kvlistValue is not an object";
		return CONV_BAD;
	}
	l = conv_msg(
	    o, &opentelemetry__proto__common__v1__key_value_list__descriptor);
	if (l == NULL)
		return CONV_NOMEM;
	v->kvlist_value = l;
	v->value_case = ANY_CASE(KVLIST_VALUE);
	return conv_kvs(o, jget(j, "values"), &l->values, &l->n_values, why);
}

/* The scalar members of an AnyValue; false: none of them is present. */
static bool
conv_scalar(struct otlp *o, json_object *j, OTLP_ANY *v, const char **why,
    enum conv *rc)
{
	json_object *m;

	*rc = CONV_OK;
	if ((m = jget(j, "stringValue")) != NULL) {
		v->value_case = ANY_CASE(STRING_VALUE);
		v->string_value = NULL;
		*rc = conv_string(
		    o, m, &v->string_value, why, "stringValue is not a string");
	} else if ((m = jget(j, "boolValue")) != NULL) {
		if (!json_object_is_type(m, json_type_boolean)) {
			*why = "boolValue is not a boolean";
			*rc = CONV_BAD;
		}
		v->value_case = ANY_CASE(BOOL_VALUE);
		v->bool_value = json_object_get_boolean(m);
	} else if ((m = jget(j, "intValue")) != NULL) {
		if (!j_i64(m, &v->int_value)) {
			*why = "intValue is not a 64-bit integer";
			*rc = CONV_BAD;
		}
		v->value_case = ANY_CASE(INT_VALUE);
	} else if ((m = jget(j, "doubleValue")) != NULL) {
		if (!j_double(m, &v->double_value)) {
			*why = "doubleValue is not a number";
			*rc = CONV_BAD;
		}
		v->value_case = ANY_CASE(DOUBLE_VALUE);
	} else if ((m = jget(j, "bytesValue")) != NULL) {
		v->value_case = ANY_CASE(BYTES_VALUE);
		*rc = conv_base64(o, m, &v->bytes_value, why);
	} else
		return false;
	return true;
}

/*
 * An AnyValue object into *dst (allocated here unless the caller did):
 * the first of its members present, in the order of the oneof; none: an
 * empty value.
 */
static enum conv
conv_any(struct otlp *o, json_object *j, OTLP_ANY **dst, const char **why)
{
	OTLP_ANY *v = *dst;
	json_object *m;
	enum conv rc;

	if (j == NULL)
		return CONV_OK;
	if (!json_object_is_type(j, json_type_object)) {
		*why = "an AnyValue is not an object";
		return CONV_BAD;
	}
	if (v == NULL) {
		v = conv_msg(o,
		    &opentelemetry__proto__common__v1__any_value__descriptor);
		if (v == NULL)
			return CONV_NOMEM;
		*dst = v;
	}
	if (conv_scalar(o, j, v, why, &rc))
		return rc;
	if ((m = jget(j, "arrayValue")) != NULL)
		return conv_array_value(o, m, v, why);
	if ((m = jget(j, "kvlistValue")) != NULL)
		return conv_kvlist_value(o, m, v, why);
	return CONV_OK;
}

/* The members of a LogRecord that are not AnyValues. */
static enum conv
conv_record_scalars(
    struct otlp *o, json_object *j, OTLP_LR *lr, const char **why)
{
	json_object *m;
	int64_t i;
	enum conv rc;

	if ((m = jget(j, "timeUnixNano")) != NULL &&
	    !j_u64(m, &lr->time_unix_nano)) {
		*why = "timeUnixNano is not an unsigned 64-bit integer";
		return CONV_BAD;
	}
	if ((m = jget(j, "observedTimeUnixNano")) != NULL &&
	    !j_u64(m, &lr->observed_time_unix_nano)) {
		*why = "observedTimeUnixNano is not an unsigned 64-bit integer";
		return CONV_BAD;
	}
	if ((m = jget(j, "severityNumber")) != NULL) {
		if (!json_object_is_type(m, json_type_int) ||
		    (i = json_object_get_int64(m)) < INT32_MIN ||
		    i > INT32_MAX) {
			*why = "severityNumber is not an integer";
			return CONV_BAD;
		}
		lr->severity_number = (int)i;
	}
	if ((m = jget(j, "flags")) != NULL) {
		if (!json_object_is_type(m, json_type_int) ||
		    (i = json_object_get_int64(m)) < 0 || i > UINT32_MAX) {
			*why = "flags is not a 32-bit unsigned integer";
			return CONV_BAD;
		}
		lr->flags = (uint32_t)i;
	}
	if ((rc = conv_string(o, jget(j, "severityText"), &lr->severity_text,
		 why, "severityText is not a string")) != CONV_OK ||
	    (rc = conv_string(o, jget(j, "eventName"), &lr->event_name, why,
		 "eventName is not a string")) != CONV_OK ||
	    (rc = conv_hex(o, jget(j, "traceId"), &lr->trace_id, why,
		 "traceId is not a hex string")) != CONV_OK)
		return rc;
	return conv_hex(o, jget(j, "spanId"), &lr->span_id, why,
	    "spanId is not a hex string");
}

static enum conv
conv_record(struct otlp *o, json_object *j, OTLP_LR *lr, const char **why)
{
	enum conv rc;

	if (!json_object_is_type(j, json_type_object)) {
		*why = "a logRecord is not an object";
		return CONV_BAD;
	}
	if ((rc = conv_record_scalars(o, j, lr, why)) != CONV_OK ||
	    (rc = conv_any(o, jget(j, "body"), &lr->body, why)) != CONV_OK)
		return rc;
	return conv_kvs(
	    o, jget(j, "attributes"), &lr->attributes, &lr->n_attributes, why);
}

/*
 * "logRecords" into sl: a record that does not convert is refused alone
 * (counted, left out); only memory fails the body.
 */
static enum conv
conv_records(struct otlp *o, json_object *j, OTLP_SL *sl, size_t ri, size_t si)
{
	size_t i, len;
	const char *why = NULL;
	enum conv rc;

	if (j == NULL)
		return CONV_OK;
	if (!json_object_is_type(j, json_type_array))
		return CONV_BAD;
	if ((len = json_object_array_length(j)) == 0)
		return CONV_OK;
	if ((sl->log_records = conv_array(o, len)) == NULL)
		return CONV_NOMEM;
	for (i = 0; i < len; i++) {
		OTLP_LR *lr = conv_msg(
		    o, &opentelemetry__proto__logs__v1__log_record__descriptor);

		if (lr == NULL)
			return CONV_NOMEM;
		rc = conv_record(o, json_object_array_get_idx(j, i), lr, &why);
		if (rc == CONV_OK) {
			sl->log_records[sl->n_log_records++] = lr;
			continue;
		}
		/* lr stays in the arena until the body is freed */
		if (rc == CONV_NOMEM)
			return rc;
		otlp_reject(o, ri, si, i, why);
	}
	return CONV_OK;
}

/* {"name", "version", "attributes"} into sl->scope. */
static enum conv
conv_scope(struct otlp *o, json_object *j, OTLP_SL *sl)
{
	OTLP(Common__V1__InstrumentationScope) * s;
	const char *why;
	enum conv rc;

	if (j == NULL)
		return CONV_OK;
	if (!json_object_is_type(j, json_type_object))
		return CONV_BAD;
	s = conv_msg(o,
	    &opentelemetry__proto__common__v1__instrumentation_scope__descriptor);
	if (s == NULL)
		return CONV_NOMEM;
	sl->scope = s;
	if ((rc = conv_string(o, jget(j, "name"), &s->name, &why, "")) !=
		CONV_OK ||
	    (rc = conv_string(o, jget(j, "version"), &s->version, &why, "")) !=
		CONV_OK)
		return rc;
	return conv_kvs(
	    o, jget(j, "attributes"), &s->attributes, &s->n_attributes, &why);
}

/* A "scopeLogs" array into rl. */
static enum conv
conv_scopes(struct otlp *o, json_object *j, OTLP_RL *rl, size_t ri)
{
	size_t i, len;
	enum conv rc;

	if (j == NULL)
		return CONV_OK;
	if (!json_object_is_type(j, json_type_array))
		return CONV_BAD;
	if ((len = json_object_array_length(j)) == 0)
		return CONV_OK;
	if ((rl->scope_logs = conv_array(o, len)) == NULL)
		return CONV_NOMEM;
	for (i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(j, i);
		OTLP_SL *sl = conv_msg(
		    o, &opentelemetry__proto__logs__v1__scope_logs__descriptor);

		if (sl == NULL)
			return CONV_NOMEM;
		rl->scope_logs[rl->n_scope_logs++] = sl;
		if (!json_object_is_type(e, json_type_object))
			return CONV_BAD;
		if ((rc = conv_scope(o, jget(e, "scope"), sl)) != CONV_OK ||
		    (rc = conv_records(o, jget(e, "logRecords"), sl, ri, i)) !=
			CONV_OK)
			return rc;
	}
	return CONV_OK;
}

/* One element of "resourceLogs" into rl. */
static enum conv
conv_resource_logs(struct otlp *o, json_object *j, OTLP_RL *rl, size_t ri)
{
	OTLP(Resource__V1__Resource) * r;
	json_object *res;
	const char *why;
	enum conv rc;

	if (!json_object_is_type(j, json_type_object))
		return CONV_BAD;
	if ((res = jget(j, "resource")) != NULL) {
		if (!json_object_is_type(res, json_type_object))
			return CONV_BAD;
		r = conv_msg(o,
		    &opentelemetry__proto__resource__v1__resource__descriptor);
		if (r == NULL)
			return CONV_NOMEM;
		rl->resource = r;
		if ((rc = conv_kvs(o, jget(res, "attributes"), &r->attributes,
			 &r->n_attributes, &why)) != CONV_OK)
			return rc;
	}
	return conv_scopes(o, jget(j, "scopeLogs"), rl, ri);
}

/* The request object into o->req (attached first: freed by otlp_free). */
static enum conv
conv_request(struct otlp *o, json_object *j)
{
	json_object *rls = jget(j, "resourceLogs");
	size_t i, len;
	enum conv rc;

	o->req = conv_msg(o,
	    &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor);
	if (o->req == NULL)
		return CONV_NOMEM;
	if (!json_object_is_type(j, json_type_object))
		return CONV_BAD;
	if (rls == NULL)
		return CONV_OK;
	if (!json_object_is_type(rls, json_type_array))
		return CONV_BAD;
	if ((len = json_object_array_length(rls)) == 0)
		return CONV_OK;
	if ((o->req->resource_logs = conv_array(o, len)) == NULL)
		return CONV_NOMEM;
	for (i = 0; i < len; i++) {
		OTLP_RL *rl = conv_msg(o,
		    &opentelemetry__proto__logs__v1__resource_logs__descriptor);

		if (rl == NULL)
			return CONV_NOMEM;
		o->req->resource_logs[o->req->n_resource_logs++] = rl;
		if ((rc = conv_resource_logs(o,
			 json_object_array_get_idx(rls, i), rl, i)) != CONV_OK)
			return rc;
	}
	return CONV_OK;
}

/* Only whitespace (RFC 8259 section 2) in p[0..n). */
static bool
json_blank(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return false;
	return true;
}

void
otlp_json_decode(struct otlp *o, const char *buf, size_t len)
{
	size_t budget = len * OTLP_MEM_FACTOR_JSON + OTLP_MEM_SLACK;
	struct json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	enum conv rc;
	size_t depth;

	o->mem_budget = len * OTLP_MEM_FACTOR_PROTO + OTLP_MEM_SLACK;
	if (json_blank(buf, len)) { /* an empty request: success */
		o->req = conv_msg(o,
		    &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor);
		o->err = o->req == NULL ? "too-complex" : NULL;
		return;
	}
	if (len > INT_MAX) { /* json-c takes an int */
		o->err = "body-too-large";
		return;
	}
	if (json_cost(buf, len, &depth) > budget) {
		o->err = depth > (size_t)o->lim.max_depth ? "too-deep"
							  : "too-complex";
		return;
	}
	if ((tok = json_tokener_new_ex(
		 o->lim.max_depth > 0 ? o->lim.max_depth : 1)) == NULL) {
		o->err = "out-of-memory";
		return;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (root == NULL || jerr != json_tokener_success ||
	    !json_blank(buf + json_tokener_get_parse_end(tok),
		len - json_tokener_get_parse_end(tok)))
		o->err =
		    jerr == json_tokener_error_depth ? "too-deep" : "bad-json";
	json_tokener_free(tok);
	if (o->err == NULL) {
		rc = conv_request(o, root);
		if (rc == CONV_NOMEM)
			o->err = "too-complex";
		else if (rc == CONV_BAD)
			o->err = "bad-json";
	}
	json_object_put(root);
}
