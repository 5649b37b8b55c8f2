/*
 * cidr: address prefixes (see include/logsink/cidr.h).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include "logsink/cidr.h"

int
cidr_parse(const char *s, size_t len, struct cidr *out)
{
	char buf[64], *slash, *end;
	long bits;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(out, 0, sizeof(*out));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		out->bits = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		out->bits = 128;
	} else {
		return -1;
	}
	if (slash != NULL) {
		bits = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end != '\0' || bits < 0 ||
		    bits > out->bits)
			return -1;
		out->bits = (int)bits;
	}
	return 0;
}

static bool
prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xFF << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0xFF, 0xFF };
	const unsigned char *a;

	if (sa->sa_family == AF_INET) {
		a = (const unsigned char *)&(
		    (const struct sockaddr_in *)(const void *)sa)
			->sin_addr;
		return c->family == AF_INET &&
		    prefix_equal(c->addr, a, c->bits);
	}
	if (sa->sa_family != AF_INET6)
		return false;
	a = (const unsigned char *)&(
	    (const struct sockaddr_in6 *)(const void *)sa)
		->sin6_addr;
	if (c->family == AF_INET6)
		return prefix_equal(c->addr, a, c->bits);
	return memcmp(a, mapped, sizeof(mapped)) == 0 &&
	    prefix_equal(c->addr, a + 12, c->bits);
}
