/*
 * body_otlp internals shared by body_otlp.c (the decoder state, the
 * protobuf decoding, the mapping to records, the answer) and
 * body_otlp_json.c (OTLP/JSON turned into the same protobuf-c structures,
 * so that both encodings go through one mapping).  Not part of the public
 * API.
 */
#ifndef LOGSINK_BODY_OTLP_INT_H
#define LOGSINK_BODY_OTLP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"

#include "logsink/body.h"
#include "logsink/buf.h"

struct otlp_chunk;

/* The generated names, shortened: OTLP(Logs__V1__LogRecord). */
#define OTLP(name) Opentelemetry__Proto__##name
#define OTLP_REQ   OTLP(Collector__Logs__V1__ExportLogsServiceRequest)
#define OTLP_ANY   OTLP(Common__V1__AnyValue)
#define OTLP_KV    OTLP(Common__V1__KeyValue)

/*
 * The memory a body may cost while decoded, as a multiple of its length
 * (plus OTLP_MEM_SLACK): protobuf-c's structures for small fields are
 * ~28 times their wire size at worst (a 48-byte AnyValue and its 8-byte
 * pointer for 2 bytes of wire; the SDK's records: 8.4 times), json-c's
 * tree ~50 times for OTLP/JSON attributes (an object is ~800 bytes; the
 * SDK's records: 31 times; bench/otlp_decode, docs/performance.md).  A
 * body over its budget is refused ("too-complex") instead of growing.
 */
#define OTLP_MEM_FACTOR_PROTO 32
#define OTLP_MEM_FACTOR_JSON  64
#define OTLP_MEM_SLACK        (64 * 1024)

/* Where the first refused record was and why (the partial success text). */
struct otlp_reject {
	uint64_t n;
	const char *why; /* static text */
	size_t ri, si, li;
};

/*
 * One request body.  Owned by the HTTP request (body_decoder.new/free).
 * req and everything under it come from pa, an arena of chunks counted
 * against mem_budget and freed with the body.
 */
struct otlp {
	bool json;
	struct body_limits lim;
	ProtobufCAllocator pa; /* the arena of chunks, below */
	struct otlp_chunk *chunks;
	size_t chunk_next; /* the size of the next chunk */
	size_t mem_used, mem_budget;
	bool mem_refused; /* pa refused a block: over budget or ENOMEM */
	OTLP_REQ *req;    /* NULL until the body is decoded */
	bool decoded;     /* the whole body was seen */
	bool done;        /* every record was emitted or refused */
	const char *err;  /* error() */
	/* The next record: resource_logs[ri].scope_logs[si].log_records[li]. */
	size_t ri, si, li;
	bool res_ready, scope_ready; /* the caches below are for ri / si */
	struct buf res_json;         /* "resource":{...}, or empty */
	struct buf scope_json;       /* "scope":{...}, or empty */
	const char *app, *host;      /* service.name, host.name, or NULL */
	struct buf sc;               /* the current record's message+fields */
	struct otlp_reject rej;
};

/* Counts a refused record at (ri, si, li) with a static reason. */
void otlp_reject(struct otlp *, size_t ri, size_t si, size_t li, const char *);

/*
 * body_otlp_json.c: parses the OTLP/JSON body buf[0..len) into o->req
 * (records refused while converting are counted by otlp_reject() and left
 * out).  Sets o->err on failure.
 */
void otlp_json_decode(struct otlp *o, const char *buf, size_t len);

#endif
