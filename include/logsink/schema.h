/*
 * schema: the SQL under sql/, compiled into the binary, and the statements
 * derived from the configured table name.
 */
#ifndef LOGSINK_SCHEMA_H
#define LOGSINK_SCHEMA_H

#include <stddef.h>

#include <libpq-fe.h>

struct schema_file {
	const char *name;
	const char *sql; /* with @SCHEMA@, @NAME@ and @TABLE@ placeholders */
};

/* Generated from the files in sql/ at build time; ends with NULLs. */
extern const struct schema_file schema_files[];

/*
 * Applies every schema file to table ("schema.name") in one transaction
 * over a blocking connection.  Idempotent.  -1 with a message in err.
 */
int schema_apply(PGconn *conn, const char *table, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* "COPY table (columns) FROM STDIN"; the caller frees it. */
char *schema_copy_sql(const char *table);
/* A query that fails unless every column the daemon writes exists. */
char *schema_check_sql(const char *table);

/* Replaces the placeholders in sql; the caller frees it.  NULL on ENOMEM. */
char *schema_expand(const char *sql, const char *table);

#endif
