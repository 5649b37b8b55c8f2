/*
 * relp: RELP frames -> commands, and our answers -> frames (see
 * include/logsink/relp.h for the frame and the session).
 *
 * Written from the RELP specification (rsyslog doc/relp.html); librelp is
 * GPL-3 and answers a syslog frame once its callback returns, before the
 * message is stored, so logsinkd has its own: the decoder here, the
 * session glue in listener_relp.c.
 */
#include <stdio.h>
#include <string.h>

#include "logsink/relp.h"

static const char *const relp_error_names[] = {
	"none",
	"malformed",
	"txnr",
	"oversized",
	"unknown_command",
	"not_open",
	"after_close",
	"truncated",
	"out_of_memory",
};

static const char *const relp_error_texts[] = {
	"no error",
	"malformed frame header or trailer",
	"transaction number out of sequence",
	"frame larger than max-line-bytes allows",
	"unknown command",
	"command before open (or a second open)",
	"frame after close",
	"connection closed inside a frame",
	"out of memory",
};

_Static_assert(
    sizeof(relp_error_names) / sizeof(relp_error_names[0]) == RELP_NERRORS,
    "a name for each relp_error");
_Static_assert(
    sizeof(relp_error_texts) / sizeof(relp_error_texts[0]) == RELP_NERRORS,
    "a text for each relp_error");

/*
 * Our offers (spec section "Offers"): the protocol version librelp
 * speaks (0), who we are, and that "syslog" is the one command beyond the
 * base ones.  omrelp refuses a server without commands=syslog.
 */
static const char relp_open_data[] = "200 OK\nrelp_version=0\n"
				     "relp_software=logsinkd\n"
				     "commands=syslog";

void
relp_init(struct relp *r, size_t max_data)
{
	memset(r, 0, sizeof(*r));
	r->max_data = max_data;
}

uint32_t
relp_txnr_next(uint32_t txnr)
{
	return txnr >= RELP_TXNR_MAX ? 1 : txnr + 1;
}

/* Parsed header of one frame. */
struct relp_hdr {
	uint32_t txnr;
	char cmd[RELP_COMMAND_MAX + 1];
	size_t datalen;
	size_t len; /* header bytes up to DATA (or up to the trailer) */
};

/*
 * A 1-9 digit number at buf[*pos..len), ended by a non-digit.  1: parsed,
 * *pos at the byte after it; 0: the bytes end inside it; -1: malformed.
 */
static int
parse_number(const char *buf, size_t len, size_t *pos, uint32_t *out)
{
	size_t i = *pos, start = *pos;
	uint32_t v = 0;

	while (i < len && buf[i] >= '0' && buf[i] <= '9') {
		if (i - start == 9)
			return -1;
		v = v * 10 + (uint32_t)(buf[i] - '0');
		i++;
	}
	if (i == len)
		return 0;
	if (i == start)
		return -1;
	*pos = i;
	*out = v;
	return 1;
}

/*
 * Parses the header at buf[0..len): 1 complete, 0 incomplete, -1
 * malformed.  Each call starts afresh: a header is at most
 * RELP_HEADER_MAX bytes, so this stays cheap.
 */
static int
parse_header(const char *buf, size_t len, struct relp_hdr *h)
{
	size_t pos = 0, n = 0;
	uint32_t datalen;
	int rc;

	if ((rc = parse_number(buf, len, &pos, &h->txnr)) != 1)
		return rc;
	if (buf[pos++] != ' ')
		return -1;
	while (pos < len &&
	    ((buf[pos] >= 'a' && buf[pos] <= 'z') ||
		(buf[pos] >= 'A' && buf[pos] <= 'Z'))) {
		if (n == RELP_COMMAND_MAX)
			return -1;
		h->cmd[n++] = buf[pos++];
	}
	if (pos == len)
		return 0;
	if (n == 0 || buf[pos++] != ' ')
		return -1;
	h->cmd[n] = '\0';
	if ((rc = parse_number(buf, len, &pos, &datalen)) != 1)
		return rc;
	h->datalen = datalen;
	/* DATALEN 0: the trailer follows; else SP and DATA. */
	if (buf[pos] != (datalen == 0 ? '\n' : ' '))
		return -1;
	h->len = datalen == 0 ? pos : pos + 1;
	return 1;
}

