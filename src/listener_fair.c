/*
 * listener_fair: fair back-pressure and per-source rate limits, on the
 * client machine of listener.c (diagram in listener_int.h).
 *
 * Fair share.  Each client's rows are attributed to it in the queue
 * (queue_source_begin(), once per read, nothing per line) while the queue
 * is above half the fair level; the queue gives the bytes back when the
 * rows are committed or spooled (fair_release(), which only counts: it
 * runs inside pgpool's commit or an append).  So c->inq is what the
 * client's lines hold of the queue's memory (those queued since the
 * queue passed half the level).  Once the queue is above fair-share-percent of
 * queue-bytes, a client that holds more than an equal share of queue-bytes
 * (queue-bytes / open connections) is held in PAUSED
 * (CL_HOLD_FAIR) after its read; the others keep reading.  It reads
 * again once it is back under its share or the queue under the level,
 * seen by ev_fair after the credits.  A full queue still pauses everyone
 * (pause_all()); the queue's resume then wakes the smallest users first,
 * the heaviest last, so that the queue filling again stops them first.
 *
 * Rate limit.  A token bucket per source (the TLS subject when the client
 * sent a verified certificate, else its address, the one a PROXY header
 * named) in a bounded table (ratelimit.h).  Each read takes the tokens
 * the source has; framed TCP lines stop there (pause: the rest waits
 * and the client is held in PAUSED, CL_HOLD_RATE, until ev_rate finds a
 * token again) or the excess is dropped and counted (drop, on listeners
 * without acks only: dropping a line of an ack=commit sender would make
 * "ok N" lie).  Session protocols (RELP...) queue a read's messages
 * whole: the bucket goes into debt and the client waits it off.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "logsink/clock.h"
#include "logsink/log.h"
#include "logsink/metrics.h"
#include "logsink/queue.h"
#include "logsink/ratelimit.h"

#include "listener_int.h"

#define NO_SLOT UINT32_MAX

/* A queue source token's client; owned by the listeners. */
struct fair_slot {
	struct client *c; /* NULL: free */
	uint32_t gen;     /* bumped when freed: old tokens find no client */
	uint32_t next_free;
};

static uint64_t
slot_token(uint32_t slot, uint32_t gen)
{
	return ((uint64_t)slot + 1) << 32 | gen; /* never 0 */
}

/* A token for c, or 0 when out of memory (c is then not accounted). */
static uint64_t
slot_take(struct listeners *ls, struct client *c)
{
	struct fair_slot *s;
	uint32_t i, cap;

	if (ls->free_slot == NO_SLOT) {
		cap = ls->nslots ? ls->nslots * 2 : 64;
		if (cap <= ls->nslots || cap >= NO_SLOT - 1 ||
		    (s = reallocarray(ls->slots, cap, sizeof(*s))) == NULL)
			return 0;
		for (i = ls->nslots; i < cap; i++) {
			s[i].c = NULL;
			s[i].gen = 0;
			s[i].next_free = i + 1 < cap ? i + 1 : NO_SLOT;
		}
		ls->slots = s;
		ls->free_slot = ls->nslots;
		ls->nslots = cap;
	}
	i = ls->free_slot;
	s = &ls->slots[i];
	ls->free_slot = s->next_free;
	s->c = c;
	return slot_token(i, s->gen);
}

/* The client of a token, or NULL when it has closed since. */
static struct client *
slot_client(const struct listeners *ls, uint64_t tok)
{
	uint32_t i = (uint32_t)(tok >> 32) - 1;

	if (i >= ls->nslots || ls->slots[i].gen != (uint32_t)tok)
		return NULL;
	return ls->slots[i].c;
}

static void
slot_put(struct listeners *ls, uint64_t tok)
{
	uint32_t i = (uint32_t)(tok >> 32) - 1;

	assert(i < ls->nslots && ls->slots[i].c != NULL);
	ls->slots[i].c = NULL;
	ls->slots[i].gen++;
	ls->slots[i].next_free = ls->free_slot;
	ls->free_slot = i;
}

/*
 * queue_src_cb: bytes of a client's rows left memory (committed or
 * spooled).  Only counts; the held clients are looked at on ev_fair.
 */
