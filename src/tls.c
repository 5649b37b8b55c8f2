/*
 * tls: OpenSSL server contexts for TLS listeners (see
 * include/logsink/tls.h).  References: RFC 5425 (syslog over TLS),
 * OpenSSL 3.0 SSL_CTX_new(3), SSL_CTX_set_verify(3), X509_NAME_print_ex(3).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "logsink/tls.h"

#define SESSION_ID_CONTEXT "logsinkd"

/* Owned by its creator (main); freed by tls_ctx_free(). */
struct tls_ctx {
	SSL_CTX *ssl;   /* reference counted: each SSL made holds one */
	char desc[512]; /* tls_ctx_describe() */
	bool expired;
};

/* The password callback's record of having been asked (see below). */
struct pass_ask {
	bool asked;
};

/*
 * Empties OpenSSL's error queue of this thread into buf: the reasons,
 * "; "-separated, without repeats ("no start line", "key values
 * mismatch").  "no detail" when the queue was empty.
 */
static void
ossl_reasons(char *buf, size_t buflen)
{
	unsigned long e;
	const char *r;
	size_t n = 0;
	char code[32];

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		if ((r = ERR_reason_error_string(e)) == NULL) {
			snprintf(code, sizeof(code), "error %lx", e);
			r = code;
		}
		if (strstr(buf, r) != NULL || n + 1 >= buflen)
			continue;
		n += (size_t)snprintf(
		    buf + n, buflen - n, "%s%s", n > 0 ? "; " : "", r);
		if (n >= buflen)
			n = buflen - 1;
	}
	if (n == 0)
		snprintf(buf, buflen, "no detail from OpenSSL");
}

/*
 * Opens path for reading as the current user, to tell "not there" and
 * "not readable" apart from "not PEM" before OpenSSL is asked.  The
 * message says which user needs to read it: after start-up that is the
 * unprivileged user logsinkd switched to (user = ...), and SIGHUP reloads
 * read the files again as that user.
 */
static bool
file_readable(const char *key, const char *path, char *err, size_t errlen)
{
	struct passwd *pw;
	int fd, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) != -1) {
		close(fd);
		return true;
	}
	e = errno;
	pw = getpwuid(geteuid());
	snprintf(err, errlen, "%s %s: %s%s%s%s%s", key, path, strerror(e),
	    e == EACCES ? " (it must be readable by the user logsinkd runs "
			  "as, "
			: "",
	    e == EACCES ? (pw != NULL ? pw->pw_name : "this uid") : "",
	    e == EACCES ? ", also for SIGHUP reloads: e.g. chgrp that user's "
			  "group and chmod g+r the file)"
			: "",
	    e == ENOENT ? " (check the path)" : "");
	return false;
}

bool
tls_files_readable(const struct tls_settings *set, char *err, size_t errlen)
{
	return file_readable("tls-cert", set->cert_file, err, errlen) &&
	    file_readable("tls-key", set->key_file, err, errlen) &&
	    (set->ca_file == NULL ||
		file_readable("tls-ca", set->ca_file, err, errlen));
}

/* A key file with a passphrase: say so instead of prompting on a tty. */
static int
no_passphrase_cb(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	((struct pass_ask *)arg)->asked = true;
	return 0;
}

