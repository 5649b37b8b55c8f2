/*
 * forward: the server side of the Fluent forward protocol (Forward
 * Protocol Specification v1, fluent/fluentd wiki), as Fluentd's
 * out_forward, Fluent Bit's forward output and the fluent-logger
 * libraries send it over TCP.  Every message is one MessagePack array
 * (decoded with msgpack-c), in one of four modes:
 *
 *   Message                  [tag, time, record, option?]
 *   Forward                  [tag, [[time, record], ...], option?]
 *   PackedForward            [tag, bin|str, option?]: the bytes are the
 *                            entries [time, record] packed one after another
 *   CompressedPackedForward  PackedForward with option compressed: "gzip";
 *                            the bytes are gzip data (one member or several
 *                            concatenated) of such entries
 *
 * time is an EventTime (ext type 0: 32-bit seconds, 32-bit nanoseconds,
 * big-endian), an integer of seconds or a float.  option is a map: chunk
 * (a string) asks for the answer {"ack": chunk} once every entry of the
 * message is stored; size (entries, or bytes) and compressed are read as
 * above; other keys are ignored.  An entry's time may also be Fluent Bit's
 * [time, metadata] pair.
 *
 * Mapping of an entry to the columns of a record:
 *   app       <- the tag
 *   message   <- the record's message, msg or log (the first of these
 *                present; a string as is, another value as JSON text)
 *   host      <- host, hostname (strings only)
 *   severity  <- level, severity (names as in JSON lines, 0..7, pino
 *                levels 10..60)
 *   event     <- the entry's time
 *   fields    <- every other key, as a JSON object (NULL when none):
 *                maps and arrays as JSON, binary and extension values as
 *                base64 strings, floats that are not finite as null; keys
 *                that are not strings become their JSON text
 *
 * Limits (enum forward_error): a message over max_message_bytes (counted
 * as it arrives: a declared length past it fails at once), more than
 * max_entries entries, containers nested deeper than FORWARD_MAX_DEPTH
 * (msgpack-c's fixed stack), an entry of more than FORWARD_MAX_VALUES
 * values (what msgpack-c allocates for one entry: about 24 bytes a value),
 * and CompressedPackedForward entries that inflate past
 * max_message_bytes (a decompression bomb) are errors.  Each message is
 * walked once without allocating before msgpack-c decodes it, so a
 * declared length never reaches an allocation before its bytes are here.
 *
 * Leaf module: no I/O, no logging, no globals.  The caller owns the bytes
 * of the message; records point into them, into the decoder's inflated
 * entries, or into the caller's scratch buffer, until the next call.
 */
#ifndef LOGSINK_FORWARD_H
#define LOGSINK_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/buf.h"
#include "logsink/record.h"

/* Containers nested in one message (msgpack-c's stack is 32 deep). */
#define FORWARD_MAX_DEPTH  32
/* Values in one entry (its decoded form costs about 24 bytes each). */
#define FORWARD_MAX_VALUES (1u << 16)
/* Longest chunk option accepted (fluent-logger: 24, Fluentd: 24). */
#define FORWARD_MAX_CHUNK  128
/* Room for one {"ack": chunk} answer. */
#define FORWARD_ACK_MAX    (FORWARD_MAX_CHUNK + 16)

enum forward_error {
	FORWARD_OK,
	FORWARD_ERR_MALFORMED,  /* not MessagePack, or not a forward message */
	FORWARD_ERR_TOO_BIG,    /* over max_message_bytes */
	FORWARD_ERR_NESTING,    /* deeper than FORWARD_MAX_DEPTH */
	FORWARD_ERR_ENTRIES,    /* more than max_entries entries */
	FORWARD_ERR_ENTRY,      /* an entry of too many values, or cut */
	FORWARD_ERR_GZIP,       /* compressed entries that do not inflate */
	FORWARD_ERR_INFLATED,   /* inflated past max_message_bytes */
	FORWARD_ERR_HANDSHAKE,  /* no PING, or a PING with the wrong key */
	FORWARD_ERR_UNANSWERED, /* set by the owner: too many chunks unread */
	FORWARD_ERR_TRUNCATED,  /* the peer closed inside a message */
	FORWARD_ERR_NOMEM,      /* out of memory (also set by the owner) */
	FORWARD_NERRORS,
};

