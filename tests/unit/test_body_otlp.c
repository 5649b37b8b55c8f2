/*
 * Unit tests for the OTLP body decoders (body_otlp_proto, body_otlp_json):
 * the mapping of a hand-built ExportLogsServiceRequest, the same request
 * in OTLP/JSON giving the same records, the severity table, records
 * refused alone and the partial-success answer in both encodings, stop
 * and resume, the limits (body size, record size, nesting depth, memory
 * budget), every truncation of a protobuf body and malformed JSON.
 *
 * Records are rendered "sev|app|host|event_us|message|fields" each, one
 * per line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"

#include "logsink/body.h"

/* --- a protobuf wire writer (encoding.md: varints, tags, lengths) --- */

struct pbw {
	uint8_t b[4096];
	size_t n;
};

static void
pb_raw(struct pbw *w, const void *p, size_t n)
{
	assert_true(w->n + n <= sizeof(w->b));
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static void
pb_varint(struct pbw *w, uint64_t v)
{
	uint8_t c;

	do {
		c = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			c |= 0x80;
		pb_raw(w, &c, 1);
	} while (v != 0);
}

static void
pb_tag(struct pbw *w, unsigned field, unsigned wt)
{
	pb_varint(w, (uint64_t)field << 3 | wt);
}

static void
pb_bytes(struct pbw *w, unsigned field, const void *p, size_t n)
{
	pb_tag(w, field, 2);
	pb_varint(w, n);
	pb_raw(w, p, n);
}

static void
pb_str(struct pbw *w, unsigned field, const char *s)
{
	pb_bytes(w, field, s, strlen(s));
}

static void
pb_msg(struct pbw *w, unsigned field, const struct pbw *m)
{
	pb_bytes(w, field, m->b, m->n);
}

static void
pb_fixed64(struct pbw *w, unsigned field, uint64_t v)
{
	uint8_t le[8];
	int i;

	for (i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	pb_tag(w, field, 1);
	pb_raw(w, le, 8);
}

/* A KeyValue with a string value. */
static void
pb_kv_str(struct pbw *w, unsigned field, const char *k, const char *v)
{
	struct pbw kv = { .n = 0 }, any = { .n = 0 };

	pb_str(&any, 1, v);
	pb_str(&kv, 1, k);
	pb_msg(&kv, 2, &any);
	pb_msg(w, field, &kv);
}

/* A KeyValue with the AnyValue any. */
static void
pb_kv(struct pbw *w, unsigned field, const char *k, const struct pbw *any)
{
	struct pbw kv = { .n = 0 };

	pb_str(&kv, 1, k);
	pb_msg(&kv, 2, any);
	pb_msg(w, field, &kv);
}

static const uint8_t trace_id[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
	13, 14, 15 };
static const uint8_t span_id[8] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6,
	0xa7 };

/*
 * The request of test_proto_mapping: one resource (service.name,
 * host.name), one scope (lib 1.0), two records.  bad_trace: the second
 * record's trace_id is 5 bytes (refused).
 */
static void
build_request(struct pbw *req, bool bad_trace)
{
	struct pbw res = { .n = 0 }, scope = { .n = 0 }, sl = { .n = 0 },
		   rl = { .n = 0 }, r1 = { .n = 0 }, r2 = { .n = 0 },
		   any = { .n = 0 }, arr = { .n = 0 }, el = { .n = 0 },
		   kvl = { .n = 0 };
	uint8_t dbl[8];
	double d = 1.5;
	int i;

	pb_kv_str(&res, 1, "service.name", "svc");
	pb_kv_str(&res, 1, "host.name", "h1");
	pb_str(&scope, 1, "lib");
	pb_str(&scope, 2, "1.0");

	pb_fixed64(&r1, 1, 1700000000123456789ULL);
	pb_tag(&r1, 2, 0);
	pb_varint(&r1, 9);
	pb_str(&r1, 3, "INFO");
	any.n = 0;
	pb_str(&any, 1, "hello");
	pb_msg(&r1, 5, &any);
	pb_kv_str(&r1, 6, "a", "x");
	any.n = 0;
	pb_tag(&any, 3, 0);
	pb_varint(&any, (uint64_t)-5); /* int64 -5: ten bytes */
	pb_kv(&r1, 6, "n", &any);
	any.n = 0;
	memcpy(&dbl, &d, 8);
	pb_tag(&any, 4, 1);
	for (i = 0; i < 8; i++) /* little-endian IEEE 754 on x86 and arm */
		pb_raw(&any, &dbl[i], 1);
	pb_kv(&r1, 6, "d", &any);
	any.n = 0;
	pb_tag(&any, 2, 0);
	pb_varint(&any, 1);
	pb_kv(&r1, 6, "b", &any);
	pb_bytes(&r1, 9, trace_id, 16);
	pb_bytes(&r1, 10, span_id, 8);

	/* Record 2: observed time only, "warning", a kvlist body. */
	pb_fixed64(&r2, 11, 1700000001000000000ULL);
	pb_str(&r2, 3, "warning");
	el.n = 0;
	pb_tag(&el, 3, 0);
	pb_varint(&el, 1);
	pb_msg(&arr, 1, &el);
	el.n = 0;
	pb_str(&el, 1, "two");
	pb_msg(&arr, 1, &el);
	el.n = 0;
	pb_msg(&el, 5, &arr); /* AnyValue{array_value} */
	pb_kv(&kvl, 1, "k", &el);
	any.n = 0;
	pb_msg(&any, 6, &kvl);
	pb_msg(&r2, 5, &any);
	if (bad_trace)
		pb_bytes(&r2, 9, trace_id, 5);

	pb_msg(&sl, 1, &scope);
	pb_msg(&sl, 2, &r1);
	pb_msg(&sl, 2, &r2);
	any.n = 0;
	pb_msg(&any, 1, &res);
	rl = any;
	pb_msg(&rl, 2, &sl);
	req->n = 0;
	pb_msg(req, 1, &rl);
}

/* The same request in OTLP/JSON (upper-case hex, int64 as a string). */
static const char json_request[] =
    "{\"resourceLogs\":[{\"resource\":{\"attributes\":["
    "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}},"
    "{\"key\":\"host.name\",\"value\":{\"stringValue\":\"h1\"}}]},"
    "\"scopeLogs\":[{\"scope\":{\"name\":\"lib\",\"version\":\"1.0\"},"
    "\"logRecords\":[{\"timeUnixNano\":\"1700000000123456789\","
    "\"severityNumber\":9,\"severityText\":\"INFO\","
    "\"body\":{\"stringValue\":\"hello\"},\"attributes\":["
    "{\"key\":\"a\",\"value\":{\"stringValue\":\"x\"}},"
    "{\"key\":\"n\",\"value\":{\"intValue\":\"-5\"}},"
    "{\"key\":\"d\",\"value\":{\"doubleValue\":1.5}},"
    "{\"key\":\"b\",\"value\":{\"boolValue\":true}}],"
    "\"traceId\":\"000102030405060708090A0B0C0D0E0F\","
    "\"spanId\":\"a0a1a2a3a4a5a6a7\",\"unknownField\":[1,2]},"
    "{\"observedTimeUnixNano\":1700000001000000000,"
    "\"severityText\":\"warning\",\"body\":{\"kvlistValue\":{\"values\":["
    "{\"key\":\"k\",\"value\":{\"arrayValue\":{\"values\":["
    "{\"intValue\":1},{\"stringValue\":\"two\"}]}}}]}}}]}]}]}";

static const char expect_records[] =
    "6|svc|h1|1700000000123456|hello|{\"attributes\":{\"a\":\"x\",\"n\":-5,"
    "\"d\":1.5,\"b\":true},\"resource\":{\"service.name\":\"svc\","
    "\"host.name\":\"h1\"},\"scope\":{\"name\":\"lib\",\"version\":\"1.0\"},"
    "\"trace_id\":\"000102030405060708090a0b0c0d0e0f\","
    "\"span_id\":\"a0a1a2a3a4a5a6a7\",\"severity_text\":\"INFO\","
    "\"severity_number\":9}\n"
    "4|svc|h1|1700000001000000|{\"k\":[1,\"two\"]}|{\"resource\":{"
    "\"service.name\":\"svc\",\"host.name\":\"h1\"},\"scope\":{\"name\":"
    "\"lib\",\"version\":\"1.0\"},\"severity_text\":\"warning\"}\n";

/* --- running a decoder --- */

struct run {
	const struct body_decoder *dec;
	void *st;
	char log[65536];
	size_t n, count;
	bool stop; /* the callback asks to stop after each record */
};

static struct body_limits lim = { 65536, 1 << 20, 32 };

static int
setup(void **state)
{
	struct run *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -1;
	*state = r;
	return 0;
}

static int
teardown(void **state)
{
	struct run *r = *state;

	if (r->st != NULL)
		r->dec->free(r->st);
	free(r);
	return 0;
}

static bool
on_record(void *arg, struct record *rec)
{
	struct run *r = arg;
	int k;

	k = snprintf(r->log + r->n, sizeof(r->log) - r->n,
	    "%d|%.*s|%.*s|%lld|%.*s|%.*s\n", rec->severity, (int)rec->app.len,
	    rec->app.ptr ? rec->app.ptr : "", (int)rec->host.len,
	    rec->host.ptr ? rec->host.ptr : "",
	    rec->has_event_time ? (long long)rec->event_us : -1LL,
	    (int)rec->message.len, rec->message.ptr ? rec->message.ptr : "",
	    (int)rec->fields.len, rec->fields.ptr ? rec->fields.ptr : "");
	if (k > 0 && (size_t)k < sizeof(r->log) - r->n)
		r->n += (size_t)k;
	r->count++;
	return !r->stop;
}

/*
 * Decodes body[0..len) with dec as the HTTP glue does: fed in two pieces
 * (the first must consume nothing), then again with len 0 after every
 * stop.  Returns error().
 */
static const char *
decode(struct run *r, const struct body_decoder *dec, const void *body,
    size_t len, const struct body_limits *l)
{
	size_t need = 0, used, before;
	int rounds = 0;

	if (r->st != NULL)
		r->dec->free(r->st);
	r->dec = dec;
	r->n = r->count = 0;
	r->log[0] = '\0';
	assert_non_null(r->st = dec->new (l));
	if (len > 1 && len <= l->max_body_bytes) {
		used =
		    dec->feed(r->st, body, len / 2, false, &need, on_record, r);
		assert_int_equal(used, 0);
		assert_int_equal(need, SIZE_MAX);
	}
	used = dec->feed(r->st, body, len, true, &need, on_record, r);
	assert_int_equal(used, len);
	do {
		before = r->count;
		(void)dec->feed(r->st, "", 0, true, &need, on_record, r);
		assert_true(++rounds < 100000);
	} while (r->stop && r->count > before);
	return dec->error(r->st);
}

static void
test_proto_mapping(void **state)
{
	struct run *r = *state;
	struct pbw req;
	char out[256];
	const char *ct;

	build_request(&req, false);
	assert_null(decode(r, &body_otlp_proto, req.b, req.n, &lim));
	assert_string_equal(r->log, expect_records);
	assert_int_equal(body_otlp_proto.rejected(r->st), 0);
	/* Full success: an empty ExportLogsServiceResponse. */
	assert_int_equal(
	    body_otlp_proto.answer(r->st, out, sizeof(out), &ct), 0);
	assert_string_equal(ct, "application/x-protobuf");
}

static void
test_json_same_records(void **state)
{
	struct run *r = *state;
	char out[256];
	const char *ct;
	size_t n;

	assert_null(decode(
	    r, &body_otlp_json, json_request, strlen(json_request), &lim));
	assert_string_equal(r->log, expect_records);
	n = body_otlp_json.answer(r->st, out, sizeof(out), &ct);
	assert_string_equal(ct, "application/json");
	assert_int_equal(n, 2);
	assert_memory_equal(out, "{}", 2);
}

/* Stops after every record: the same records, one per feed. */
static void
test_stop_and_resume(void **state)
{
	struct run *r = *state;
	struct pbw req;

	build_request(&req, false);
	r->stop = true;
	assert_null(decode(r, &body_otlp_proto, req.b, req.n, &lim));
	assert_string_equal(r->log, expect_records);
	assert_null(decode(
	    r, &body_otlp_json, json_request, strlen(json_request), &lim));
	assert_string_equal(r->log, expect_records);
}

/* The severity of one record with number num and text text. */
static int
severity_of(struct run *r, int num, const char *text)
{
	struct pbw lr = { .n = 0 }, sl = { .n = 0 }, rl = { .n = 0 },
		   req = { .n = 0 };

	if (num != 0) {
		pb_tag(&lr, 2, 0);
		pb_varint(&lr, (uint64_t)num);
	}
	if (text != NULL)
		pb_str(&lr, 3, text);
	pb_msg(&sl, 2, &lr);
	pb_msg(&rl, 2, &sl);
	pb_msg(&req, 1, &rl);
	assert_null(decode(r, &body_otlp_proto, req.b, req.n, &lim));
	assert_int_equal(r->count, 1);
	return atoi(r->log);
}

static void
test_severity(void **state)
{
	static const int want[25] = { -1, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 4,
		4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2 };
	struct run *r = *state;
	int i;

	for (i = 1; i <= 24; i++)
		assert_int_equal(severity_of(r, i, "ERROR"), want[i]);
	assert_int_equal(severity_of(r, 0, NULL), -1);
	assert_int_equal(severity_of(r, 0, "Error"), 3);
	assert_int_equal(severity_of(r, 0, "Information"), 6);
	assert_int_equal(severity_of(r, 0, "chatty"), -1);
	assert_int_equal(severity_of(r, 25, "warn"), 4); /* out of range */
}

/* A refused record: the others are stored; the answer says how many. */
static void
test_partial_success(void **state)
{
	struct run *r = *state;
	struct pbw req;
	char out[512];
	const char *ct;
	size_t n;
	Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse
	    *resp;
	static const char bad_json[] =
	    "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":["
	    "{\"body\":{\"stringValue\":\"ok\"}},"
	    "{\"traceId\":\"xyz\"},"
	    "{\"spanId\":\"0011\"},"
	    "{\"timeUnixNano\":\"-1\"},"
	    "{\"body\":{\"intValue\":\"12a\"}},"
	    "{\"body\":{\"stringValue\":\"ok2\"}}]}]}]}";

	build_request(&req, true);
	assert_null(decode(r, &body_otlp_proto, req.b, req.n, &lim));
	assert_int_equal(r->count, 1);
	assert_int_equal(body_otlp_proto.rejected(r->st), 1);
	n = body_otlp_proto.answer(r->st, out, sizeof(out), &ct);
	assert_true(n > 0);
	resp =
	    opentelemetry__proto__collector__logs__v1__export_logs_service_response__unpack(
		NULL, n, (const uint8_t *)out);
	assert_non_null(resp);
	assert_non_null(resp->partial_success);
	assert_int_equal(resp->partial_success->rejected_log_records, 1);
	assert_non_null(strstr(resp->partial_success->error_message,
	    "resource_logs[0].scope_logs[0].log_records[1]: trace_id is not 16 "
	    "bytes"));
	opentelemetry__proto__collector__logs__v1__export_logs_service_response__free_unpacked(
	    resp, NULL);
	/* Too small a buffer: the count without the text. */
	n = body_otlp_proto.answer(r->st, out, 4, &ct);
	assert_int_equal(n, 4);

	assert_null(
	    decode(r, &body_otlp_json, bad_json, strlen(bad_json), &lim));
	assert_int_equal(r->count, 2);
	assert_int_equal(body_otlp_json.rejected(r->st), 4);
	n = body_otlp_json.answer(r->st, out, sizeof(out), &ct);
	out[n] = '\0';
	assert_string_equal(out,
	    "{\"partialSuccess\":{\"rejectedLogRecords\":\"4\","
	    "\"errorMessage\":"
	    "\"4 log records refused; the first, resourceLogs[0].scopeLogs[0]."
	    "logRecords[1]: traceId is not a hex string\"}}");
	n = body_otlp_json.answer(r->st, out, 50, &ct);
	out[n] = '\0';
	assert_string_equal(
	    out, "{\"partialSuccess\":{\"rejectedLogRecords\":\"4\"}}");
}

/* JSON values of every kind, and the edges of the integer parsers. */
static void
test_json_values(void **state)
{
	struct run *r = *state;
	static const char body[] =
	    "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{"
	    "\"timeUnixNano\":\"0\",\"observedTimeUnixNano\":\"0\","
	    "\"flags\":1,\"eventName\":\"ev\",\"attributes\":["
	    "{\"key\":\"max\",\"value\":{\"intValue\":\"9223372036854775807\"}}"
	    ","
	    "{\"key\":\"min\",\"value\":{\"intValue\":\"-9223372036854775808\"}"
	    "},"
	    "{\"key\":\"nan\",\"value\":{\"doubleValue\":\"NaN\"}},"
	    "{\"key\":\"inf\",\"value\":{\"doubleValue\":\"-Infinity\"}},"
	    "{\"key\":\"bytes\",\"value\":{\"bytesValue\":\"aGk_\"}},"
	    "{\"key\":\"empty\",\"value\":{}},"
	    "{\"key\":\"nul\",\"value\":{\"stringValue\":\"a\\u0000b\"}},"
	    "{\"key\":\"q\\\"\",\"value\":{\"stringValue\":\"\\n\"}}]}]}]}]}";
	static const char bad_int[] =
	    "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{"
	    "\"attributes\":[{\"key\":\"k\",\"value\":"
	    "{\"intValue\":\"9223372036854775808\"}}]},"
	    "{\"timeUnixNano\":\"18446744073709551616\"},"
	    "{\"timeUnixNano\":18446744073709551615}]}]}]}";

	assert_null(decode(r, &body_otlp_json, body, strlen(body), &lim));
	assert_string_equal(r->log,
	    "-1|||-1||{\"attributes\":{\"max\":9223372036854775807,"
	    "\"min\":-9223372036854775808,\"nan\":\"NaN\",\"inf\":\"-"
	    "Infinity\","
	    "\"bytes\":\"aGk/\",\"empty\":null,\"nul\":\"a\","
	    "\"q\\\"\":\"\\n\"},\"flags\":1,\"event_name\":\"ev\"}\n");
	/* Past 64 bits: refused; the largest fixed64 is in 2554, stored. */
	assert_null(decode(r, &body_otlp_json, bad_int, strlen(bad_int), &lim));
	assert_string_equal(r->log, "-1|||18446744073709551||\n");
	assert_int_equal(body_otlp_json.rejected(r->st), 2);
}

/* err is want; case i names the input in the failure. */
static void
expect_error(const char *err, const char *want, size_t i)
{
	if (err == NULL)
		fail_msg("case %zu: no error, want %s", i, want);
	assert_string_equal(err, want);
}

static void
test_bad_bodies(void **state)
{
	static const char *const bad[] = { "{", "[]", "null", "{} {}",
		"{\"resourceLogs\":5}", "{\"resourceLogs\":[5]}",
		"{\"resourceLogs\":[{\"scopeLogs\":{}}]}",
		"{\"resourceLogs\":[{\"resource\":{\"attributes\":[1]}}]}",
		"{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":{}}]}]}",
		"{\"a\":'x'}", "{\"a\":1,}", "\"x\"" };
	struct run *r = *state;
	static const uint8_t badpb[][4] = { { 0x0a, 0x05, 0, 0 },
		{ 0x0b, 0, 0, 0 }, { 0x00, 0, 0, 0 }, { 0x0f, 0, 0, 0 },
		{ 0x09, 0x01, 0x02, 0x03 } };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(
		    decode(r, &body_otlp_json, bad[i], strlen(bad[i]), &lim),
		    "bad-json", i);
	assert_null(decode(r, &body_otlp_json, " \n", 2, &lim));
	assert_int_equal(r->count, 0);
	assert_null(decode(r, &body_otlp_json, "{}", 2, &lim));
	assert_null(decode(r, &body_otlp_proto, "", 0, &lim));
	for (i = 0; i < sizeof(badpb) / sizeof(badpb[0]); i++)
		expect_error(decode(r, &body_otlp_proto, badpb[i], 4, &lim),
		    "bad-protobuf", 100 + i);
	/* A string field (LogRecord.severity_text) sent as a varint. */
	expect_error(decode(r, &body_otlp_proto,
			 "\x0a\x06\x12\x04\x12\x02\x18\x01", 8, &lim),
	    "bad-protobuf", 200);
}