/* The certificate (and its chain) and the key that must match it. */
static int
load_cert_key(
    SSL_CTX *ssl, const struct tls_settings *set, char *err, size_t errlen)
{
	struct pass_ask ask = { false };
	char why[256];
	unsigned long e;

	if (SSL_CTX_use_certificate_chain_file(ssl, set->cert_file) != 1) {
		ossl_reasons(why, sizeof(why));
		snprintf(err, errlen,
		    "tls-cert %s: no usable PEM certificate (OpenSSL: %s)",
		    set->cert_file, why);
		return -1;
	}
	SSL_CTX_set_default_passwd_cb(ssl, no_passphrase_cb);
	SSL_CTX_set_default_passwd_cb_userdata(ssl, &ask);
	if (SSL_CTX_use_PrivateKey_file(ssl, set->key_file, SSL_FILETYPE_PEM) !=
	    1) {
		e = ERR_peek_last_error();
		ossl_reasons(why, sizeof(why));
		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			snprintf(err, errlen,
			    "tls-key %s does not match the certificate in "
			    "tls-cert %s (OpenSSL: %s): name the key the "
			    "certificate was issued for",
			    set->key_file, set->cert_file, why);
		else if (ask.asked)
			snprintf(err, errlen,
			    "tls-key %s is encrypted with a passphrase, which "
			    "logsinkd cannot ask for: store it decrypted "
			    "(openssl pkey -in KEY -out NEWKEY), readable only "
			    "by logsinkd's user",
			    set->key_file);
		else
			snprintf(err, errlen,
			    "tls-key %s: no usable PEM private key (OpenSSL: "
			    "%s)",
			    set->key_file, why);
		SSL_CTX_set_default_passwd_cb_userdata(ssl, NULL);
		return -1;
	}
	SSL_CTX_set_default_passwd_cb_userdata(ssl, NULL);
	if (SSL_CTX_check_private_key(ssl) != 1) {
		ossl_reasons(why, sizeof(why));
		snprintf(err, errlen,
		    "tls-key %s does not match the certificate in tls-cert %s "
		    "(OpenSSL: %s)",
		    set->key_file, set->cert_file, why);
		return -1;
	}
	return 0;
}

/* The CAs client certificates are checked against, and announced. */
static int
load_ca(SSL_CTX *ssl, const char *ca_file, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) * names;
	char why[256];

	if (SSL_CTX_load_verify_locations(ssl, ca_file, NULL) != 1) {
		ossl_reasons(why, sizeof(why));
		snprintf(err, errlen,
		    "tls-ca %s: no usable PEM CA certificate (OpenSSL: %s)",
		    ca_file, why);
		return -1;
	}
	if ((names = SSL_load_client_CA_file(ca_file)) == NULL) {
		ossl_reasons(why, sizeof(why));
		snprintf(err, errlen, "tls-ca %s: %s", ca_file, why);
		return -1;
	}
	SSL_CTX_set_client_CA_list(ssl, names);
	return 0;
}

/* The server certificate's subject and end of validity, for the log. */
static void
describe(struct tls_ctx *ctx, const struct tls_settings *set)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx->ssl);
	BIO *bio = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n = 0;

	ctx->expired =
	    cert != NULL && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0;
	if (bio != NULL && cert != NULL) {
		BIO_printf(bio, "subject=");
		X509_NAME_print_ex(
		    bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
		BIO_printf(bio, " expires=");
		ASN1_TIME_print(bio, X509_get0_notAfter(cert));
		n = BIO_get_mem_data(bio, &p);
	}
	snprintf(ctx->desc, sizeof(ctx->desc),
	    "%.*s%s verify-client=%s min-version=1.%d", (int)n,
	    p != NULL ? p : "", ctx->expired ? " (EXPIRED)" : "",
	    tls_verify_name(set->verify), set->min_version % 10);
	BIO_free(bio);
}

