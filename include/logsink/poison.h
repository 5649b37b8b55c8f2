/*
 * poison: isolating the rows PostgreSQL rejects.  When a batch's COPY
 * fails because of its data, the batch is bisected: each half is sent in
 * its own COPY, halves that fail are split again, and a single row that
 * still fails goes to the dead-letter table (<table>_rejected) instead.
 * Every other row commits; nothing is retried forever.  The ranges left to
 * send live in the batch, so a batch that goes back to the queue after a
 * connection failure resumes where it was.  Leaf module.
 */
#ifndef LOGSINK_POISON_H
#define LOGSINK_POISON_H

#include <stdbool.h>
#include <stddef.h>

#include "logsink/batch.h"
#include "logsink/buf.h"

/* SQLSTATEs caused by the rows themselves (classes 22, 23, P0, 54). */
bool poison_is_data_error(const char *sqlstate);

/* The rows to send now: the top range, or the whole batch. */
void poison_current(const struct batch *b, struct batch_range *r);

/* The current range failed and holds more than one row: replace it by
 * its two halves (the first half is sent next).  -1 on ENOMEM. */
int poison_split(struct batch *b) __attribute__((warn_unused_result));

/* The current range is stored (or dead-lettered); true when the batch is
 * complete. */
bool poison_pop(struct batch *b);

/*
 * Decodes one row of a batch (copyenc binary format, len bytes) for the
 * dead-letter insert: received_at text and peer text (empty for NULL)
 * into the caller's buffers (ralen >= 40), the message's bytes into raw
 * (with room for a NUL after them), the row in COPY text format without
 * its LF into text_row (NUL-terminated), and the tls_subject into subject
 * (NUL-terminated; *has_subject false when it is NULL).  -1 if it is not
 * such a row or memory ran out.
 */
int poison_row_fields(const char *row, size_t len, char *received_at,
    size_t ralen, char *peer, size_t peerlen, struct buf *raw,
    struct buf *text_row, struct buf *subject, bool *has_subject)
    __attribute__((warn_unused_result));

#endif
