/*
 * schema: the SQL under sql/, compiled into the binary, the versioned
 * migrations of --init-db, and the statements derived from the configured
 * table name.
 */
#ifndef LOGSINK_SCHEMA_H
#define LOGSINK_SCHEMA_H

#include <stddef.h>

#include <libpq-fe.h>

/* SQLSTATE of the connection check: the table cannot take our rows. */
#define SCHEMA_SQLSTATE_UNUSABLE "LS001"

/*
 * Longest table name (without schema) --init-db accepts: names of
 * partitions, indexes and functions are derived from it.
 */
#define SCHEMA_MAX_NAME_LEN 40

struct schema_file {
	const char *name; /* "001_logs.sql" */
	int version;      /* 1 for 001_*.sql; 0: applied on every run */
	const char *sql;  /* with @SCHEMA@, @NAME@ and @TABLE@ placeholders */
};

/* Generated from sql/ at build time, sorted by name; ends with NULLs. */
extern const struct schema_file schema_files[];

/* The schema version this binary creates: the highest migration number. */
int schema_version(void);

/*
 * --init-db for table ("schema.name") over a blocking connection: applies
 * the migrations newer than the database's version, each in its own
 * transaction, then the always_*.sql files.  Re-running changes nothing.
 * Fails when the database's version is newer than schema_version() or the
 * table exists without a version table.  Concurrent runs wait for each
 * other (advisory lock).  0, or -1 with a message in err; never logs.
 * NOTICEs of the always_*.sql files reach the connection's notice
 * processor.
 */
int schema_apply(PGconn *conn, const char *table, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* "COPY table (columns) FROM STDIN"; the caller frees it. */
char *schema_copy_sql(const char *table);

/*
 * The check logsinkd runs on each new connection.  Needs no privilege
 * beyond what logsink_writer has (no SELECT).  Fails with SQLSTATE
 * SCHEMA_SQLSTATE_UNUSABLE and a message saying what to do when the table
 * or a written column is missing, the schema version differs from
 * schema_version() (older: run --init-db; newer: upgrade logsinkd), or the
 * role may not INSERT the columns.  The caller frees it; NULL on ENOMEM
 * or an invalid table name.
 */
char *schema_check_sql(const char *table);

/*
 * "SELECT schema.name_maintain(days_ahead, retention_days)": creates the
 * coming day partitions, drops expired ones (retention_days 0: none);
 * returns one text row, a summary.  The caller frees it; NULL on ENOMEM or
 * an invalid table name.
 */
char *schema_maintain_sql(
    const char *table, int days_ahead, int retention_days);

/* Replaces the placeholders in sql; the caller frees it.  NULL on ENOMEM. */
char *schema_expand(const char *sql, const char *table);

#endif
