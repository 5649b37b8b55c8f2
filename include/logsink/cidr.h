/*
 * cidr: IPv4/IPv6 address prefixes ("10.0.0.0/8", "::1", "fd00::/8") and
 * matching a peer address against them.  Leaf module.
 */
#ifndef LOGSINK_CIDR_H
#define LOGSINK_CIDR_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

/* Parses "ADDR" or "ADDR/BITS"; -1 if it is neither. */
int cidr_parse(const char *s, size_t len, struct cidr *out)
    __attribute__((warn_unused_result));
/* True if sa is inside c; IPv4-mapped IPv6 peers match IPv4 prefixes. */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

#endif
