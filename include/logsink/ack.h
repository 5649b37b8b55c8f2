/*
 * ack: the per-sender acknowledgement state of ack=commit and ack=spooled
 * listeners, and the list of completions waiting for the event loop.
 * Pure leaf: no libevent, no listener, no logging.
 *
 * A sender's ackref is referenced by its owner (the client) and by every
 * queued batch that holds a run of its lines (ack_take/credit/drop are the
 * queue's queue_ack_cb), so it outlives an owner that goes away before
 * its lines commit.  Crediting a run that advances the sender's committed
 * count does not call the owner: it links the ref (once) on the pending
 * completions of its ack_list and, when that list was empty, calls the
 * list's notify callback, which only schedules the owner's drain
 * (event_active() on one loop event).  The drain takes the refs off with
 * ack_list_next(); that is the only way an owner hears of its acks.
 */
#ifndef LOGSINK_ACK_H
#define LOGSINK_ACK_H

#include <stdint.h>

struct ack_list;
struct ackref;

/* Called when the pending completions of a list become non-empty. */
typedef void (*ack_notify_cb)(void *arg);

/* Owned by the owner of the refs (the listeners); freed by
 * ack_list_free() once every ref made from it is disowned. */
struct ack_list *ack_list_new(ack_notify_cb notify, void *arg);
void ack_list_free(struct ack_list *l);
/*
 * The owner of the next ref whose committed count advanced, taken off
 * the list (FIFO), or NULL when none is left.
 */
void *ack_list_next(struct ack_list *l);
/*
 * Runs that could not be recorded (out of memory while keeping an
 * out-of-order span) since the last call, for owned refs; the count is
 * reset.  Those senders' acks stop short of their stored lines, which is
 * safe: a client resends what was not acknowledged.
 */
uint64_t ack_list_nomem(struct ack_list *l);

/*
 * A new sender on l, owned by owner (one reference, the owner's), or NULL
 * (ENOMEM).
 */
struct ackref *ack_new(struct ack_list *l, void *owner)
    __attribute__((warn_unused_result));
/* The owner goes away: it drops its reference and hears of no more
 * completions (the ref leaves the pending list). */
void ack_disown(struct ackref *a);
/* Lines 0 .. N - 1 of the sender are all stored: N. */
uint64_t ack_committed(const struct ackref *a);

/*
 * queue_ack_cb implementations (queue.h), ref being a struct ackref:
 * take when a batch starts a run of the sender's lines (the batch holds a
 * reference), credit when lines first .. first + n - 1 are stored, drop
 * when the batch is freed without storing them; credit and drop release
 * the batch's reference.
 */
void ack_take(void *ref, uint64_t first, uint32_t n);
void ack_credit(void *ref, uint64_t first, uint32_t n);
void ack_drop(void *ref, uint64_t first, uint32_t n);

#endif
