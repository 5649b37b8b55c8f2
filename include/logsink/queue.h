/*
 * queue: the bounded in-memory queue between the listeners and the
 * database writers.  Records are encoded into COPY rows as they arrive and
 * gathered into batches: the open batch fills until it has batch_lines
 * lines or batch_bytes bytes, then it is sealed and waits for a writer.
 *
 * Every byte the queue holds counts against its limit, including batches a
 * writer has taken but not yet committed: a batch leaves the queue only
 * through queue_done().  Once the limit is reached the queue reports full
 * until it drains below the resume level; its owner stops reading from
 * clients meanwhile.
 *
 * With a spool (queue_set_spool), a full queue first moves its oldest
 * waiting batches to disk and reports full only when the spool cannot
 * take them; batches holding lines of ack=spooled senders go to disk as
 * soon as they are sealed.  Writers take spooled batches (oldest first)
 * before the ones in memory.  Acknowledgement runs of spooled batches are
 * kept in memory (charged against the limit) and reattached on replay.
 *
 * The module spans queue.c (FIFO, encoder/sealer, accounting) and
 * queue_spool.c (spill, replay, retry list; the runs are kept by
 * ack_spill.h), sharing src/queue_int.h.  A batch is opaque here
 * (batch.h): writers read it through batch_rows() and friends.
 */
#ifndef LOGSINK_QUEUE_H
#define LOGSINK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logsink/batch.h"
#include "logsink/record.h"
#include "logsink/spool.h"

/*
 * Acknowledgement handles (listener-owned, opaque here): take is called
 * when a batch starts a run of a sender's lines (the batch now holds a
 * reference), credit when that batch commits, drop when it is freed
 * without committing (shutdown); credit and drop release the reference.
 * Called as f(ref, first, n) for lines first .. first + n - 1 (take: n 0).
 */
typedef batch_ack_cb queue_ack_cb;

struct queue;

/*
 * Called when a sealed batch becomes available or the open batch receives
 * its first line (data), and when the queue drops below its resume level
 * after having been full (space).
 */
typedef void (*queue_cb)(void *arg);

struct queue *queue_new(size_t limit_bytes, int resume_percent,
    uint32_t batch_lines, size_t batch_bytes);
void queue_free(struct queue *q);
void queue_set_callbacks(
    struct queue *q, queue_cb on_data, queue_cb on_space, void *arg);
void queue_set_batch_limits(
    struct queue *q, uint32_t batch_lines, size_t batch_bytes);
void queue_set_ack_callbacks(
    struct queue *q, queue_ack_cb take, queue_ack_cb credit, queue_ack_cb drop);

/*
 * Encodes rec into the open batch.  *replaced gets the number of bytes
 * replaced by U+FFFD.  -1 (ENOMEM) if memory ran out; the record is then
 * not queued.  A full queue still accepts records (the caller stops
 * reading); the overshoot is bounded by what one read delivers.
 */
int queue_append(struct queue *q, const struct record *rec, size_t *replaced)
    __attribute__((warn_unused_result));
/* The same, remembering that the line is line seq (from 0) of the sender
 * ack_ref (the batch holds a reference until queue_ack_cb releases it);
 * at_spool: credit the line once it is durable in the spool, not only
 * when it is committed. */
int queue_append_acked(struct queue *q, const struct record *rec,
    size_t *replaced, void *ack_ref, uint64_t seq, bool at_spool)
    __attribute__((warn_unused_result));

/*
 * Per-source accounting, for fair back-pressure (listener.h): the rows
 * appended between queue_source_begin(q, src) and queue_source_end(q) are
 * attributed to src (the caller's token, not 0).  When they leave memory
 * (committed, or written to the spool) the queue calls release(arg, src,
 * bytes) for them, from inside queue_done() or an append: it must only
 * count.  The cost is a call pair per round of appends (a read), and
 * one run per source and batch; nothing per line.
 */
typedef void (*queue_src_cb)(void *arg, uint64_t src, size_t bytes);
void queue_set_source_callback(
    struct queue *q, queue_src_cb release, void *arg);
void queue_source_begin(struct queue *q, uint64_t src);
/* Ends the round: the row bytes attributed to its source. */
size_t queue_source_end(struct queue *q);

/* Gives the queue a spool (owned by the caller, outliving the queue). */
void queue_set_spool(struct queue *q, struct spool *sp);
/*
 * Periodic spool upkeep (every spool-sync interval): seals and spools the
 * open batch if it holds ack=spooled lines, retries spooling when full,
 * asks the spool's sync thread for an fdatasync (never waiting for it),
 * and saves replay progress.
 */
void queue_tick(struct queue *q);
/*
 * The spool's sync fd (spool_sync_fd) is readable: credits the
 * ack=spooled lines whose records the finished fdatasync made durable.
 */
void queue_sync_done(struct queue *q);
/*
 * Shutdown: moves every batch in memory (not those a writer holds) to the
 * spool.  Returns the number of lines that could not be spooled.
 */
uint64_t queue_spill_all(struct queue *q);
/* Shutdown: take no more batches from the spool (they wait on disk). */
void queue_stop_replay(struct queue *q);

/*
 * The oldest sealed batch, or NULL.  With flush set, an open batch that
 * holds lines is sealed and returned when nothing older waits.
 */
struct batch *queue_take(struct queue *q, bool flush);
/* The batch is committed: release its memory. */
void queue_done(struct queue *q, struct batch *b);
/* The batch failed: it is the next one taken. */
void queue_return(struct queue *q, struct batch *b);

bool queue_full(const struct queue *q);
/* A batch is ready: sealed in memory, returned, or waiting in the spool. */
bool queue_has_sealed(const struct queue *q);
/* Lines in the open batch, and when (monotonic ms) the first arrived. */
uint32_t queue_open_lines(const struct queue *q);
int64_t queue_open_since_ms(const struct queue *q);

/* Everything in memory: sealed, open and taken-but-uncommitted (the
 * spool's own lines are not counted until read back). */
size_t queue_bytes(const struct queue *q);
uint64_t queue_lines(const struct queue *q);
/* The queue-bytes limit it was made with. */
size_t queue_limit(const struct queue *q);

#endif
