/*
 * ratelimit: per-source token buckets in a bounded hash table with a
 * least-recently-used list for eviction (see include/logsink/ratelimit.h).
 *
 * Tokens are kept in thousandths (milli-tokens): a rate of R lines a
 * second refills R milli-tokens a millisecond, so no division or float
 * is needed on the refill, and every product is bounded before it is
 * formed (burst and rate are at most 2^32, a bucket at most 2^42
 * milli-tokens, a debt at most RATELIMIT_MAX_DEBT lines).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/ratelimit.h"

#define MILLI 1000u

/* One source's bucket; owned by its table, freed by eviction or
 * ratelimit_free(). */
struct rl_entry {
	struct rl_entry *hnext;       /* hash chain */
	struct rl_entry *prev, *next; /* LRU list, most recent first */
	int64_t milli;                /* tokens * 1000; < 0: a debt */
	int64_t last_ms;              /* refilled up to this time */
	uint32_t hash;
	uint16_t keylen;
	unsigned char key[];
};

/* Owned by the listeners; freed by ratelimit_free(). */
struct ratelimit {
	struct rl_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t n, max;
	struct rl_entry *mru, *lru;
	uint64_t per_sec, burst;
	uint64_t evictions;
};

struct ratelimit *
ratelimit_new(size_t max_sources)
{
	struct ratelimit *rl;
	size_t nb = 16;

	if (max_sources < 1)
		max_sources = 1;
	while (nb < max_sources && nb < ((size_t)1 << 20))
		nb <<= 1;
	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return NULL;
	if ((rl->buckets = calloc(nb, sizeof(*rl->buckets))) == NULL) {
		free(rl);
		return NULL;
	}
	rl->nbuckets = nb;
	rl->max = max_sources;
	rl->per_sec = 1;
	rl->burst = 1;
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	struct rl_entry *e, *next;

	if (rl == NULL)
		return;
	for (e = rl->mru; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(rl->buckets);
	free(rl);
}

void
ratelimit_set(struct ratelimit *rl, uint32_t per_sec, uint32_t burst)
{
	rl->per_sec = per_sec > 0 ? per_sec : 1;
	rl->burst = burst > 0 ? burst : 1;
}

/* FNV-1a over the key. */
static uint32_t
hash_of(const unsigned char *key, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

static void
lru_unlink(struct ratelimit *rl, struct rl_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		rl->mru = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		rl->lru = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_push(struct ratelimit *rl, struct rl_entry *e)
{
	e->prev = NULL;
	e->next = rl->mru;
	if (rl->mru != NULL)
		rl->mru->prev = e;
	else
		rl->lru = e;
	rl->mru = e;
}

/* Forgets the least recently used source. */
static void
evict(struct ratelimit *rl)
{
	struct rl_entry *e = rl->lru, **pe;

	if (e == NULL)
		return;
	lru_unlink(rl, e);
	for (pe = &rl->buckets[e->hash & (rl->nbuckets - 1)]; *pe != e;
	     pe = &(*pe)->hnext)
		;
	*pe = e->hnext;
	free(e);
	rl->n--;
	rl->evictions++;
}

/* key's entry, made (full) if new; NULL on ENOMEM. */
static struct rl_entry *
lookup(struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms,
    bool create)
{
	struct rl_entry *e;
	uint32_t h;
	size_t slot;

	if (keylen > RATELIMIT_MAX_KEY)
		keylen = RATELIMIT_MAX_KEY;
	h = hash_of(key, keylen);
	slot = h & (rl->nbuckets - 1);
	for (e = rl->buckets[slot]; e != NULL; e = e->hnext)
		if (e->hash == h && e->keylen == keylen &&
		    memcmp(e->key, key, keylen) == 0)
			break;
	if (e != NULL) {
		if (e != rl->mru) {
			lru_unlink(rl, e);
			lru_push(rl, e);
		}
		return e;
	}
	if (!create)
		return NULL;
	if (rl->n >= rl->max)
		evict(rl);
	if ((e = calloc(1, sizeof(*e) + keylen)) == NULL)
		return NULL;
	memcpy(e->key, key, keylen);
	e->keylen = (uint16_t)keylen;
	e->hash = h;
	e->milli = (int64_t)(rl->burst * MILLI);
	e->last_ms = now_ms;
	e->hnext = rl->buckets[slot];
	rl->buckets[slot] = e;
	lru_push(rl, e);
	rl->n++;
	return e;
}

/* Adds the tokens of the time since e's last refill, up to the burst. */
static void
refill(const struct ratelimit *rl, struct rl_entry *e, int64_t now_ms)
{
	int64_t cap = (int64_t)(rl->burst * MILLI);
	uint64_t elapsed, room;

	if (now_ms > e->last_ms) {
		elapsed = (uint64_t)now_ms - (uint64_t)e->last_ms;
		e->last_ms = now_ms;
		/* elapsed * per_sec <= room here: no overflow. */
		room = e->milli < cap ? (uint64_t)(cap - e->milli) : 0;
		if (room > 0 && elapsed <= room / rl->per_sec)
			e->milli += (int64_t)(elapsed * rl->per_sec);
		else
			e->milli = cap;
	}
	if (e->milli > cap)
		e->milli = cap; /* the burst was lowered */
}

/* Whole tokens of e; 0 while in debt. */
static uint64_t
whole(const struct rl_entry *e)
{
	return e->milli > 0 ? (uint64_t)e->milli / MILLI : 0;
}

uint64_t
ratelimit_tokens(struct ratelimit *rl, const void *key, size_t keylen,
    int64_t now_ms, int *nomem)
{
	struct rl_entry *e = lookup(rl, key, keylen, now_ms, true);

	if (nomem != NULL)
		*nomem = e == NULL ? -1 : 0;
	if (e == NULL)
		return 0;
	refill(rl, e, now_ms);
	return whole(e);
}

void
ratelimit_spend(
    struct ratelimit *rl, const void *key, size_t keylen, uint64_t n)
{
	struct rl_entry *e = lookup(rl, key, keylen, 0, false);
	int64_t floor = -(int64_t)RATELIMIT_MAX_DEBT * (int64_t)MILLI;

	if (e == NULL)
		return;
	if (n > RATELIMIT_MAX_DEBT)
		n = RATELIMIT_MAX_DEBT;
	e->milli -= (int64_t)(n * MILLI);
	if (e->milli < floor)
		e->milli = floor;
}

int64_t
ratelimit_wait_ms(
    struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms)
{
	struct rl_entry *e = lookup(rl, key, keylen, now_ms, false);
	uint64_t need;

	if (e == NULL)
		return 1;
	refill(rl, e, now_ms);
	if (e->milli >= (int64_t)MILLI)
		return 1;
	need = (uint64_t)((int64_t)MILLI - e->milli);
	return (int64_t)((need + rl->per_sec - 1) / rl->per_sec);
}

size_t
ratelimit_sources(const struct ratelimit *rl)
{
	return rl->n;
}

uint64_t
ratelimit_evictions(const struct ratelimit *rl)
{
	return rl->evictions;
}
