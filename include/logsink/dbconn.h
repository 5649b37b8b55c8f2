/*
 * dbconn: turns the db setting into libpq connection parameters, and
 * describes the target for log lines without ever showing a password.
 */
#ifndef LOGSINK_DBCONN_H
#define LOGSINK_DBCONN_H

#include <stddef.h>

#define DBCONN_NPARAMS 10

/* Parameters for PQconnectdbParams/PQconnectStartParams (expand_dbname 1). */
struct dbconn {
	const char *keys[DBCONN_NPARAMS];
	const char *vals[DBCONN_NPARAMS];
	char target[512]; /* "host=... port=... dbname=... user=..." */
	char user_timeout[16];
};

/*
 * Checks the syntax of conninfo (a key/value string or a postgresql:// URI;
 * NULL means libpq's PG* environment) and fills dc.  dc borrows conninfo.
 * -1 with a message in err.
 */
int dbconn_init(struct dbconn *dc, const char *conninfo, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * Adds TCP keepalives (a dead peer of an idle connection is noticed in
 * about 30 s) and tcp_user_timeout = timeout_ms (unacknowledged data),
 * unless the conninfo sets them.  Unix-socket connections ignore them.
 */
void dbconn_set_timeouts(struct dbconn *dc, int timeout_ms);

/* Copies a libpq message into out without trailing newlines. */
const char *dbconn_trim(char *out, size_t outlen, const char *msg);

#endif