struct tls_ctx *
tls_ctx_new(const struct tls_settings *set, char *err, size_t errlen)
{
	struct tls_ctx *ctx;
	int mode = SSL_VERIFY_NONE;

	ERR_clear_error();
	if (!tls_files_readable(set, err, errlen))
		return NULL;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL ||
	    (ctx->ssl = SSL_CTX_new(TLS_server_method())) == NULL) {
		free(ctx);
		snprintf(err, errlen, "SSL_CTX_new: out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(
	    ctx->ssl, set->min_version >= 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	/* Renegotiation only serves attacks here; compression leaks (CRIME).
	 * Clients that close without close_notify (most syslog senders) end
	 * their stream like a plain TCP client does. */
	SSL_CTX_set_options(ctx->ssl,
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
		SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle connections give their read and write buffers back. */
	SSL_CTX_set_mode(ctx->ssl,
	    SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
		SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_id_context(ctx->ssl,
	    (const unsigned char *)SESSION_ID_CONTEXT,
	    sizeof(SESSION_ID_CONTEXT) - 1);
	if (load_cert_key(ctx->ssl, set, err, errlen) == -1 ||
	    (set->ca_file != NULL &&
		load_ca(ctx->ssl, set->ca_file, err, errlen) == -1)) {
		tls_ctx_free(ctx);
		return NULL;
	}
	if (set->verify == TLS_VERIFY_OPTIONAL)
		mode = SSL_VERIFY_PEER;
	else if (set->verify == TLS_VERIFY_REQUIRE)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx->ssl, mode, NULL);
	describe(ctx, set);
	return ctx;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl);
	free(ctx);
}

const char *
tls_ctx_describe(const struct tls_ctx *ctx)
{
	return ctx->desc;
}

bool
tls_ctx_expired(const struct tls_ctx *ctx)
{
	return ctx->expired;
}

struct ssl_st *
tls_conn_new(struct tls_ctx *ctx)
{
	return SSL_new(ctx->ssl);
}

void
tls_conn_free(struct ssl_st *ssl)
{
	SSL_free(ssl);
}

int
tls_read_pending(struct ssl_st *ssl, void *buf, size_t len)
{
	int pending = SSL_pending(ssl), n;

	if (pending <= 0 || len == 0)
		return 0;
	if ((size_t)pending < len)
		len = (size_t)pending;
	n = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (n <= 0) {
		ERR_clear_error();
		return 0;
	}
	return n;
}

const char *
tls_conn_version(struct ssl_st *ssl)
{
	return SSL_get_version(ssl);
}

char *
tls_peer_subject(struct ssl_st *ssl)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	BIO *bio;
	char *p, *s = NULL;
	long n;

	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (X509_NAME_print_ex(
		bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(bio, &p)) >= 0)
		s = strndup(p, (size_t)n);
	BIO_free(bio);
	return s;
}

/* The first error of errs from libssl or libcrypto (not a bare code). */
static unsigned long
first_lib_error(const unsigned long *errs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ERR_GET_LIB(errs[i]) == ERR_LIB_SSL)
			return errs[i];
	for (i = 0; i < n; i++)
		if (ERR_GET_LIB(errs[i]) != 0)
			return errs[i];
	return 0;
}

enum tls_failure
tls_failure(struct ssl_st *ssl, const unsigned long *errs, size_t n,
    int sock_err, char *buf, size_t buflen)
{
	unsigned long e = first_lib_error(errs, n);
	const char *r;
	long v;

	if (e == 0) {
		snprintf(buf, buflen, "%s",
		    sock_err != 0 ? strerror(sock_err)
				  : "the peer closed the connection");
		return TLS_FAILURE_CLOSED;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		snprintf(buf, buflen,
		    "the client sent no certificate (tls-verify-client = "
		    "require)");
		return TLS_FAILURE_NO_CERTIFICATE;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		v = SSL_get_verify_result(ssl);
		snprintf(buf, buflen,
		    "the client certificate did not verify against tls-ca: "
		    "%s",
		    X509_verify_cert_error_string(v));
		return v == X509_V_ERR_CERT_HAS_EXPIRED ||
			v == X509_V_ERR_CERT_NOT_YET_VALID
		    ? TLS_FAILURE_EXPIRED_CERTIFICATE
		    : TLS_FAILURE_BAD_CERTIFICATE;
	}
	if ((r = ERR_reason_error_string(e)) == NULL)
		r = "unknown OpenSSL error";
	snprintf(buf, buflen, "%s", r);
	return TLS_FAILURE_PROTOCOL;
}
