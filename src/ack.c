/*
 * ack: acknowledgement state and completions (see include/logsink/ack.h).
 *
 * Invariant: a ref is on its list's pending completions only while it
 * has an owner, and the owner holds a reference, so a pending ref is
 * alive; ack_disown() takes it off before dropping that reference.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/ack.h"

/* A run of lines stored ahead of a gap: lines first .. end - 1. */
struct ack_span {
	uint64_t first, end;
};

/*
 * A sender's acknowledgement state.  Freed by ack_release() when the last
 * of its owner's and its batches' references goes.
 */
struct ackref {
	int refs;
	void *owner;            /* NULL once the owner is gone */
	struct ack_list *l;     /* the owner's list; NULL with the owner */
	struct ackref *prev;    /* on l's pending completions, if pending */
	struct ackref *next;    /* ditto */
	bool pending;           /* linked on l */
	uint64_t committed;     /* lines 0 .. committed - 1 are all stored */
	struct ack_span *spans; /* stored out of order (batches commit in
				   parallel), sorted by first; merged into
				   committed once the gap before them closes */
	size_t nspans, capspans;
};

/* Owned by the listeners; freed by ack_list_free(). */
struct ack_list {
	struct ackref *head, *tail; /* pending completions, oldest first */
	uint64_t nomem;             /* runs lost to ENOMEM, not yet told */
	ack_notify_cb notify;
	void *arg;
};

struct ack_list *
ack_list_new(ack_notify_cb notify, void *arg)
{
	struct ack_list *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->notify = notify;
	l->arg = arg;
	return l;
}

void
ack_list_free(struct ack_list *l)
{
	if (l == NULL)
		return;
	assert(l->head == NULL); /* pending refs are owned: disowned first */
	free(l);
}

static bool
list_empty(const struct ack_list *l)
{
	return l->head == NULL && l->nomem == 0;
}

/* Something for the drain: tell the owner when the list was empty. */
static void
list_wake(struct ack_list *l, bool was_empty)
{
	if (was_empty && l->notify != NULL)
		l->notify(l->arg);
}

/* Links a on its list's pending completions unless it is there. */
static void
list_push(struct ackref *a)
{
	struct ack_list *l = a->l;
	bool was_empty;

	if (a->pending)
		return;
	was_empty = list_empty(l);
	a->pending = true;
	a->next = NULL;
	a->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = a;
	else
		l->head = a;
	l->tail = a;
	list_wake(l, was_empty);
}

static void
list_unlink(struct ackref *a)
{
	struct ack_list *l = a->l;

	if (!a->pending)
		return;
	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		l->head = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	else
		l->tail = a->prev;
	a->prev = a->next = NULL;
	a->pending = false;
}

void *
ack_list_next(struct ack_list *l)
{
	struct ackref *a = l->head;

	if (a == NULL)
		return NULL;
	list_unlink(a);
	return a->owner;
}

uint64_t
ack_list_nomem(struct ack_list *l)
{
	uint64_t n = l->nomem;

	l->nomem = 0;
	return n;
}

struct ackref *
ack_new(struct ack_list *l, void *owner)
{
	struct ackref *a;

	assert(l != NULL && owner != NULL);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->refs = 1;
	a->owner = owner;
	a->l = l;
	return a;
}

static void
ack_release(struct ackref *a)
{
	assert(a->refs > 0);
	if (--a->refs > 0)
		return;
	assert(!a->pending);
	free(a->spans);
	free(a);
}

void
ack_disown(struct ackref *a)
{
	assert(a->owner != NULL);
	list_unlink(a);
	a->owner = NULL;
	a->l = NULL;
	ack_release(a);
}

uint64_t
ack_committed(const struct ackref *a)
{
	return a->committed;
}

/*
 * Records that lines first .. end - 1 are stored.  "ok N" promises that
 * lines 0 .. N - 1 all are, so a run stored ahead of a gap waits in spans
 * and is merged once the gap closes.  -1 (ENOMEM) when a span could not
 * be kept: the acks then stop short, which is safe (the client resends).
 */
static int
ack_add(struct ackref *a, uint64_t first, uint64_t end)
{
	struct ack_span *s;
	size_t i, cap;

	if (first > a->committed) {
		if (a->nspans == a->capspans) {
			cap = a->capspans ? a->capspans * 2 : 4;
			s = reallocarray(a->spans, cap, sizeof(*s));
			if (s == NULL)
				return -1;
			a->spans = s;
			a->capspans = cap;
		}
		for (i = a->nspans; i > 0 && a->spans[i - 1].first > first; i--)
			a->spans[i] = a->spans[i - 1];
		a->spans[i].first = first;
		a->spans[i].end = end;
		a->nspans++;
		return 0;
	}
	if (end > a->committed)
		a->committed = end;
	while (a->nspans > 0 && a->spans[0].first <= a->committed) {
		if (a->spans[0].end > a->committed)
			a->committed = a->spans[0].end;
		memmove(a->spans, a->spans + 1,
		    (a->nspans - 1) * sizeof(*a->spans));
		a->nspans--;
	}
	return 0;
}

void
ack_take(void *ref, uint64_t first, uint32_t n)
{
	struct ackref *a = ref;

	(void)first;
	(void)n;
	assert(a->refs > 0);
	a->refs++;
}

void
ack_credit(void *ref, uint64_t first, uint32_t n)
{
	struct ackref *a = ref;
	uint64_t before = a->committed;
	bool was_empty;

	if (a->owner == NULL) { /* nobody to tell: the lines are stored */
		ack_release(a);
		return;
	}
	if (ack_add(a, first, first + n) == -1) {
		was_empty = list_empty(a->l);
		a->l->nomem++;
		list_wake(a->l, was_empty);
	}
	if (a->committed != before)
		list_push(a);
	ack_release(a);
}

void
ack_drop(void *ref, uint64_t first, uint32_t n)
{
	(void)first;
	(void)n;
	ack_release(ref);
}
