/*
 * Unit tests for proxy.h: every v1 and v2 form (TCP4, TCP6, UNKNOWN,
 * LOCAL, PROXY, UNSPEC, UNIX, TLVs), each split at every byte and
 * followed by the client's stream; truncations, bad signatures, bad
 * fields and lengths, the size limit.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "logsink/proxy.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define MAX 1024

struct good {
	const char *name;
	const char *hdr;
	size_t len;
	int version;
	bool local;
	const char *src; /* "addr port" when !local */
	const char *dst;
};

#define V1(s)  s, sizeof(s) - 1
#define BIN(s) s, sizeof(s) - 1

static const struct good goods[] = {
	{ "v1 tcp4", V1("PROXY TCP4 192.0.2.7 198.51.100.1 56324 5140\r\n"), 1,
	    false, "192.0.2.7 56324", "198.51.100.1 5140" },
	{ "v1 tcp6", V1("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n"), 1,
	    false, "2001:db8::1 65535", "2001:db8::2 0" },
	{ "v1 unknown", V1("PROXY UNKNOWN\r\n"), 1, true, NULL, NULL },
	{ "v1 unknown with addresses",
	    V1("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 "
	       "65535\r\n"),
	    1, true, NULL, NULL },
	{ "v1 longest",
	    V1("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	    1, false, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535" },
	{ "v2 proxy inet",
	    BIN(SIG "\x21\x11\x00\x0c\x7f\x00\x00\x02\x7f\x00\x00\x01"
		    "\x30\x39\x14\x14"),
	    2, false, "127.0.0.2 12345", "127.0.0.1 5140" },
	{ "v2 proxy inet6",
	    BIN(SIG "\x21\x21\x00\x24"
		    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
		    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
		    "\x00\x50\x14\x14"),
	    2, false, "2001:db8::1 80", "2001:db8::2 5140" },
	{ "v2 proxy inet with TLVs",
	    BIN(SIG "\x21\x11\x00\x18\x0a\x00\x00\x05\x0a\x00\x00\x01"
		    "\x00\x01\x00\x02"
		    "\x01\x00\x02h2"     /* ALPN */
		    "\x04\x00\x00"       /* NOOP, empty */
		    "\x05\x00\x01\x2a"), /* UNIQUE_ID */
	    2, false, "10.0.0.5 1", "10.0.0.1 2" },
	{ "v2 local", BIN(SIG "\x20\x00\x00\x00"), 2, true, NULL, NULL },
	{ "v2 local with an inet block",
	    BIN(SIG "\x20\x11\x00\x0c\x7f\x00\x00\x02\x7f\x00\x00\x01"
		    "\x30\x39\x14\x14"),
	    2, true, NULL, NULL },
	{ "v2 proxy unspec", BIN(SIG "\x21\x00\x00\x03xyz"), 2, true, NULL,
	    NULL },
};

struct badcase {
	const char *name;
	const char *hdr;
	size_t len;
	enum proxy_failure why;
};

static const struct badcase bads[] = {
	{ "syslog line", V1("<13>Dec  1 10:00:00 host app: hi\n"),
	    PROXY_FAILURE_MISSING },
	{ "lowercase proxy", V1("proxy TCP4 1.2.3.4 1.2.3.5 1 2\r\n"),
	    PROXY_FAILURE_MISSING },
	{ "PROXY without space", V1("PROXYTCP4\r\n"), PROXY_FAILURE_MISSING },
	{ "v2 signature broken", BIN("\r\n\r\n\0\r\nQUIT\r"),
	    PROXY_FAILURE_MISSING },
	{ "v1 LF only", V1("PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 no CRLF in 107",
	    V1("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535 \r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 UDP4", V1("PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 UNKNOWNX", V1("PROXY UNKNOWNX\r\n"), PROXY_FAILURE_V1 },
	{ "v1 two spaces", V1("PROXY TCP4  1.2.3.4 1.2.3.5 1 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 missing port", V1("PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 extra field", V1("PROXY TCP4 1.2.3.4 1.2.3.5 1 2 3\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 trailing space", V1("PROXY TCP4 1.2.3.4 1.2.3.5 1 2 \r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 port too big", V1("PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 port leading zero", V1("PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 port sign", V1("PROXY TCP4 1.2.3.4 1.2.3.5 +1 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 bad ipv4", V1("PROXY TCP4 1.2.3.256 1.2.3.5 1 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 ipv6 as tcp4", V1("PROXY TCP4 ::1 ::1 1 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 ipv4 as tcp6", V1("PROXY TCP6 1.2.3.4 1.2.3.5 1 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 control byte", V1("PROXY TCP4 1.2.3.4\t1.2.3.5 1 2\r\n"),
	    PROXY_FAILURE_V1 },
	{ "v1 NUL", BIN("PROXY UNKNOWN\0\r\n"), PROXY_FAILURE_V1 },
	{ "v2 version 1", BIN(SIG "\x11\x11\x00\x00"), PROXY_FAILURE_V2 },
	{ "v2 version 3", BIN(SIG "\x31\x11\x00\x00"), PROXY_FAILURE_V2 },
	{ "v2 command 2", BIN(SIG "\x22\x11\x00\x00"), PROXY_FAILURE_V2 },
	{ "v2 family 4", BIN(SIG "\x21\x41\x00\x00"), PROXY_FAILURE_V2 },
	{ "v2 dgram",
	    BIN(SIG "\x21\x12\x00\x0c"
		    "123456789012"),
	    PROXY_FAILURE_V2 },
	{ "v2 inet short",
	    BIN(SIG "\x21\x11\x00\x0b\x7f\x00\x00\x02\x7f\x00\x00\x01"
		    "\x30\x39\x14"),
	    PROXY_FAILURE_V2 },
	{ "v2 inet6 short",
	    BIN(SIG "\x21\x21\x00\x0c"
		    "123456789012"),
	    PROXY_FAILURE_V2 },
	{ "v2 unix short",
	    BIN(SIG "\x21\x31\x00\x0c"
		    "123456789012"),
	    PROXY_FAILURE_V2 },
	{ "v2 TLV header cut",
	    BIN(SIG "\x21\x11\x00\x0e\x7f\x00\x00\x02\x7f\x00\x00\x01"
		    "\x30\x39\x14\x14\x01\x00"),
	    PROXY_FAILURE_V2 },
	{ "v2 TLV overruns",
	    BIN(SIG "\x21\x11\x00\x10\x7f\x00\x00\x02\x7f\x00\x00\x01"
		    "\x30\x39\x14\x14\x01\x00\x02x"),
	    PROXY_FAILURE_V2 },
	{ "v2 over the limit", BIN(SIG "\x21\x11\x03\xf1"),
	    PROXY_FAILURE_TOO_LONG },
	{ "v2 longest", BIN(SIG "\x21\x11\xff\xff"), PROXY_FAILURE_TOO_LONG },
};

/* "addr port" of sa. */
static void
fmt(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN];
	const struct sockaddr_in *s4 = (const void *)ss;
	const struct sockaddr_in6 *s6 = (const void *)ss;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(out, n, "%s %u", a, ntohs(s4->sin_port));
	} else {
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(out, n, "%s %u", a, ntohs(s6->sin6_port));
	}
}

static void
check_good(const struct good *g, const struct proxy_header *h)
{
	char s[128];

	assert_int_equal(h->version, g->version);
	assert_int_equal(h->len, g->len);
	assert_int_equal(h->local, g->local);
	if (g->local)
		return;
	fmt(&h->src, s, sizeof(s));
	assert_string_equal(s, g->src);
	fmt(&h->dst, s, sizeof(s));
	assert_string_equal(s, g->dst);
	assert_int_equal(h->addrlen,
	    h->src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6));
}

/* Whole, every prefix incomplete, with the stream after it, and read as
 * the listener does: consume an incomplete prefix, then the rest. */
static void
test_good(void **state)
{
	static const char tail[] = "<13>Dec  1 10:00:00 h a: x\n\r\n\r\n";
	char buf[512], err[256];
	struct proxy_header h;
	enum proxy_failure why;
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];

		print_message("%s\n", g->name);
		assert_int_equal(
		    proxy_parse(g->hdr, g->len, MAX, &h, &why, err, 256), 1);
		check_good(g, &h);
		memcpy(buf, g->hdr, g->len);
		memcpy(buf + g->len, tail, sizeof(tail));
		assert_int_equal(proxy_parse(buf, g->len + sizeof(tail), MAX,
				     &h, &why, err, 256),
		    1);
		check_good(g, &h);
		for (k = 0; k < g->len; k++) {
			assert_int_equal(
			    proxy_parse(buf, k, MAX, &h, &why, err, 256), 0);
			assert_int_equal(h.len, 0);
			/* k bytes consumed, all the header's; then the rest
			 * arrives with the stream. */
			assert_int_equal(proxy_parse(buf, g->len + 5, MAX, &h,
					     &why, err, 256),
			    1);
			check_good(g, &h);
		}
	}
}

/* Every bad header fails the same whole or with more after it, and no
 * prefix of it claims to be a whole header. */
static void
test_bad(void **state)
{
	char buf[600], err[256];
	struct proxy_header h;
	enum proxy_failure why;
	size_t i, k;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct badcase *b = &bads[i];

		print_message("%s\n", b->name);
		err[0] = '\0';
		memset(buf, 'x', sizeof(buf));
		memcpy(buf, b->hdr, b->len);
		assert_int_equal(proxy_parse(buf, sizeof(buf), MAX, &h, &why,
				     err, sizeof(err)),
		    -1);
		assert_int_equal(why, b->why);
		assert_true(err[0] != '\0');
		for (k = 0; k <= b->len; k++) {
			rc = proxy_parse(buf, k, MAX, &h, &why, err, 256);
			assert_true(rc == 0 || (rc == -1 && why == b->why));
		}
	}
}

/* A v2 header exactly at the limit passes, one byte over fails;
 * proxy-max-header-bytes below 107 still lets v1 through. */
static void
test_limits(void **state)
{
	static unsigned char buf[PROXY_V2_MAX_BYTES];
	char err[256];
	struct proxy_header h;
	enum proxy_failure why;
	size_t tlv = MAX - 16 - 12 - 3;

	(void)state;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, SIG "\x21\x11", 14);
	buf[14] = (MAX - 16) >> 8;
	buf[15] = (MAX - 16) & 0xff;
	buf[28] = 0x04; /* NOOP TLV filling the rest */
	buf[29] = (unsigned char)(tlv >> 8);
	buf[30] = (unsigned char)(tlv & 0xff);
	assert_int_equal(proxy_parse(buf, MAX, MAX, &h, &why, err, 256), 1);
	assert_int_equal(h.len, MAX);
	assert_int_equal(
	    proxy_parse(buf, MAX, MAX - 1, &h, &why, err, 256), -1);
	assert_int_equal(why, PROXY_FAILURE_TOO_LONG);
	/* the length is judged as soon as it is known */
	assert_int_equal(proxy_parse(buf, 16, MAX - 1, &h, &why, err, 256), -1);
	/* the protocol's largest header */
	buf[14] = buf[15] = 0xff;
	tlv = PROXY_V2_MAX_BYTES - 16 - 12 - 3;
	buf[29] = (unsigned char)(tlv >> 8);
	buf[30] = (unsigned char)(tlv & 0xff);
	assert_int_equal(proxy_parse(buf, sizeof(buf), PROXY_V2_MAX_BYTES, &h,
			     &why, err, 256),
	    1);
	assert_int_equal(h.len, PROXY_V2_MAX_BYTES);
	assert_int_equal(
	    proxy_parse("PROXY UNKNOWN\r\n", 15, 16, &h, &why, err, 256), 1);
	assert_string_equal(
	    proxy_failure_name(PROXY_FAILURE_TOO_LONG), "too-long");
	assert_string_equal(proxy_failure_name(PROXY_NFAILURES), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
