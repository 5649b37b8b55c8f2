/*
 * iptable: per-address connection counts in a chained hash table
 * (see include/logsink/iptable.h).  IPv4 addresses are kept in their
 * IPv4-mapped IPv6 form so that both families share one key space.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logsink/iptable.h"

#define IPTABLE_BUCKETS 4096

struct ip_entry {
	struct ip_entry *next;
	unsigned char addr[16];
	int count;
};

/* Owned by the listeners; freed by iptable_free(). */
struct iptable {
	struct ip_entry *buckets[IPTABLE_BUCKETS];
};

static void
key_of(const struct sockaddr *sa, unsigned char *key)
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xFF;
		memcpy(key + 12,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key,
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    16);
	}
}

/* FNV-1a over the 16 key bytes. */
static unsigned
hash_of(const unsigned char *key)
{
	uint32_t h = 2166136261u;
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % IPTABLE_BUCKETS;
}

struct iptable *
iptable_new(void)
{
	return calloc(1, sizeof(struct iptable));
}

void
iptable_free(struct iptable *t)
{
	struct ip_entry *e, *next;
	int i;

	if (t == NULL)
		return;
	for (i = 0; i < IPTABLE_BUCKETS; i++)
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(t);
}

int
iptable_add(struct iptable *t, const struct sockaddr *sa)
{
	unsigned char key[16];
	struct ip_entry *e;
	unsigned h;

	key_of(sa, key);
	h = hash_of(key);
	for (e = t->buckets[h]; e != NULL; e = e->next)
		if (memcmp(e->addr, key, 16) == 0)
			return ++e->count;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	memcpy(e->addr, key, 16);
	e->count = 1;
	e->next = t->buckets[h];
	t->buckets[h] = e;
	return 1;
}

void
iptable_del(struct iptable *t, const struct sockaddr *sa)
{
	unsigned char key[16];
	struct ip_entry **pe, *e;

	key_of(sa, key);
	for (pe = &t->buckets[hash_of(key)]; (e = *pe) != NULL; pe = &e->next) {
		if (memcmp(e->addr, key, 16) != 0)
			continue;
		if (--e->count == 0) {
			*pe = e->next;
			free(e);
		}
		return;
	}
}