/* Every prefix of a good body: an error or records, never a crash. */
static void
test_truncated_protobuf(void **state)
{
	struct run *r = *state;
	struct pbw req;
	const char *err;
	size_t len, ok = 0;

	build_request(&req, false);
	for (len = 0; len < req.n; len++) {
		err = decode(r, &body_otlp_proto, req.b, len, &lim);
		if (err == NULL)
			ok++;
		else
			assert_string_equal(err, "bad-protobuf");
		assert_true(r->count <= 2);
	}
	/* Only the empty prefix is a whole message (one ResourceLogs). */
	assert_int_equal(ok, 1);
}

static void
test_limits(void **state)
{
	struct run *r = *state;
	struct pbw req;
	struct body_limits small = lim;
	size_t need = 0;

	build_request(&req, false);
	small.max_body_bytes = req.n - 1;
	assert_string_equal(decode(r, &body_otlp_proto, req.b, req.n, &small),
	    "body-too-large");
	/* Too large already before the end. */
	body_otlp_proto.free(r->st);
	assert_non_null(r->st = body_otlp_proto.new(&small));
	assert_int_equal(body_otlp_proto.feed(r->st, (const char *)req.b, req.n,
			     false, &need, on_record, r),
	    req.n);
	assert_string_equal(body_otlp_proto.error(r->st), "body-too-large");
	body_otlp_proto.free(r->st);
	r->st = NULL;
	/* A record over max_entry_bytes is refused alone. */
	small = lim;
	small.max_entry_bytes = 200; /* the records are 261 and 132 */
	assert_null(decode(r, &body_otlp_proto, req.b, req.n, &small));
	assert_int_equal(r->count, 1);
	assert_int_equal(body_otlp_proto.rejected(r->st), 1);
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while ((v >>= 7) != 0)
		n++;
	return n;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/*
 * AnyValue arrays nested depth deep as a record body: the sizes from the
 * inside out first (any[k]: the AnyValue k levels up from the empty one
 * inside), then the bytes from the outside in.
 */
static uint8_t *
nested_proto(size_t depth, size_t *len)
{
	static const uint8_t outer_tag[4] = { 0x0a, 0x12, 0x12, 0x2a };
	size_t *any = calloc(depth + 1, sizeof(size_t)), arr, out[4], i;
	uint8_t *b, *p;

	assert_non_null(any);
	for (i = 1; i <= depth; i++) {
		arr = 1 + varint_len(any[i - 1]) + any[i - 1];
		any[i] = 1 + varint_len(arr) + arr;
	}
	/* LogRecord.body 5, ScopeLogs 2, ResourceLogs 2, request 1 */
	out[3] = 1 + varint_len(any[depth]) + any[depth];
	for (i = 3; i > 0; i--)
		out[i - 1] = 1 + varint_len(out[i]) + out[i];
	assert_non_null(b = p = malloc(out[0]));
	for (i = 0; i < 4; i++) {
		*p++ = outer_tag[i];
		p = put_varint(p, (i < 3 ? out[i + 1] : any[depth + 1 - 1]));
	}
	for (i = depth; i >= 1; i--) {
		arr = 1 + varint_len(any[i - 1]) + any[i - 1];
		*p++ = 0x2a; /* AnyValue.array_value */
		p = put_varint(p, arr);
		*p++ = 0x0a; /* ArrayValue.values */
		p = put_varint(p, any[i - 1]);
	}
	assert_int_equal((size_t)(p - b), out[0]);
	free(any);
	*len = out[0];
	return b;
}

static char *
nested_json(size_t depth)
{
	static const char open[] = "{\"arrayValue\":{\"values\":[",
			  close[] = "]}}";
	static const char head[] =
	    "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"body\":";
	static const char tail[] = "}]}]}]}";
	char *s = malloc(sizeof(head) + depth * (sizeof(open) + sizeof(close)) +
	    sizeof(tail) + 4);
	char *e;
	size_t i;

	assert_non_null(s);
	e = stpcpy(s, head);
	for (i = 0; i < depth; i++)
		e = stpcpy(e, open);
	e = stpcpy(e, "{}");
	for (i = 0; i < depth; i++)
		e = stpcpy(e, close);
	strcpy(e, tail);
	return s;
}

static void
test_depth(void **state)
{
	struct run *r = *state;
	struct body_limits big = lim;
	uint8_t *pb;
	char *js;
	size_t len;

	big.max_body_bytes = 64 << 20;
	/*
	 * Request, ResourceLogs, ScopeLogs, LogRecord, the body, then 2 per
	 * level: 13 levels are 31 deep.
	 */
	pb = nested_proto(13, &len);
	assert_null(decode(r, &body_otlp_proto, pb, len, &big));
	assert_int_equal(r->count, 1);
	assert_non_null(strstr(r->log, "|[[[[[[[[[[[[[null]]]]]]]]]]]]]|"));
	free(pb);
	pb = nested_proto(14, &len);
	assert_string_equal(
	    decode(r, &body_otlp_proto, pb, len, &big), "too-deep");
	free(pb);
	/* Far deeper than any stack: refused before protobuf-c recurses. */
	pb = nested_proto(1000000, &len);
	assert_string_equal(
	    decode(r, &body_otlp_proto, pb, len, &big), "too-deep");
	free(pb);
	/* JSON: 7 levels before the body, 3 per array level. */
	js = nested_json(8);
	assert_null(decode(r, &body_otlp_json, js, strlen(js), &big));
	assert_int_equal(r->count, 1);
	free(js);
	js = nested_json(9);
	assert_string_equal(
	    decode(r, &body_otlp_json, js, strlen(js), &big), "too-deep");
	free(js);
	js = nested_json(200000);
	assert_string_equal(
	    decode(r, &body_otlp_json, js, strlen(js), &big), "too-deep");
	free(js);
}

/* Bodies whose decoded form would cost far more than their size. */
static void
test_memory_budget(void **state)
{
	struct run *r = *state;
	struct body_limits big = lim;
	size_t n = 200000, i;
	uint8_t *pb = malloc(2 * n);
	char *js = malloc(3 * n + 32), *e;

	assert_non_null(pb);
	assert_non_null(js);
	big.max_body_bytes = 64 << 20;
	for (i = 0; i < n; i++) { /* empty ResourceLogs, 2 bytes each */
		pb[2 * i] = 0x0a;
		pb[2 * i + 1] = 0;
	}
	assert_string_equal(
	    decode(r, &body_otlp_proto, pb, 2 * n, &big), "too-complex");
	strcpy(js, "{\"resourceLogs\":[{}");
	e = js + strlen(js);
	for (i = 1; i < n; i++, e += 3)
		memcpy(e, ",{}", 3);
	strcpy(e, "]}");
	assert_string_equal(
	    decode(r, &body_otlp_json, js, strlen(js), &big), "too-complex");
	free(pb);
	free(js);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_proto_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_json_same_records, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_severity, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_partial_success, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_json_values, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bad_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_truncated_protobuf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_memory_budget, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
