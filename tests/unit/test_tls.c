/*
 * Unit tests for tls: the errors of tls_ctx_new() for files that are
 * missing or not PEM (the integration tests, test_tls.py, cover real
 * certificates: key mismatch, reload, handshakes), how tls_failure()
 * names and classifies a failed handshake, and tls_verify_name().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "logsink/tls.h"

/* Heap fixture: a temp file and a bare SSL for tls_failure(). */
struct fx {
	char path[64]; /* temp file, or "" */
	SSL_CTX *ctx;
	SSL *ssl;
	char err[1024];
};

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (x == NULL || (x->ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    (x->ssl = SSL_new(x->ctx)) == NULL) {
		if (x != NULL)
			SSL_CTX_free(x->ctx);
		free(x);
		return -1;
	}
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;

	if (x->path[0] != '\0')
		unlink(x->path);
	SSL_free(x->ssl);
	SSL_CTX_free(x->ctx);
	free(x);
	return 0;
}

/* Fails unless err contains s. */
static void
assert_has(const char *err, const char *s)
{
	if (strstr(err, s) == NULL)
		fail_msg("'%s' does not contain '%s'", err, s);
}

static const char *
write_file(struct fx *x, const char *text)
{
	size_t n = strlen(text);
	int fd;

	snprintf(x->path, sizeof(x->path), "/tmp/logsink-test-tls.XXXXXX");
	fd = mkstemp(x->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
	return x->path;
}

static void
test_ctx_missing_file(void **state)
{
	struct fx *x = *state;
	struct tls_settings set = { "/nonexistent/server.pem",
		"/nonexistent/server.key", NULL, TLS_VERIFY_NONE, 12 };

	assert_null(tls_ctx_new(&set, x->err, sizeof(x->err)));
	assert_has(x->err,
	    "tls-cert /nonexistent/server.pem: No such file or "
	    "directory (check the path)");
}

static void
test_ctx_not_pem(void **state)
{
	struct fx *x = *state;
	struct tls_settings set = { NULL, NULL, NULL, TLS_VERIFY_NONE, 12 };

	set.cert_file = set.key_file = write_file(x,
	    "-----BEGIN CERTIFICATE-----\nnot base64\n"
	    "-----END CERTIFICATE-----\n");
	assert_null(tls_ctx_new(&set, x->err, sizeof(x->err)));
	assert_has(x->err, "tls-cert ");
	assert_has(x->err, x->path);
	assert_has(x->err, ": no usable PEM certificate (OpenSSL: ");
	assert_int_equal(ERR_peek_error(), 0); /* the queue was emptied */
}

static void
test_failure_closed(void **state)
{
	struct fx *x = *state;

	assert_int_equal(
	    tls_failure(x->ssl, NULL, 0, 0, x->err, sizeof(x->err)),
	    TLS_FAILURE_CLOSED);
	assert_string_equal(x->err, "the peer closed the connection");
	assert_int_equal(
	    tls_failure(x->ssl, NULL, 0, ECONNRESET, x->err, sizeof(x->err)),
	    TLS_FAILURE_CLOSED);
	assert_string_equal(x->err, strerror(ECONNRESET));
}

static void
test_failure_reasons(void **state)
{
	struct fx *x = *state;
	/* libevent keeps SSL_get_error() codes beside the queue's errors. */
	unsigned long errs[2] = { SSL_ERROR_SSL,
		ERR_PACK(
		    ERR_LIB_SSL, 0, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) };

	assert_int_equal(
	    tls_failure(x->ssl, errs, 2, 0, x->err, sizeof(x->err)),
	    TLS_FAILURE_NO_CERTIFICATE);
	assert_has(x->err, "the client sent no certificate");
	errs[1] = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_WRONG_VERSION_NUMBER);
	assert_int_equal(
	    tls_failure(x->ssl, errs, 2, 0, x->err, sizeof(x->err)),
	    TLS_FAILURE_PROTOCOL);
	assert_string_equal(x->err, "wrong version number");
	errs[1] = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_CERTIFICATE_VERIFY_FAILED);
	SSL_set_verify_result(x->ssl, X509_V_ERR_CERT_HAS_EXPIRED);
	assert_int_equal(
	    tls_failure(x->ssl, errs, 2, 0, x->err, sizeof(x->err)),
	    TLS_FAILURE_EXPIRED_CERTIFICATE);
	assert_string_equal(x->err,
	    "the client certificate did not verify "
	    "against tls-ca: certificate has expired");
	SSL_set_verify_result(
	    x->ssl, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
	assert_int_equal(
	    tls_failure(x->ssl, errs, 2, 0, x->err, sizeof(x->err)),
	    TLS_FAILURE_BAD_CERTIFICATE);
	assert_has(x->err, "unable to get local issuer certificate");
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(tls_verify_name(TLS_VERIFY_NONE), "none");
	assert_string_equal(tls_verify_name(TLS_VERIFY_OPTIONAL), "optional");
	assert_string_equal(tls_verify_name(TLS_VERIFY_REQUIRE), "require");
	assert_string_equal(tls_failure_name(TLS_FAILURE_TIMEOUT), "timeout");
	assert_string_equal(tls_failure_name(TLS_NFAILURES), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_ctx_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_ctx_not_pem, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failure_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failure_reasons, setup, teardown),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
