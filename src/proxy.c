/*
 * proxy: decoding PROXY protocol v1 and v2 headers (see
 * include/logsink/proxy.h).  Section numbers are those of haproxy's
 * doc/proxy-protocol.txt.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "logsink/proxy.h"

/* 2.2: the v2 signature, "\r\n\r\n\0\r\nQUIT\n". */
static const unsigned char v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
	0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

/* 2.2: the low nibble of byte 13 (the high one is the version, 2). */
#define V2_CMD_LOCAL      0x0
#define V2_CMD_PROXY      0x1
/* 2.2: byte 14, address family (high nibble) and transport (low). */
#define V2_AF_UNSPEC      0x0
#define V2_AF_INET        0x1
#define V2_AF_INET6       0x2
#define V2_AF_UNIX        0x3
#define V2_TP_UNSPEC      0x0
#define V2_TP_STREAM      0x1
#define V2_ADDR4_BYTES    12  /* 2 addresses of 4 bytes, 2 ports */
#define V2_ADDR6_BYTES    36  /* 2 of 16, 2 ports */
#define V2_ADDRUNIX_BYTES 216 /* 2 paths of 108 */
#define V2_TLV_HEAD       3   /* 2.2.7: type, 16-bit length */

static const char *const failure_names[] = { "untrusted", "missing", "v1", "v2",
	"too-long", "timeout", "eof" };
_Static_assert(
    sizeof(failure_names) / sizeof(failure_names[0]) == PROXY_NFAILURES,
    "a name for each proxy_failure");

const char *
proxy_failure_name(enum proxy_failure why)
{
	return (unsigned)why < PROXY_NFAILURES ? failure_names[why] : "?";
}

static int __attribute__((format(printf, 4, 5))) bad(enum proxy_failure *why,
    enum proxy_failure f, char *err, const char *fmt, ...)
{
	va_list ap;

	*why = f;
	va_start(ap, fmt);
	vsnprintf(err, 256, fmt, ap);
	va_end(ap);
	return -1;
}

/* A decimal port of 1 to 5 digits, at most 65535, without a leading 0
 * (2.1: "leading zeroes ... not permitted"). */
static bool
v1_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* One v1 address of family af into sa (port set later). */
static bool
v1_addr(int af, const char *s, size_t n, struct sockaddr_storage *ss)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)af;
	if (af == AF_INET)
		return inet_pton(AF_INET, tmp,
			   &((struct sockaddr_in *)(void *)ss)->sin_addr) == 1;
	return inet_pton(AF_INET6, tmp,
		   &((struct sockaddr_in6 *)(void *)ss)->sin6_addr) == 1;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
}

/*
 * 2.1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT" or "PROXY UNKNOWN ...",
 * fields separated by single spaces; line[0..n) is without the CRLF.
 */
static int
v1_line(const char *line, size_t n, struct proxy_header *h,
    enum proxy_failure *why, char *err)
{
	const char *f[5], *p = line + V1_SIG_LEN, *end = line + n;
	size_t fl[5];
	uint16_t sport, dport;
	int i, af;

	if (n >= V1_SIG_LEN + 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
	    (n == V1_SIG_LEN + 7 || p[7] == ' ')) {
		h->local = true; /* the rest is to be ignored */
		return 1;
	}
	for (i = 0; i < 5; i++) {
		f[i] = p;
		while (p < end && *p != ' ')
			p++;
		fl[i] = (size_t)(p - f[i]);
		if (fl[i] == 0 || (i < 4 && p == end))
			return bad(why, PROXY_FAILURE_V1, err,
			    "v1: %s field missing or empty",
			    i == 0 ? "protocol" : "address or port");
		if (i < 4)
			p++;
	}
	if (p != end)
		return bad(why, PROXY_FAILURE_V1, err, "v1: extra fields");
	if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
		af = AF_INET;
	else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return bad(why, PROXY_FAILURE_V1, err,
		    "v1: protocol '%.*s' is not TCP4, TCP6 or UNKNOWN",
		    (int)fl[0], f[0]);
	if (!v1_addr(af, f[1], fl[1], &h->src) ||
	    !v1_addr(af, f[2], fl[2], &h->dst))
		return bad(why, PROXY_FAILURE_V1, err, "v1: bad %s address",
		    af == AF_INET ? "IPv4" : "IPv6");
	if (!v1_port(f[3], fl[3], &sport) || !v1_port(f[4], fl[4], &dport))
		return bad(why, PROXY_FAILURE_V1, err, "v1: bad port");
	set_port(&h->src, sport);
	set_port(&h->dst, dport);
	h->addrlen = af == AF_INET ? sizeof(struct sockaddr_in)
				   : sizeof(struct sockaddr_in6);
	return 1;
}