enum forward_mode {
	FORWARD_MESSAGE,
	FORWARD_FORWARD,
	FORWARD_PACKED,
	FORWARD_COMPRESSED,
	FORWARD_NMODES,
};

/* Owned by its connection; freed by forward_free(). */
struct forward;

/* A decoder for one connection; NULL when out of memory. */
struct forward *forward_new(size_t max_message_bytes, size_t max_entries);
void forward_free(struct forward *f);

/*
 * Finds the message at the start of buf[0, len): its length, once all of
 * it is there.  0: not yet (forward_need() says how many bytes it needs
 * at least, 0 when it cannot tell) or an error (forward_err(); eof: the
 * peer closed, so an unfinished message is FORWARD_ERR_TRUNCATED).
 */
size_t forward_frame(struct forward *f, const char *buf, size_t len, bool eof)
    __attribute__((warn_unused_result));
size_t forward_need(const struct forward *f);

/*
 * Starts decoding the message buf[0, len) that forward_frame() found: its
 * mode, tag and options; its entries follow with forward_next().  -1: an
 * error (forward_err()).
 */
int forward_begin(struct forward *f, const char *buf, size_t len)
    __attribute__((warn_unused_result));

/*
 * The next entry of the message begun into the parsed columns of rec
 * (received_us, peer and tls_subject are left alone); fields are built in
 * scratch.  1: rec filled; 0: no more entries; -1: an error
 * (forward_err()).  rec stays valid until the next call.
 */
int forward_next(struct forward *f, struct record *rec, struct buf *scratch)
    __attribute__((warn_unused_result));

/*
 * Passes over the next n entries without decoding them (they were taken
 * before the queue filled, and the message is begun again).  -1: fewer
 * than n are left.
 */
int forward_skip(struct forward *f, size_t n)
    __attribute__((warn_unused_result));

/* The message begun: its mode, its entries so far, its chunk or NULL. */
enum forward_mode forward_mode(const struct forward *f);
/* Entries so far, on this decoder, that were not [time, map] (stored whole
 * as the message). */
uint64_t forward_odd(const struct forward *f);
size_t forward_entries(const struct forward *f);
const char *forward_chunk(const struct forward *f, size_t *len);

/*
 * The shared-key handshake (the specification's Handshake Messages), on a
 * listener with a shared key: we send HELO ["HELO", {nonce, auth: "",
 * keepalive: true}] first; the client answers PING ["PING", hostname,
 * salt, sha512_hex(salt + hostname + nonce + key), username, password]
 * (no user authentication: the last two are ignored); we answer PONG
 * ["PONG", ok, reason, our hostname, sha512_hex(salt + our hostname +
 * nonce + key)], and messages follow.  The digests are the owner's (no
 * OpenSSL here).
 */
#define FORWARD_NONCE_BYTES 16
#define FORWARD_MAX_KEY     255
#define FORWARD_MAX_PING    4096

struct forward_ping {
	struct text hostname, salt, digest; /* point into the PING's bytes */
};

/*
 * The PING at the start of buf[0, len): its length once whole, p filled.
 * 0: not yet (forward_need()) or an error (forward_err():
 * FORWARD_ERR_HANDSHAKE when it is not a PING).
 */
size_t forward_ping(struct forward *f, const char *buf, size_t len, bool eof,
    struct forward_ping *p) __attribute__((warn_unused_result));
/* Appends HELO with nonce, or PONG; -1: out of memory. */
int forward_format_helo(struct buf *out, const unsigned char *nonce, size_t len)
    __attribute__((warn_unused_result));
int forward_format_pong(struct buf *out, bool ok, const char *reason,
    const char *hostname, const char *digest)
    __attribute__((warn_unused_result));

/* Writes {"ack": chunk} (MessagePack) into out (FORWARD_ACK_MAX bytes);
 * returns its length. */
size_t forward_format_ack(char *out, const char *chunk, size_t len);

enum forward_error forward_err(const struct forward *f);
/* Sets an error of the owner's (FORWARD_ERR_NOMEM). */
void forward_set_err(struct forward *f, enum forward_error err);
/* "malformed", "too_big"...: for metrics labels and log lines. */
const char *forward_error_name(enum forward_error err);
/* A sentence for log lines. */
const char *forward_error_text(enum forward_error err);
const char *forward_mode_name(enum forward_mode mode);

#endif
