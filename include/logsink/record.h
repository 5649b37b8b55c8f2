/*
 * record: one received message, split into the columns of the log table.
 * Pointers borrow memory (the connection's input, or the parser's scratch
 * buffer); a record lives only until it has been encoded into a batch.
 */
#ifndef LOGSINK_RECORD_H
#define LOGSINK_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A borrowed byte string; ptr == NULL means SQL NULL. */
struct text {
	const char *ptr;
	size_t len;
};

struct record {
	int64_t received_us;     /* microseconds since the Unix epoch, UTC */
	const char *peer;        /* inet text, NUL-terminated, or NULL */
	struct text tls_subject; /* verified client certificate (RFC 2253),
				    or NULL */
	struct text host;
	struct text app;
	struct text procid;
	struct text msgid;
	int facility;     /* 0..23, or -1 for NULL */
	int severity;     /* 0..7, or -1 for NULL */
	int64_t event_us; /* valid when has_event_time */
	bool has_event_time;
	struct text message; /* never NULL in the table: empty if ptr NULL */
	struct text fields;  /* JSON object text, or NULL */
};

/*
 * Resets every parsed column to NULL, keeping received_us, peer and
 * tls_subject (they come from the connection).
 */
static inline void
record_clear_parsed(struct record *r)
{
	r->host.ptr = r->app.ptr = r->procid.ptr = r->msgid.ptr = NULL;
	r->host.len = r->app.len = r->procid.len = r->msgid.len = 0;
	r->facility = r->severity = -1;
	r->event_us = 0;
	r->has_event_time = false;
	r->message.ptr = r->fields.ptr = NULL;
	r->message.len = r->fields.len = 0;
}

#endif
