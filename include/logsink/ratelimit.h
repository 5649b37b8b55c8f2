/*
 * ratelimit: token buckets of lines per source (an address or a TLS
 * subject), for rate-limit-lines-per-sec and rate-limit-burst.  Pure
 * leaf: no libevent, no logging; the caller passes the monotonic time.
 *
 * Each source has a bucket of at most burst tokens, one token a line,
 * refilled at per_sec tokens a second (kept in thousandths, so a slow
 * rate still refills between calls a millisecond apart).  A new source
 * starts with a full bucket.  The table holds at most max_sources
 * sources: a new one beyond that takes the place of the one used least
 * recently, which is forgotten (if it comes back, it starts full again;
 * counted in ratelimit_evictions()).
 */
#ifndef LOGSINK_RATELIMIT_H
#define LOGSINK_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* Longest key kept whole; longer keys are cut (two subjects that share
 * their first RATELIMIT_MAX_KEY bytes share a bucket). */
#define RATELIMIT_MAX_KEY  256
/* The deepest debt a bucket keeps, in lines (ratelimit_spend()). */
#define RATELIMIT_MAX_DEBT (UINT64_C(1) << 32)

struct ratelimit;

/* A table of at most max_sources (>= 1) buckets; NULL on ENOMEM. */
struct ratelimit *ratelimit_new(size_t max_sources)
    __attribute__((warn_unused_result));
void ratelimit_free(struct ratelimit *rl);
/*
 * The rate (lines a second, >= 1) and the bucket size (>= 1 line).
 * Buckets keep their tokens, capped at the new burst.
 */
void ratelimit_set(struct ratelimit *rl, uint32_t per_sec, uint32_t burst);
/*
 * The whole tokens source key has at now_ms (refilled since its last
 * use); a new source (possibly evicting one) starts full.  0 when out of
 * memory for a new source's bucket: the caller treats that as "no
 * limit" or "wait", as it documents (-1 in *nomem when not NULL).
 */
uint64_t ratelimit_tokens(struct ratelimit *rl, const void *key, size_t keylen,
    int64_t now_ms, int *nomem);
/*
 * Takes n tokens from key's bucket.  Past what it has, the bucket goes
 * into debt (at most RATELIMIT_MAX_DEBT lines): a sender that was let
 * through for a whole read waits until the refill has paid for it.
 */
void ratelimit_spend(
    struct ratelimit *rl, const void *key, size_t keylen, uint64_t n);
/* Milliseconds (>= 1) until key's bucket holds one whole token again. */
int64_t ratelimit_wait_ms(
    struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms);
/* Sources in the table, and how many were forgotten to make room. */
size_t ratelimit_sources(const struct ratelimit *rl);
uint64_t ratelimit_evictions(const struct ratelimit *rl);

#endif