/* 2.1: the line ends at the first CRLF within 107 bytes. */
static int
v1_parse(const unsigned char *b, size_t len, struct proxy_header *h,
    enum proxy_failure *why, char *err)
{
	size_t n = len < PROXY_V1_MAX_BYTES ? len : PROXY_V1_MAX_BYTES;
	const unsigned char *nl = memchr(b, '\n', n);
	size_t i;

	if (nl == NULL) {
		if (len >= PROXY_V1_MAX_BYTES)
			return bad(why, PROXY_FAILURE_V1, err,
			    "v1: no CRLF within %d bytes", PROXY_V1_MAX_BYTES);
		return 0;
	}
	n = (size_t)(nl - b);
	if (b[n - 1] != '\r')
		return bad(why, PROXY_FAILURE_V1, err,
		    "v1: line ends in LF without CR");
	for (i = 0; i + 1 < n; i++)
		if (b[i] < 0x20 || b[i] > 0x7e)
			return bad(why, PROXY_FAILURE_V1, err,
			    "v1: byte 0x%02x in the line", b[i]);
	h->version = 1;
	h->len = n + 1;
	return v1_line((const char *)b, n - 1, h, why, err);
}

/* 2.2.7: the TLVs after the addresses, each whole; their values are
 * not used. */
static int
v2_tlvs(const unsigned char *p, size_t n, enum proxy_failure *why, char *err)
{
	size_t vlen;

	while (n > 0) {
		if (n < V2_TLV_HEAD)
			return bad(why, PROXY_FAILURE_V2, err,
			    "v2: TLV header cut off (%zu bytes left)", n);
		vlen = (size_t)p[1] << 8 | p[2];
		if (vlen > n - V2_TLV_HEAD)
			return bad(why, PROXY_FAILURE_V2, err,
			    "v2: TLV 0x%02x of %zu bytes overruns the header",
			    p[0], vlen);
		p += V2_TLV_HEAD + vlen;
		n -= V2_TLV_HEAD + vlen;
	}
	return 1;
}

/* 2.2: the address block of a PROXY command (inet or inet6 only). */
static int
v2_addrs(const unsigned char *p, size_t n, int fam, struct proxy_header *h,
    enum proxy_failure *why, char *err)
{
	struct sockaddr_in *s4, *d4;
	struct sockaddr_in6 *s6, *d6;
	size_t need = fam == V2_AF_INET ? V2_ADDR4_BYTES : V2_ADDR6_BYTES;

	if (n < need)
		return bad(why, PROXY_FAILURE_V2, err,
		    "v2: %zu address bytes, %s needs %zu", n,
		    fam == V2_AF_INET ? "inet" : "inet6", need);
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	if (fam == V2_AF_INET) {
		s4 = (struct sockaddr_in *)(void *)&h->src;
		d4 = (struct sockaddr_in *)(void *)&h->dst;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, p, 4);
		memcpy(&d4->sin_addr, p + 4, 4);
		memcpy(&s4->sin_port, p + 8, 2);
		memcpy(&d4->sin_port, p + 10, 2);
		h->addrlen = sizeof(*s4);
	} else {
		s6 = (struct sockaddr_in6 *)(void *)&h->src;
		d6 = (struct sockaddr_in6 *)(void *)&h->dst;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, p, 16);
		memcpy(&d6->sin6_addr, p + 16, 16);
		memcpy(&s6->sin6_port, p + 32, 2);
		memcpy(&d6->sin6_port, p + 34, 2);
		h->addrlen = sizeof(*s6);
	}
	return v2_tlvs(p + need, n - need, why, err);
}