static void
fair_release(void *arg, uint64_t src, size_t bytes)
{
	struct listeners *ls = arg;
	struct client *c = slot_client(ls, src);

	if (c == NULL)
		return; /* closed: forgotten already */
	assert(c->inq >= bytes);
	c->inq -= bytes;
	if (ls->fair_held > 0)
		event_active(ls->ev_fair, EV_TIMEOUT, 0);
}

/*
 * Whether c must wait for its share: the queue above
 * fair-share-percent, and c holding more than queue-bytes divided among
 * the open connections.  Open, not only those with lines queued at the
 * moment: a client sending 100 lines a second has none queued most of
 * the time, yet needs room when its next line comes.  Never for the only
 * connection.
 */
static bool
over_share(const struct client *c)
{
	const struct listeners *ls = c->ls;
	uint64_t limit = queue_limit(ls->q);
	uint64_t pct = (uint64_t)ls->set.fair_share_percent;
	uint64_t open = metrics.connections_open; /* ls's clients, exactly */

	if (pct == 0 || open < 2 || (uint64_t)c->inq * open <= limit)
		return false;
	return (uint64_t)queue_bytes(ls->q) * 100 >= limit * pct;
}

/* Holds c in PAUSED for why (it was READING). */
static void
client_hold(struct client *c, unsigned why, enum metrics_pause reason)
{
	assert(c->state == CL_READING && (c->hold & why) == 0);
	c->hold |= why;
	if (why == CL_HOLD_FAIR)
		c->ls->fair_held++;
	metrics.clients_paused[reason]++;
	log_debug("%s: paused reason=%s in_queue=%zu", c->name,
	    metrics_pause_name(reason), c->inq);
	client_dispatch(c, CLE_PAUSE);
}

/* Ends hold why; c reads again unless something else holds it. */
static void
client_unhold(struct client *c, unsigned why)
{
	if ((c->hold & why) == 0)
		return;
	c->hold &= ~why;
	if (why == CL_HOLD_FAIR)
		c->ls->fair_held--;
	if (why == CL_HOLD_RATE)
		metrics.rate_paused_ms +=
		    (uint64_t)(clock_mono_ms() - c->rate_held_ms);
	log_debug("%s: hold ended reason=%s", c->name,
	    why == CL_HOLD_FAIR ? "fair-share" : "rate-limit");
	if (c->hold == 0 && !c->ls->paused && c->state == CL_PAUSED)
		client_dispatch(c, CLE_RESUME);
}

/* ev_fair: credits came while clients were held for their share. */
static void
fair_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listeners *ls = arg;
	struct client *c, *next;

	(void)fd;
	(void)what;
	for (c = ls->clients; c != NULL && ls->fair_held > 0; c = next) {
		next = c->next;
		if ((c->hold & CL_HOLD_FAIR) && !over_share(c))
			client_unhold(c, CL_HOLD_FAIR);
	}
}

int
fair_init(struct listeners *ls)
{
	ls->free_slot = NO_SLOT;
	ls->ev_fair = event_new(ls->base, -1, 0, fair_cb, ls);
	if (ls->ev_fair == NULL)
		return -1;
	fair_set_settings(ls);
	queue_set_source_callback(ls->q, fair_release, ls);
	return 0;
}

void
fair_free(struct listeners *ls)
{
	if (ls->q != NULL)
		queue_set_source_callback(ls->q, NULL, NULL);
	if (ls->ev_fair != NULL)
		event_free(ls->ev_fair);
	ratelimit_free(ls->rl);
	free(ls->slots);
}

