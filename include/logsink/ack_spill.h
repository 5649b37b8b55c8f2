/*
 * ack_spill: the acknowledgement runs of batches that went to the spool.
 * The lines are on disk, but their senders still wait: each run is kept
 * here, in memory, under the position of the spool record holding it,
 * until that record is replayed (the runs go back into its batch), made
 * durable (ack=spooled runs are credited) or skipped as corrupt (the runs
 * are dropped).  Records are spilled and replayed in position order, so
 * this is a FIFO whose consumed front is compacted away.
 *
 * A pure leaf: no I/O, no logging, no queue internals.  The queue passes
 * positions and callbacks in, and charges ack_spill_bytes() against its
 * limit.
 */
#ifndef LOGSINK_ACK_SPILL_H
#define LOGSINK_ACK_SPILL_H

#include <stddef.h>

#include "logsink/batch.h"
#include "logsink/spool.h"

struct ack_spill;

/* Hands one run to its replayed batch; -1 if memory ran out. */
typedef int (*ack_spill_give_cb)(void *arg, const struct batch_ack *run);

/* An empty ledger; NULL if memory ran out. */
struct ack_spill *ack_spill_new(void);
/* Frees the ledger; the runs still in it get drop (NULL: nothing held). */
void ack_spill_free(struct ack_spill *as, batch_ack_cb drop);

/*
 * Makes room for n more runs, so that ack_spill_push() cannot fail once
 * the record is written; compacts the consumed front first.  -1 (ENOMEM)
 * if memory ran out: nothing changed.
 */
int ack_spill_reserve(struct ack_spill *as, size_t n)
    __attribute__((warn_unused_result));
/* Keeps run under the record at pos (not before the newest one kept);
 * room must have been reserved. */
void ack_spill_push(struct ack_spill *as, const struct spool_pos *pos,
    const struct batch_ack *run);

/*
 * The record at pos is replayed: its ack=commit runs go to give(arg, run),
 * oldest first; its ack=spooled runs stay, credited by whichever comes
 * first, ack_spill_credit_synced() or ack_spill_done() (so a replayed batch
 * stuck in a writer does not hold back their acknowledgement); the runs of
 * earlier records (skipped as corrupt) go to drop.  If give fails, that run
 * and the later ones stay (they are dropped with the next record, or by
 * ack_spill_free()).
 */
void ack_spill_attach(struct ack_spill *as, const struct spool_pos *pos,
    ack_spill_give_cb give, void *arg, batch_ack_cb drop);
/* The record at pos, replayed, is stored: its ack=spooled runs not yet
 * credited by a sync go to credit. */
void ack_spill_done(
    struct ack_spill *as, const struct spool_pos *pos, batch_ack_cb credit);
/* Every record before synced is durable: its ack=spooled runs go to
 * credit; the others (ack=commit) stay until their record is replayed. */
void ack_spill_credit_synced(
    struct ack_spill *as, const struct spool_pos *synced, batch_ack_cb credit);

/* Memory held for the runs kept, as the queue charges it. */
size_t ack_spill_bytes(const struct ack_spill *as);
/* Runs kept, and the slots allocated for them (consumed ones included). */
size_t ack_spill_runs(const struct ack_spill *as);
size_t ack_spill_slots(const struct ack_spill *as);

#endif
