/*
 * libFuzzer target for the receive path: framing (every framing, split at
 * a point taken from the input) -> parsing -> COPY encoding, and the same
 * bytes as RELP frames (relp.h) whose syslog DATA goes the same way.
 * Checks that nothing crashes, that the framer and the RELP decoder never
 * consume more than they were given (and at EOF take all or fail), and
 * that every encoded row is a single line.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "logsink/buf.h"
#include "logsink/copyenc.h"
#include "logsink/framer.h"
#include "logsink/parser.h"
#include "logsink/record.h"
#include "logsink/relp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct buf scratch, row, row2;

static bool
on_msg(void *arg, const char *msg, size_t len, bool truncated)
{
	struct record rec = { .received_us = 1763700000000000LL,
		.peer = "127.0.0.1" };
	struct record dec;
	size_t replaced, i, text_len;
	char peer[64];

	(void)arg;
	(void)truncated;
	assert(len > 0);
	if (parser_parse(&rec, msg, len, PARSER_AUTO, &scratch) == -1)
		return true;
	/* The text row is one line without NUL. */
	buf_reset(&row);
	if (copyenc_row_text(&row, &rec, &replaced) == -1)
		return true;
	assert(row.len > 0 && row.data[row.len - 1] == '\n');
	for (i = 0; i + 1 < row.len; i++)
		assert(row.data[i] != '\n' && row.data[i] != '\0');
	/* The binary row is whole and decodes to the same text row. */
	text_len = row.len;
	if (copyenc_row(&row, &rec, &replaced) == -1)
		return true;
	assert(copyenc_row_size(row.data + text_len, row.len - text_len) ==
	    row.len - text_len);
	assert(copyenc_decode(row.data + text_len, row.len - text_len, &dec,
		   peer, sizeof(peer)) == 0);
	buf_reset(&row2);
	if (copyenc_row_text(&row2, &dec, &replaced) == -1)
		return true;
	assert(replaced == 0);
	assert(
	    row2.len == text_len && memcmp(row2.data, row.data, text_len) == 0);
	return true;
}

/* Feeds data in two pieces, keeping unconsumed bytes as the listener does. */
static void
feed_split(enum framer_mode mode, const char *data, size_t size, size_t cut)
{
	struct framer f;
	struct buf pend = { 0 };
	size_t used;

	framer_init(&f, 256, mode);
	if (buf_append(&pend, data, cut) == -1)
		return;
	used = framer_feed(&f, pend.data, pend.len, false, on_msg, NULL);
	assert(used <= pend.len);
	if (used > 0) {
		memmove(pend.data, pend.data + used, pend.len - used);
		pend.len -= used;
	}
	if (buf_append(&pend, data + cut, size - cut) == 0) {
		used = framer_feed(&f, pend.data, pend.len, true, on_msg, NULL);
		assert(used == pend.len);
	}
	buf_free(&pend);
}

/* relp_feed() callback: syslog DATA is parsed and encoded. */
static bool
on_relp(void *arg, uint32_t txnr, enum relp_command cmd, const char *data,
    size_t len)
{
	(void)arg;
	assert(txnr >= 1 && txnr <= RELP_TXNR_MAX);
	assert(len <= 256);
	if (cmd == RELP_CMD_SYSLOG && len > 0)
		on_msg(NULL, data, len, false);
	return true;
}

/*
 * The input as a RELP stream in two pieces; with open set, as if an open
 * with txnr 1 had come already (so syslog frames are reached without
 * one).
 */
static void
feed_relp(const char *data, size_t size, size_t cut, bool open)
{
	struct relp r;
	struct buf pend = { 0 };
	size_t used;

	relp_init(&r, 256);
	if (open) {
		r.open = true;
		r.last_txnr = 1;
	}
	if (buf_append(&pend, data, cut) == -1)
		return;
	used = relp_feed(&r, pend.data, pend.len, false, on_relp, NULL);
	assert(used <= pend.len);
	assert(
	    r.err != RELP_OK || used == pend.len || r.need > pend.len - used);
	if (used > 0) {
		memmove(pend.data, pend.data + used, pend.len - used);
		pend.len -= used;
	}
	if (r.err == RELP_OK &&
	    buf_append(&pend, data + cut, size - cut) == 0) {
		used = relp_feed(&r, pend.data, pend.len, true, on_relp, NULL);
		assert(used <= pend.len);
		assert(r.err != RELP_OK || used == pend.len);
	}
	buf_free(&pend);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut;
	int mode;

	if (size < 1)
		return 0;
	cut = data[0] % size;
	for (mode = FRAMER_AUTO; mode <= FRAMER_OCTET; mode++)
		feed_split((enum framer_mode)mode, (const char *)data + 1,
		    size - 1, cut < size - 1 ? cut : size - 1);
	feed_relp((const char *)data + 1, size - 1,
	    cut < size - 1 ? cut : size - 1, data[0] & 1);
	/* The parser on the whole input as one message, too. */
	on_msg(NULL, (const char *)data, size, false);
	return 0;
}
