/*
 * relp: the server side of RELP, the Reliable Event Logging Protocol that
 * rsyslog's omrelp speaks (spec: rsyslog's doc/relp.html, librelp's
 * doc/relp.html; written here from the spec, no librelp code).
 *
 * A frame, both ways:
 *
 *   TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER
 *
 *   TXNR     1-9 digits, 1 .. 999999999; the sender's transaction number,
 *            1 for its first frame and one more for each frame after,
 *            wrapping from 999999999 to 1.  0 is for unsolicited frames
 *            (our serverclose).
 *   COMMAND  1-32 letters: open, syslog, close from the client; rsp and
 *            serverclose from us.
 *   DATALEN  1-9 digits: the bytes of DATA; 0 means no SP and no DATA.
 *   TRAILER  LF.
 *
 * The session: the client's first frame is "open" (DATA: its offers,
 * "relp_version=0\nrelp_software=...\ncommands=syslog"); we answer
 * "TXNR rsp N 200 OK\n<our offers>".  Then any number of "syslog" frames
 * (DATA: one syslog message), sent without waiting (the window); each is
 * answered "TXNR rsp 6 200 OK" once stored, in txnr order.  "close" is
 * answered "rsp 200" and the connection closed.  We send "0 serverclose
 * 0" before closing on our own (shutdown, a protocol error).
 *
 * Anything else is a protocol error (enum relp_error): the decoder stops
 * for good, and the owner answers and closes (relp_error_name() names the
 * reason for metrics and logs).
 *
 * Leaf module: no I/O, no logging, no globals.  The caller owns the bytes;
 * the decoder keeps no pointer into them.
 */
#ifndef LOGSINK_RELP_H
#define LOGSINK_RELP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELP_TXNR_MAX    999999999u
/* Longest header: 9 digits, SP, 32 letters, SP, 9 digits, SP. */
#define RELP_HEADER_MAX  (9 + 1 + 32 + 1 + 9 + 1)
#define RELP_COMMAND_MAX 32
/* Room for one answer frame with "200 OK" or a short error text. */
#define RELP_RSP_MAX     160

enum relp_command {
	RELP_CMD_OPEN,
	RELP_CMD_SYSLOG,
	RELP_CMD_CLOSE,
};

enum relp_error {
	RELP_OK,
	RELP_ERR_MALFORMED,   /* a header not as above, or no LF trailer */
	RELP_ERR_TXNR,        /* not the previous txnr + 1 */
	RELP_ERR_OVERSIZED,   /* DATALEN over max_data */
	RELP_ERR_COMMAND,     /* a command we do not know */
	RELP_ERR_NOT_OPEN,    /* a command before open, or a second open */
	RELP_ERR_AFTER_CLOSE, /* a frame after close */
	RELP_ERR_TRUNCATED,   /* EOF inside a frame */
	RELP_ERR_NOMEM,       /* set by the owner: a message not queued */
	RELP_NERRORS,
};

/*
 * Called once per frame; data is valid only during the call.  Returns
 * false to make relp_feed() stop after this frame (the queue is full).
 */
typedef bool (*relp_frame_cb)(void *arg, uint32_t txnr, enum relp_command cmd,
    const char *data, size_t len);

/* Embedded in its connection; holds no memory. */
struct relp {
	size_t max_data;     /* largest DATALEN accepted */
	uint32_t last_txnr;  /* of the last frame taken, 0 before the first */
	bool open;           /* "open" was taken */
	bool closed;         /* "close" was taken */
	enum relp_error err; /* set once; nothing is decoded after it */
	uint32_t err_txnr;   /* the failing frame's txnr when its header
				parsed (unknown command, not open,
				oversized, after close), else 0 */
	size_t need;         /* see relp_feed() */
};

void relp_init(struct relp *r, size_t max_data);

/*
 * Decodes the complete frames in the contiguous bytes buf[0..len) and
 * returns how many bytes were consumed.  Unconsumed bytes are an
 * incomplete frame (then r->need says how many contiguous bytes the next
 * step wants, more than len), or were not looked at because cb returned
 * false, or follow an error (r->err is set; the decoder takes nothing
 * more).  eof: no more bytes will come, so an incomplete frame is
 * RELP_ERR_TRUNCATED (nothing at all is fine).
 */
size_t relp_feed(struct relp *r, const char *buf, size_t len, bool eof,
    relp_frame_cb cb, void *arg);

/* The txnr after txnr: 999999999 wraps to 1. */
uint32_t relp_txnr_next(uint32_t txnr);

/*
 * Formats the frame "TXNR rsp LEN DATA\n" (no SP, no DATA when len is 0)
 * into out; returns its length, or 0 if it does not fit in outlen.
 */
size_t relp_format(char *out, size_t outlen, uint32_t txnr, const char *command,
    const char *data, size_t len);

/*
 * "TXNR rsp 6 200 OK\n", the answer to each stored message, into out
 * (at least RELP_OK_MAX bytes); returns its length.  Without snprintf:
 * this is once per message (snprintf was 40% of the daemon's
 * instructions per RELP message).
 */
#define RELP_OK_MAX 32
size_t relp_format_ok(char *out, uint32_t txnr);

/* The DATA of our answer to open: "200 OK" and our offers. */
const char *relp_open_answer(void);

/* "malformed", "txnr", ... for metrics labels and log lines. */
const char *relp_error_name(enum relp_error err);
/* A sentence for log lines and the rsp 500 text. */
const char *relp_error_text(enum relp_error err);

#endif