/* Checks a complete header against the session; RELP_OK or why not. */
static enum relp_error
relp_check(
    const struct relp *r, const struct relp_hdr *h, enum relp_command *cmd)
{
	if (strcmp(h->cmd, "syslog") == 0)
		*cmd = RELP_CMD_SYSLOG;
	else if (strcmp(h->cmd, "open") == 0)
		*cmd = RELP_CMD_OPEN;
	else if (strcmp(h->cmd, "close") == 0)
		*cmd = RELP_CMD_CLOSE;
	else
		return RELP_ERR_COMMAND;
	if (r->closed)
		return RELP_ERR_AFTER_CLOSE;
	if (h->txnr != relp_txnr_next(r->last_txnr) || h->txnr == 0)
		return RELP_ERR_TXNR;
	if ((*cmd == RELP_CMD_OPEN) == r->open)
		return RELP_ERR_NOT_OPEN;
	if (h->datalen > r->max_data)
		return RELP_ERR_OVERSIZED;
	return RELP_OK;
}

/*
 * One frame at buf[0..len): its length once taken, 0 when incomplete
 * (r->need set), or 0 with r->err set.
 */
static size_t
relp_one(struct relp *r, const char *buf, size_t len, bool *more,
    relp_frame_cb cb, void *arg)
{
	struct relp_hdr h;
	enum relp_command cmd;
	size_t total;
	int rc;

	rc = parse_header(
	    buf, len < RELP_HEADER_MAX ? len : RELP_HEADER_MAX, &h);
	if (rc == 0 && len >= RELP_HEADER_MAX)
		rc = -1; /* longer than any valid header */
	if (rc == 0) {
		r->need = len + 1;
		return 0;
	}
	if (rc == -1) {
		r->err = RELP_ERR_MALFORMED;
		return 0;
	}
	if ((r->err = relp_check(r, &h, &cmd)) != RELP_OK) {
		if (r->err != RELP_ERR_TXNR)
			r->err_txnr = h.txnr;
		return 0;
	}
	total = h.len + h.datalen + 1;
	if (len < total) {
		r->need = total;
		return 0;
	}
	if (buf[total - 1] != '\n') {
		r->err = RELP_ERR_MALFORMED;
		return 0;
	}
	r->last_txnr = h.txnr;
	if (cmd == RELP_CMD_OPEN)
		r->open = true;
	else if (cmd == RELP_CMD_CLOSE)
		r->closed = true;
	*more = cb(arg, h.txnr, cmd, buf + h.len, h.datalen);
	return total;
}

size_t
relp_feed(struct relp *r, const char *buf, size_t len, bool eof,
    relp_frame_cb cb, void *arg)
{
	size_t used = 0, n;
	bool more = true;

	r->need = 0;
	while (more && r->err == RELP_OK && used < len) {
		n = relp_one(r, buf + used, len - used, &more, cb, arg);
		if (n == 0)
			break;
		used += n;
	}
	if (r->err == RELP_OK && more && eof && used < len) {
		r->err = RELP_ERR_TRUNCATED;
		r->need = 0;
	}
	if (r->err != RELP_OK)
		r->need = 0;
	return used;
}

size_t
relp_format(char *out, size_t outlen, uint32_t txnr, const char *command,
    const char *data, size_t len)
{
	int n;

	if (len == 0)
		n = snprintf(out, outlen, "%u %s 0\n", (unsigned)txnr, command);
	else
		n = snprintf(out, outlen, "%u %s %zu %.*s\n", (unsigned)txnr,
		    command, len, (int)len, data);
	if (n < 0 || (size_t)n >= outlen)
		return 0;
	return (size_t)n;
}

size_t
relp_format_ok(char *out, uint32_t txnr)
{
	static const char tail[] = " rsp 6 200 OK\n";
	char digits[10];
	size_t n = 0, i;

	do {
		digits[n++] = (char)('0' + txnr % 10);
		txnr /= 10;
	} while (txnr > 0);
	for (i = 0; i < n; i++)
		out[i] = digits[n - 1 - i];
	memcpy(out + n, tail, sizeof(tail) - 1);
	return n + sizeof(tail) - 1;
}

const char *
relp_open_answer(void)
{
	return relp_open_data;
}

const char *
relp_error_name(enum relp_error err)
{
	return (unsigned)err < RELP_NERRORS ? relp_error_names[err] : "?";
}

const char *
relp_error_text(enum relp_error err)
{
	return (unsigned)err < RELP_NERRORS ? relp_error_texts[err] : "?";
}
