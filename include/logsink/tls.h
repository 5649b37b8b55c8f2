/*
 * tls: the OpenSSL side of TLS listeners (RFC 5425: syslog over TLS, the
 * same framing as plain TCP inside).  Loads and checks the certificate,
 * key and CA files into a server context, makes the per-connection SSL
 * objects libevent's OpenSSL bufferevents run on, and reads what a
 * finished handshake tells (the verified client certificate's subject) or
 * why one failed.  Leaf module: errors go to the caller through
 * (err, errlen), nothing is logged.  The OpenSSL types stay inside: other
 * modules see struct tls_ctx and libevent's struct ssl_st only.
 */
#ifndef LOGSINK_TLS_H
#define LOGSINK_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "logsink/tls_types.h"

struct ssl_st;

/* What a context is built from (strings borrowed for the call). */
struct tls_settings {
	const char *cert_file; /* PEM: the certificate, then its chain */
	const char *key_file;  /* PEM: its private key, not encrypted */
	const char *ca_file;   /* PEM: CAs client certificates must chain to */
	enum tls_verify verify;
	int min_version; /* 12: TLS 1.2, 13: TLS 1.3 */
};

/*
 * A server context; reference counted by OpenSSL, so connections made
 * from one keep it alive after tls_ctx_free() (a SIGHUP reload replaces
 * it for new connections only).
 */
struct tls_ctx;

/*
 * Reads and checks the files (readable by the current user, PEM that
 * parses, the key matching the certificate, a CA file with at least one
 * certificate) and builds the context: TLS 1.2 at least (or
 * min_version), OpenSSL's default ciphers, no renegotiation, no
 * compression.  NULL with a message naming the file, the OpenSSL reason
 * and what to do in err.
 */
struct tls_ctx *tls_ctx_new(
    const struct tls_settings *set, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* "subject=... expires=... verify-client=..." of ctx, for the log. */
const char *tls_ctx_describe(const struct tls_ctx *ctx);
/* Whether the server certificate's validity had ended when it was loaded. */
bool tls_ctx_expired(const struct tls_ctx *ctx);

/*
 * Whether the current user can read the files of set (after the switch to
 * the unprivileged user: a SIGHUP reload reads them again as that user).
 * false with the first unreadable file and why in err.
 */
bool tls_files_readable(
    const struct tls_settings *set, char *err, size_t errlen);

/* A new server-side SSL for one connection; NULL on ENOMEM. */
struct ssl_st *tls_conn_new(struct tls_ctx *ctx);
/* Frees one that no bufferevent took over. */
void tls_conn_free(struct ssl_st *ssl);
/*
 * Copies plaintext OpenSSL has decrypted but not yet handed out (the
 * rest of a record; SSL_pending()) into buf, without touching the
 * socket.  Returns the bytes copied, 0 when there are none.
 */
int tls_read_pending(struct ssl_st *ssl, void *buf, size_t len);
/* "TLSv1.3"... of an established connection, for the log. */
const char *tls_conn_version(struct ssl_st *ssl);

/*
 * After a completed handshake: the verified client certificate's subject
 * in RFC 2253 form, malloc'ed (the caller frees it), or NULL when the
 * client sent none (or on ENOMEM).
 */
char *tls_peer_subject(struct ssl_st *ssl);

/*
 * Why a handshake failed: errs[0..n) are the errors libevent kept
 * (bufferevent_get_openssl_error(); none: the peer closed or reset the
 * connection, sock_err says which).  Puts the reason, with the result of
 * the certificate check when that was the cause, in buf and returns the
 * reason it counts as.
 */
enum tls_failure tls_failure(struct ssl_st *ssl, const unsigned long *errs,
    size_t n, int sock_err, char *buf, size_t buflen);

#endif