void
fair_set_settings(struct listeners *ls)
{
	struct client *c, *next;

	/* The table is made when a rate is first set; its size stays. */
	if (ls->rl == NULL && ls->set.rate_per_sec > 0 &&
	    (ls->rl = ratelimit_new(ls->set.rate_max_sources)) == NULL)
		log_warnx("rate limit: out of memory for the table of %zu "
			  "sources; not limited",
		    ls->set.rate_max_sources);
	/* Rows are attributed from half the fair level on: below it nobody
	 * can be over a share soon, and a read then costs one comparison. */
	ls->fair_from_bytes = ls->set.fair_share_percent > 0
	    ? queue_limit(ls->q) / 200 * (size_t)ls->set.fair_share_percent
	    : SIZE_MAX;
	if (ls->rl != NULL)
		ratelimit_set(ls->rl, ls->set.rate_per_sec,
		    ls->set.rate_burst > 0 ? ls->set.rate_burst
					   : ls->set.rate_per_sec);
	for (c = ls->clients; c != NULL; c = next) {
		next = c->next;
		if ((c->hold & CL_HOLD_FAIR) && !over_share(c))
			client_unhold(c, CL_HOLD_FAIR);
		if ((c->hold & CL_HOLD_RATE) && ls->set.rate_per_sec == 0) {
			event_del(c->ev_rate);
			client_unhold(c, CL_HOLD_RATE);
		}
	}
}

/* The bucket key of c: "s" + its TLS subject, or "a" + its address. */
static size_t
rate_key(const struct client *c, unsigned char *key, size_t len)
{
	const struct sockaddr *sa = (const struct sockaddr *)&c->sa;
	size_t n;

	if (c->tls_subject != NULL) {
		n = strlen(c->tls_subject);
		if (n > len - 1)
			n = len - 1;
		key[0] = 's';
		memcpy(key + 1, c->tls_subject, n);
		return n + 1;
	}
	key[0] = 'a';
	if (sa->sa_family == AF_INET6) {
		memcpy(key + 1,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    16);
		return 17;
	}
	memcpy(key + 1,
	    &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	return 5;
}

void
fair_round_start(struct client *c)
{
	struct listeners *ls = c->ls;
	unsigned char key[RATELIMIT_MAX_KEY];
	size_t keylen;
	int nomem;

	if (c->fair_round) {
		if (c->src == 0)
			c->src = slot_take(ls, c);
		queue_source_begin(ls->q, c->src);
	}
	/* Nothing to frame (an EOF, a probe): no bucket is made. */
	c->rate_on = ls->rl != NULL && ls->set.rate_per_sec > 0 &&
	    !ls->stopping &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
	if (!c->rate_on)
		return;
	keylen = rate_key(c, key, sizeof(key));
	c->rate_budget =
	    ratelimit_tokens(ls->rl, key, keylen, clock_mono_ms(), &nomem);
	if (nomem == -1)
		c->rate_on = false; /* no bucket: not limited (documented) */
	c->rate_drop =
	    ls->set.rate_drop && c->ack == NULL && c->sess_ops == NULL;
	c->rate_lines = c->lines;
	c->rate_dropped = 0;
}

/* One line for all sources, at most every 10 s. */
static void
rate_log_drops(struct client *c)
{
	struct listeners *ls = c->ls;
	uint64_t n;

	if (!ratelog_due(&ls->rate_log, clock_mono_ms(), c->rate_dropped, &n))
		return;
	log_warnx("%s: %llu lines over rate-limit-lines-per-sec=%u "
		  "(rate-limit-burst=%u) from source %s dropped; %llu "
		  "dropped from all sources since the last such message",
	    c->name, (unsigned long long)c->rate_dropped, ls->set.rate_per_sec,
	    ls->set.rate_burst > 0 ? ls->set.rate_burst : ls->set.rate_per_sec,
	    c->tls_subject != NULL ? c->tls_subject : c->addr,
	    (unsigned long long)n);
}

void
fair_round_finish(struct client *c)
{
	struct listeners *ls = c->ls;
	unsigned char key[RATELIMIT_MAX_KEY];
	size_t keylen;

	if (c->fair_round)
		c->inq += queue_source_end(ls->q);
	if (!c->rate_on)
		return;
	keylen = rate_key(c, key, sizeof(key));
	ratelimit_spend(ls->rl, key, keylen, c->lines - c->rate_lines);
	metrics.rate_sources = ratelimit_sources(ls->rl);
	metrics.rate_evictions = ratelimit_evictions(ls->rl);
	if (c->rate_dropped > 0) {
		metrics.rate_dropped += c->rate_dropped;
		rate_log_drops(c);
	}
}

/* framer callback of a rate-limited round (framed TCP). */
bool
client_message_limited(void *arg, const char *msg, size_t len, bool truncated)
{
	struct client *c = arg;

	if (c->rate_budget == 0) { /* only in drop mode */
		c->rate_dropped++;
		metrics.lines_received++; /* received = stored + dropped */
		metrics.bytes_received += len;
		(void)msg;
		(void)truncated;
		return true;
	}
	c->rate_budget--;
	return client_message(c, msg, len, truncated) &&
	    (c->rate_budget > 0 || c->rate_drop);
}

/* ev_rate: the source may have a token again. */
static void
rate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)what;
	client_unhold(c, CL_HOLD_RATE);
}

