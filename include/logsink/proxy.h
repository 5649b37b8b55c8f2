/*
 * proxy: the PROXY protocol header a load balancer (haproxy send-proxy,
 * send-proxy-v2) puts before a client's stream, version 1 (text) and
 * version 2 (binary), told apart by the first bytes.  Leaf module: it
 * decodes bytes and never reads, logs or allocates.
 * Spec: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
 */
#ifndef LOGSINK_PROXY_H
#define LOGSINK_PROXY_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>

#define PROXY_V1_MAX_BYTES 107 /* spec 2.1: the longest v1 line, CRLF in */
#define PROXY_V2_MIN_BYTES                                                     \
	16 /* spec 2.2: signature, command, family, length                     \
	    */
#define PROXY_V2_MAX_BYTES (16 + 65535)

/* Why a connection's PROXY header was refused:
 * logsink_proxy_failures_total{reason}. */
enum proxy_failure {
	PROXY_FAILURE_UNTRUSTED, /* the peer is not in the listener's proxy= */
	PROXY_FAILURE_MISSING,   /* the first bytes are no PROXY signature */
	PROXY_FAILURE_V1,        /* a malformed v1 line */
	PROXY_FAILURE_V2,        /* a malformed v2 header */
	PROXY_FAILURE_TOO_LONG,  /* v2 longer than proxy-max-header-bytes */
	PROXY_FAILURE_TIMEOUT,   /* not whole within proxy-header-timeout */
	PROXY_FAILURE_EOF,       /* closed (or failed) before it ended */
	PROXY_NFAILURES,
};

/* A decoded header. */
struct proxy_header {
	int version; /* 1 or 2 */
	/* v2 LOCAL (a health check), v1 UNKNOWN, v2 UNSPEC or UNIX: no
	 * client address; the connection's own peer stands. */
	bool local;
	struct sockaddr_storage src, dst; /* AF_INET or AF_INET6, if !local */
	socklen_t addrlen;                /* of src and dst */
	size_t len;                       /* bytes of the header */
};

/*
 * Decodes the header at the start of buf[0..len).  Returns 1 with h set
 * when a whole header is there (h->len bytes of buf; what follows is the
 * client's stream); 0 when it is incomplete, and then every byte of buf
 * belongs to the header (the caller may consume them all and read on);
 * -1 when it is malformed, longer than max_bytes (v2; at least
 * PROXY_V1_MAX_BYTES counts) or no PROXY header: why and err say how.
 */
int proxy_parse(const void *buf, size_t len, size_t max_bytes,
    struct proxy_header *h, enum proxy_failure *why, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* "untrusted", "missing", "v1", ... for metrics and logs. */
const char *proxy_failure_name(enum proxy_failure why);

#endif
