/*
 * tls_types: the words of TLS that modules without OpenSSL use: the
 * client verification modes (config parses and dumps them) and why a
 * handshake failed (tls_failure() classifies, listener logs, metrics
 * counts per reason), each with its name.  Split from tls.h so that
 * metrics and config need neither tls.h nor each other.
 *
 * Leaf module, header only.
 */
#ifndef LOGSINK_TLS_TYPES_H
#define LOGSINK_TLS_TYPES_H

/* tls-verify-client */
enum tls_verify {
	TLS_VERIFY_NONE,     /* no client certificate is asked for */
	TLS_VERIFY_OPTIONAL, /* asked for; one that is sent must verify */
	TLS_VERIFY_REQUIRE,  /* a client without a valid one is refused */
};

/* Why a handshake failed: logsink_tls_handshake_failures_total{reason}. */
enum tls_failure {
	TLS_FAILURE_NO_CERTIFICATE,      /* tls-verify-client = require */
	TLS_FAILURE_BAD_CERTIFICATE,     /* did not verify against tls-ca */
	TLS_FAILURE_EXPIRED_CERTIFICATE, /* expired (or not yet valid) */
	TLS_FAILURE_PROTOCOL,            /* not TLS, no common version... */
	TLS_FAILURE_CLOSED,              /* the peer went away mid-handshake */
	TLS_FAILURE_TIMEOUT,             /* tls-handshake-timeout */
	TLS_NFAILURES,
};

/* "none", "optional" or "require" (the config values). */
static inline const char *
tls_verify_name(enum tls_verify v)
{
	switch (v) {
	case TLS_VERIFY_NONE:
		return "none";
	case TLS_VERIFY_OPTIONAL:
		return "optional";
	case TLS_VERIFY_REQUIRE:
		return "require";
	}
	return "?";
}

/* "no_certificate", ...: the metrics label and log word of a reason. */
static inline const char *
tls_failure_name(enum tls_failure f)
{
	switch (f) {
	case TLS_FAILURE_NO_CERTIFICATE:
		return "no_certificate";
	case TLS_FAILURE_BAD_CERTIFICATE:
		return "bad_certificate";
	case TLS_FAILURE_EXPIRED_CERTIFICATE:
		return "expired_certificate";
	case TLS_FAILURE_PROTOCOL:
		return "protocol";
	case TLS_FAILURE_CLOSED:
		return "closed";
	case TLS_FAILURE_TIMEOUT:
		return "timeout";
	case TLS_NFAILURES:
		break;
	}
	return "unknown";
}

#endif