/*
 * Pause mode, the source out of tokens: holds c until there is one
 * again.  False if no timer could be set (c keeps reading: a limit is
 * not worth a stuck connection; logged).
 */
static bool
rate_hold(struct client *c)
{
	struct listeners *ls = c->ls;
	unsigned char key[RATELIMIT_MAX_KEY];
	size_t keylen = rate_key(c, key, sizeof(key));
	int64_t now = clock_mono_ms();
	int64_t ms = ratelimit_wait_ms(ls->rl, key, keylen, now);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (c->ev_rate == NULL)
		c->ev_rate = evtimer_new(ls->base, rate_cb, c);
	if (c->ev_rate == NULL || evtimer_add(c->ev_rate, &tv) == -1) {
		log_warnx("%s: evtimer_new/evtimer_add failed; not rate "
			  "limited this time",
		    c->name);
		return false;
	}
	c->rate_held_ms = now;
	client_hold(c, CL_HOLD_RATE, METRICS_PAUSE_RATE_LIMIT);
	return true;
}

bool
fair_hold_check(struct client *c)
{
	if (c->state != CL_READING)
		return false;
	if (c->rate_on && !c->rate_drop &&
	    c->lines - c->rate_lines >= c->rate_budget &&
	    (!c->eof || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0))
		return rate_hold(c);
	if (!c->eof && over_share(c)) {
		client_hold(c, CL_HOLD_FAIR, METRICS_PAUSE_FAIR_SHARE);
		return true;
	}
	return false;
}

void
fair_forget(struct client *c)
{
	struct listeners *ls = c->ls;

	if (c->hold & CL_HOLD_FAIR)
		ls->fair_held--;
	if (c->hold & CL_HOLD_RATE)
		metrics.rate_paused_ms +=
		    (uint64_t)(clock_mono_ms() - c->rate_held_ms);
	c->hold = 0;
	if (c->ev_rate != NULL)
		event_del(c->ev_rate);
	if (c->src == 0)
		return;
	c->inq = 0;
	slot_put(ls, c->src);
	c->src = 0;
}

/* Smallest users of the queue first; then the oldest connection. */
static int
by_inq(const void *a, const void *b)
{
	const struct client *x = *(struct client *const *)a;
	const struct client *y = *(struct client *const *)b;

	if (x->inq != y->inq)
		return x->inq < y->inq ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

void
fair_resume_all(struct listeners *ls)
{
	struct client *c, *next, **v;
	size_t n = 0, i;

	for (c = ls->clients; c != NULL; c = c->next)
		n += c->state == CL_PAUSED && c->hold == 0;
	v = n > 0 ? reallocarray(NULL, n, sizeof(*v)) : NULL;
	if (v == NULL) { /* none, or no memory: in list order */
		for (c = ls->clients; c != NULL && !ls->paused; c = next) {
			next = c->next;
			if (c->state == CL_PAUSED && c->hold == 0)
				client_dispatch(c, CLE_RESUME);
		}
		return;
	}
	for (c = ls->clients, i = 0; c != NULL && i < n; c = c->next)
		if (c->state == CL_PAUSED && c->hold == 0)
			v[i++] = c;
	qsort(v, i, sizeof(*v), by_inq);
	/* Clients closed on the way stay readable until the reaper runs,
	 * after this pass: CLOSING, they are skipped. */
	for (n = i, i = 0; i < n && !ls->paused; i++)
		if (v[i]->state == CL_PAUSED && v[i]->hold == 0)
			client_dispatch(v[i], CLE_RESUME);
	free(v);
}
