/*
 * body: the decoders of HTTP request bodies.  listener_http.c routes a
 * request by its path (and Content-Type) to one decoder, undoes the
 * Content-Encoding and the chunked transfer coding, and feeds the plain
 * body bytes to it as they arrive; the decoder turns them into records.
 *
 * One decoder per format: body_json.c (NDJSON, a JSON array, or text
 * lines), body_journal.c (the Journal Export Format of
 * systemd-journal-upload), body_otlp.c (OTLP logs, protobuf and JSON).
 *
 * Leaf modules: no I/O, no logging, no globals.  A decoder fills only the
 * parsed columns of a record (record_clear_parsed()); the glue sets
 * received_us, peer and tls_subject.
 */
#ifndef LOGSINK_BODY_H
#define LOGSINK_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/record.h"

struct body_limits {
	size_t max_entry_bytes; /* one entry (a line, a journal entry, a
				   field value): max-line-bytes */
	size_t max_body_bytes;  /* a body a decoder must hold whole (OTLP, a
				   JSON array): http-max-body-bytes */
	int max_depth;          /* JSON or protobuf nesting */
};

/*
 * One decoded entry.  rec's columns point into the decoder's memory and
 * are valid only during the call.  Returns false to make feed() stop
 * after this entry (the queue is full); the next feed() resumes with the
 * entry after it.
 */
typedef bool (*body_record_cb)(void *arg, struct record *rec);

struct body_decoder {
	const char *name; /* "json", "journal", "otlp-proto", "otlp-json":
			     for metrics labels and log lines */
	/* Decoder state for one request body; NULL: out of memory. */
	void *(*new)(const struct body_limits *lim);
	void (*free)(void *st);
	/*
	 * framer_feed()'s contract: decodes a prefix of the contiguous bytes
	 * buf[0..len) and returns its length; end: no byte follows buf (the
	 * body is complete).  Unconsumed bytes are fed again with what
	 * arrived after them appended.  When nothing could be consumed,
	 * *need says how many contiguous bytes the next step wants (SIZE_MAX:
	 * all of the body; a decoder that needs the whole body consumes
	 * nothing until end).  After a stop (cb returned false) it returns at
	 * once; the caller feeds again later, possibly with len == 0.  After
	 * an error it consumes everything and emits nothing more.
	 */
	size_t (*feed)(void *st, const char *buf, size_t len, bool end,
	    size_t *need, body_record_cb cb, void *arg);
	/*
	 * NULL while the body is fine, else a short reason for the metric
	 * label and the 400 answer ("bad-json", "entry-too-large", ...).
	 */
	const char *(*error)(const void *st);
	/*
	 * After the whole body was fed: writes the success answer's body
	 * into out (at most cap bytes), sets *content_type, returns its
	 * length (0: an empty body).  OTLP writes an
	 * ExportLogsServiceResponse, with partial_success when entries were
	 * rejected.  NULL in the table: an empty 200/204 answer.
	 */
	size_t (*answer)(
	    const void *st, char *out, size_t cap, const char **content_type);
	/* Entries refused inside a good body (OTLP partial success). */
	uint64_t (*rejected)(const void *st);
};

extern const struct body_decoder body_json;       /* application/json */
extern const struct body_decoder body_json_lines; /* NDJSON, text lines */
extern const struct body_decoder body_journal;
extern const struct body_decoder body_otlp_proto;
extern const struct body_decoder body_otlp_json;

#endif