/* 2.2: the binary header, 16 bytes and the length they give. */
static int
v2_parse(const unsigned char *b, size_t len, size_t max_bytes,
    struct proxy_header *h, enum proxy_failure *why, char *err)
{
	size_t total;
	int cmd, fam, tp;

	if (len < PROXY_V2_MIN_BYTES)
		return 0;
	if ((b[12] >> 4) != 2)
		return bad(
		    why, PROXY_FAILURE_V2, err, "v2: version %d", b[12] >> 4);
	cmd = b[12] & 0x0f;
	fam = b[13] >> 4;
	tp = b[13] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return bad(why, PROXY_FAILURE_V2, err, "v2: command 0x%x", cmd);
	total = PROXY_V2_MIN_BYTES + ((size_t)b[14] << 8 | b[15]);
	if (total > max_bytes)
		return bad(why, PROXY_FAILURE_TOO_LONG, err,
		    "v2: %zu bytes, more than proxy-max-header-bytes (%zu)",
		    total, max_bytes);
	if (fam > V2_AF_UNIX || (tp != V2_TP_UNSPEC && tp != V2_TP_STREAM))
		return bad(why, PROXY_FAILURE_V2, err,
		    "v2: family/transport 0x%02x (not a stream)", b[13]);
	if (len < total)
		return 0;
	h->version = 2;
	h->len = total;
	/* 2.2: LOCAL: the address block is to be skipped; UNSPEC and
	 * UNIX carry no address of ours: the connection's peer stands. */
	if (cmd == V2_CMD_LOCAL || fam == V2_AF_UNSPEC) {
		h->local = true;
		return 1;
	}
	if (fam == V2_AF_UNIX) {
		h->local = true;
		if (total - PROXY_V2_MIN_BYTES < V2_ADDRUNIX_BYTES)
			return bad(why, PROXY_FAILURE_V2, err,
			    "v2: unix address block cut short");
		return v2_tlvs(b + PROXY_V2_MIN_BYTES + V2_ADDRUNIX_BYTES,
		    total - PROXY_V2_MIN_BYTES - V2_ADDRUNIX_BYTES, why, err);
	}
	return v2_addrs(b + PROXY_V2_MIN_BYTES, total - PROXY_V2_MIN_BYTES, fam,
	    h, why, err);
}

/*
 * Told apart by the first bytes (2.1, 2.2: "PROXY " against the v2
 * signature); a prefix of either is incomplete, anything else missing.
 */
int
proxy_parse(const void *buf, size_t len, size_t max_bytes,
    struct proxy_header *h, enum proxy_failure *why, char *err, size_t errlen)
{
	const unsigned char *b = buf;
	char msg[256];
	size_t n;
	int rc;

	memset(h, 0, sizeof(*h));
	msg[0] = '\0';
	if (max_bytes < PROXY_V1_MAX_BYTES)
		max_bytes = PROXY_V1_MAX_BYTES;
	n = len < V1_SIG_LEN ? len : V1_SIG_LEN;
	if (memcmp(b, v1_sig, n) == 0) {
		rc = len < V1_SIG_LEN ? 0 : v1_parse(b, len, h, why, msg);
	} else {
		n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(b, v2_sig, n) != 0)
			rc = bad(why, PROXY_FAILURE_MISSING, msg,
			    "no PROXY header (first byte 0x%02x)", b[0]);
		else if (len < sizeof(v2_sig))
			rc = 0;
		else
			rc = v2_parse(b, len, max_bytes, h, why, msg);
	}
	if (rc == -1)
		snprintf(err, errlen, "%s", msg);
	if (rc != 1)
		memset(h, 0, sizeof(*h));
	return rc;
}
