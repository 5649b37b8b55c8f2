/*
 * schema: --init-db (versioned migrations from sql/) and the statements
 * derived from the table name.  A leaf: errors go to the caller through
 * err/errlen, nothing is logged.
 *
 * Migrations: sql/NNN_name.sql is schema version NNN.  The versions a
 * database has are rows of <table>_schema_version; --init-db applies the
 * newer files in order, each in its own transaction together with its
 * row, then the always_*.sql files (idempotent: roles, grants, partitions)
 * each in a transaction of its own.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "logsink/copyenc.h"
#include "logsink/schema.h"

#ifndef LOGSINK_VERSION
#define LOGSINK_VERSION "unknown"
#endif

/* Advisory lock class of --init-db ('logt'); the key is the table. */
#define SCHEMA_LOCK_SQL                                                        \
	"SELECT pg_advisory_lock(1819240308, hashtext(lower('@TABLE@')))"
#define SCHEMA_UNLOCK_SQL                                                      \
	"SELECT pg_advisory_unlock(1819240308, hashtext(lower('@TABLE@')))"

/*
 * Before the first migration: the schema and the version table.  A table
 * without a version table was made by a pre-release logsinkd (not
 * partitioned) or by hand: it is refused rather than guessed at.
 */
static const char bootstrap_sql[] =
    "DO $do$\n"
    "BEGIN\n"
    "	IF to_regnamespace('@SCHEMA@') IS NULL THEN\n"
    "		CREATE SCHEMA @SCHEMA@;\n"
    "	END IF;\n"
    "	IF to_regclass('@TABLE@_schema_version') IS NULL\n"
    "	    AND to_regclass('@TABLE@') IS NOT NULL THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001',\n"
    "		    MESSAGE = 'table @TABLE@ exists but has no version '\n"
    "			'table @TABLE@_schema_version: it was made by a '\n"
    "			'pre-release logsinkd or by hand, and cannot be '\n"
    "			'upgraded in place',\n"
    "		    HINT = 'rename it (ALTER TABLE @TABLE@ RENAME TO '\n"
    "			'@NAME@_old), run logsinkd --init-db again, then '\n"
    "			'copy its rows: INSERT INTO @TABLE@ SELECT * FROM '\n"
    "			'@TABLE@_old';\n"
    "	END IF;\n"
    "END\n"
    "$do$;\n"
    "CREATE TABLE IF NOT EXISTS @TABLE@_schema_version (\n"
    "	version    integer PRIMARY KEY,\n"
    "	name       text NOT NULL,\n"
    "	applied_at timestamptz NOT NULL DEFAULT now(),\n"
    "	applied_by name NOT NULL DEFAULT current_user,\n"
    "	logsinkd   text NOT NULL\n"
    ");\n";

/*
 * The connection check (see schema.h), after a DECLARE of tbl, want and
 * cols made by schema_check_sql().  Catalog lookups instead of to_regclass
 * or a SELECT: they need no privilege on the schema or the table.
 */
static const char check_body[] =
    "	parts text[] := pg_catalog.parse_ident(tbl);\n"
    "	nsp oid;\n"
    "	rel oid;\n"
    "	fn oid;\n"
    "	v integer;\n"
    "	bad text;\n"
    "	nbad integer;\n"
    "BEGIN\n"
    "	SELECT n.oid INTO nsp FROM pg_catalog.pg_namespace n\n"
    "	    WHERE n.nspname = parts[1];\n"
    "	SELECT c.oid INTO rel FROM pg_catalog.pg_class c\n"
    "	    WHERE c.relnamespace = nsp AND c.relname = parts[2]\n"
    "	    AND c.relkind IN ('r', 'p');\n"
    "	IF rel IS NULL THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('table %s does not exist: run logsinkd --init-db',\n"
    "			tbl);\n"
    "	END IF;\n"
    "	IF NOT pg_catalog.has_schema_privilege(nsp, 'USAGE') THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('role %s may not use schema %s: make it a member '\n"
    "			'of logsink_writer (GRANT logsink_writer TO %s)',\n"
    "			current_user, parts[1], current_user);\n"
    "	END IF;\n"
    "	SELECT p.oid INTO fn FROM pg_catalog.pg_proc p\n"
    "	    WHERE p.pronamespace = nsp AND p.pronargs = 0\n"
    "	    AND p.proname = parts[2] || '_schema_version';\n"
    "	IF fn IS NULL THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('table %s has no schema version (no function '\n"
    "			'%s_schema_version()): it was not made by logsinkd '\n"
    "			'--init-db; run logsinkd --init-db', tbl, tbl);\n"
    "	END IF;\n"
    "	IF NOT pg_catalog.has_function_privilege(fn, 'EXECUTE') THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('role %s may not run %s_schema_version(): run '\n"
    "			'logsinkd --init-db', current_user, tbl);\n"
    "	END IF;\n"
    "	EXECUTE format('SELECT %I.%I()', parts[1],\n"
    "	    parts[2] || '_schema_version') INTO v;\n"
    "	IF coalesce(v, 0) < want THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('schema version %s of table %s is older than this "
    "'\n"
    "			'logsinkd (%s): run logsinkd --init-db',\n"
    "			coalesce(v, 0), tbl, want);\n"
    "	ELSIF v > want THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('database schema version %s is newer than this '\n"
    "			'logsinkd (%s): upgrade logsinkd', v, want);\n"
    "	END IF;\n"
    "	SELECT string_agg(u.c, ', ' ORDER BY u.o) INTO bad\n"
    "	    FROM unnest(cols) WITH ORDINALITY AS u(c, o)\n"
    "	    WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a\n"
    "		WHERE a.attrelid = rel AND a.attname = u.c\n"
    "		AND a.attnum > 0 AND NOT a.attisdropped);\n"
    "	IF bad IS NOT NULL THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('table %s lacks column(s) %s: run logsinkd '\n"
    "			'--init-db', tbl, bad);\n"
    "	END IF;\n"
    "	SELECT string_agg(u.c, ', ' ORDER BY u.o), count(*)\n"
    "	    INTO bad, nbad FROM unnest(cols) WITH ORDINALITY AS u(c, o)\n"
    "	    WHERE NOT pg_catalog.has_column_privilege(rel, u.c, 'INSERT');\n"
    "	IF nbad > 0 THEN\n"
    "		RAISE EXCEPTION USING ERRCODE = 'LS001', MESSAGE =\n"
    "		    format('role %s may not INSERT into %s%s: make it a '\n"
    "			'member of logsink_writer (GRANT logsink_writer TO '\n"
    "			'%s)', current_user, tbl,\n"
    "			CASE WHEN nbad < cardinality(cols)\n"
    "			    THEN ' (columns ' || bad || ')' ELSE '' END,\n"
    "			current_user);\n"
    "	END IF;\n"
    "END\n";

/* Appends s[0..n) to *out (size *len, capacity *cap).  -1 on ENOMEM. */
static int
append(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	char *p;

	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		if ((p = realloc(*out, *cap)) == NULL)
			return -1;
		*out = p;
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
	return 0;
}

char *
schema_expand(const char *sql, const char *table)
{
	const char *dot = strchr(table, '.'), *p = sql, *at, *val;
	size_t len = 0, cap = 0, vlen;
	char *out = NULL;

	if (dot == NULL)
		return NULL;
	while ((at = strchr(p, '@')) != NULL) {
		if (append(&out, &len, &cap, p, (size_t)(at - p)) == -1)
			goto fail;
		if (strncmp(at, "@TABLE@", 7) == 0) {
			val = table, vlen = strlen(table), p = at + 7;
		} else if (strncmp(at, "@SCHEMA@", 8) == 0) {
			val = table, vlen = (size_t)(dot - table), p = at + 8;
		} else if (strncmp(at, "@NAME@", 6) == 0) {
			val = dot + 1, vlen = strlen(dot + 1), p = at + 6;
		} else {
			val = "@", vlen = 1, p = at + 1;
		}
		if (append(&out, &len, &cap, val, vlen) == -1)
			goto fail;
	}
	if (append(&out, &len, &cap, p, strlen(p)) == -1)
		goto fail;
	return out;
fail:
	free(out);
	return NULL;
}

/*
 * Whether table is "schema.name", both plain identifiers (letters, digits,
 * '_', '$'; config.c checks the same).  The statements here put it into
 * SQL text unquoted and inside string literals, so nothing else may pass.
 */
static bool
table_name_ok(const char *table)
{
	const char *p = table;
	int part;

	for (part = 0; part < 2; part++) {
		if (!isalpha((unsigned char)*p) && *p != '_')
			return false;
		while (isalnum((unsigned char)*p) || *p == '_' || *p == '$')
			p++;
		if (*p != (part == 0 ? '.' : '\0'))
			return false;
		p++;
	}
	return true;
}

int
schema_version(void)
{
	const struct schema_file *f;
	int v = 0;

	for (f = schema_files; f->name != NULL; f++)
		if (f->version > v)
			v = f->version;
	return v;
}

char *
schema_copy_sql(const char *table)
{
	char *s;

	if (asprintf(&s, "COPY %s (%s) FROM STDIN " COPYENC_OPTIONS, table,
		COPYENC_COLUMNS) == -1)
		return NULL;
	return s;
}

/* s as an SQL string literal ('...', quotes doubled); NULL on ENOMEM. */
static char *
quote_literal(const char *s)
{
	size_t len = 0, cap = 0;
	const char *q;
	char *out = NULL;

	if (append(&out, &len, &cap, "'", 1) == -1)
		return NULL;
	while ((q = strchr(s, '\'')) != NULL) {
		if (append(&out, &len, &cap, s, (size_t)(q - s + 1)) == -1 ||
		    append(&out, &len, &cap, "'", 1) == -1)
			goto fail;
		s = q + 1;
	}
	if (append(&out, &len, &cap, s, strlen(s)) == -1 ||
	    append(&out, &len, &cap, "'", 1) == -1)
		goto fail;
	return out;
fail:
	free(out);
	return NULL;
}

/*
 * A DO block: plain SQL cannot raise our own SQLSTATE.  Its body is a
 * single-quoted literal rather than $$-quoted, so no '$' in a table name
 * can end it early.
 */
char *
schema_check_sql(const char *table)
{
	char *body = NULL, *quoted = NULL, *s = NULL;

	if (!table_name_ok(table))
		return NULL;
	if (asprintf(&body,
		"DECLARE\n"
		"	tbl text := '%s';\n"
		"	want integer := %d;\n"
		"	cols text[] := string_to_array('%s', ', ');\n"
		"%s",
		table, schema_version(), COPYENC_COLUMNS, check_body) == -1)
		return NULL;
	if ((quoted = quote_literal(body)) != NULL &&
	    asprintf(&s, "DO %s", quoted) == -1)
		s = NULL;
	free(body);
	free(quoted);
	return s;
}

char *
schema_maintain_sql(const char *table, int days_ahead, int retention_days)
{
	char *s;

	if (!table_name_ok(table))
		return NULL;
	if (asprintf(&s, "SELECT %s_maintain(%d, %d)", table, days_ahead,
		retention_days) == -1)
		return NULL;
	return s;
}

/*
 * Puts what failed and PostgreSQL's message (primary, detail, hint; not
 * the PL/pgSQL context) into err.  res may be NULL.
 */
static void
set_error(char *err, size_t errlen, const char *what, PGconn *conn,
    const PGresult *res)
{
	const char *msg = NULL, *detail = NULL, *hint = NULL, *code;
	size_t n;

	if (res != NULL) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	}
	if (msg == NULL)
		msg = PQerrorMessage(conn);
	/* Our own errors (SQL files, bootstrap) say all there is to say. */
	if (res != NULL &&
	    (code = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL &&
	    strcmp(code, SCHEMA_SQLSTATE_UNUSABLE) == 0)
		snprintf(err, errlen, "%s", msg);
	else
		snprintf(err, errlen, "%s: %s", what, msg);
	n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	if (detail != NULL && n + 1 < errlen)
		n += (size_t)snprintf(err + n, errlen - n, " (%s)", detail);
	if (hint != NULL && n + 1 < errlen)
		snprintf(err + n, errlen - n, "; %s", hint);
}

/*
 * Runs sql (with placeholders for table) and, when val is not NULL, puts
 * the integer in its first row into *val.  -1 with err set on failure.
 */
static int
run(PGconn *conn, const char *sql, const char *table, const char *what,
    int *val, char *err, size_t errlen)
{
	PGresult *res;
	ExecStatusType st;
	char *text;
	int rc = 0;

	if ((text = schema_expand(sql, table)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	res = PQexec(conn, text);
	free(text);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		set_error(err, errlen, what, conn, res);
		rc = -1;
	} else if (val != NULL) {
		if (st != PGRES_TUPLES_OK || PQntuples(res) != 1) {
			snprintf(err, errlen, "%s: no result row", what);
			rc = -1;
		} else {
			*val = atoi(PQgetvalue(res, 0, 0));
		}
	}
	PQclear(res);
	return rc;
}

/*
 * Applies file f in a transaction of its own; a migration also records
 * its version in that transaction.  Rolls back on failure.
 */
static int
apply_file(PGconn *conn, const struct schema_file *f, const char *table,
    char *err, size_t errlen)
{
	char *record = NULL;
	int rc;

	if (f->version > 0 &&
	    asprintf(&record,
		"INSERT INTO @TABLE@_schema_version (version, name, logsinkd) "
		"VALUES (%d, '%s', '%s')",
		f->version, f->name, LOGSINK_VERSION) == -1) {
		snprintf(err, errlen, "%s: out of memory", f->name);
		return -1;
	}
	rc = run(conn, "BEGIN", table, "BEGIN", NULL, err, errlen);
	if (rc == 0)
		rc = run(conn, f->sql, table, f->name, NULL, err, errlen);
	if (rc == 0 && record != NULL)
		rc = run(conn, record, table, f->name, NULL, err, errlen);
	if (rc == 0)
		rc = run(conn, "COMMIT", table, f->name, NULL, err, errlen);
	if (rc == -1)
		PQclear(PQexec(conn, "ROLLBACK"));
	free(record);
	return rc;
}

/* Checks what table name --init-db can derive its object names from. */
static int
check_table(const char *table, char *err, size_t errlen)
{
	const char *dot = strchr(table, '.'), *dollar = strchr(table, '$');

	if (!table_name_ok(table)) {
		snprintf(
		    err, errlen, "table name '%s' is not schema.name", table);
		return -1;
	}
	if (strlen(dot + 1) > SCHEMA_MAX_NAME_LEN) {
		snprintf(err, errlen,
		    "table name '%s' is too long for --init-db: at most %d "
		    "characters after the schema (names of partitions, "
		    "indexes and functions are made from it)",
		    dot + 1, SCHEMA_MAX_NAME_LEN);
		return -1;
	}
	/* The SQL files $-quote bodies: "$x$" in a name could end one. */
	if (dollar != NULL && strchr(dollar + 1, '$') != NULL) {
		snprintf(err, errlen,
		    "table name '%s': more than one '$' is not supported",
		    table);
		return -1;
	}
	return 0;
}

/*
 * Applies the migrations newer than the database's version, then the
 * always_*.sql files.  The caller holds the --init-db lock.
 */
static int
apply_all(PGconn *conn, const char *table, char *err, size_t errlen)
{
	const struct schema_file *f;
	int have = 0, latest = schema_version();

	if (run(conn, bootstrap_sql, table, "creating the version table", NULL,
		err, errlen) == -1 ||
	    run(conn,
		"SELECT coalesce(max(version), 0) FROM @TABLE@_schema_version",
		table, "reading the schema version", &have, err, errlen) == -1)
		return -1;
	if (have > latest) {
		snprintf(err, errlen,
		    "database schema version %d is newer than this logsinkd "
		    "(%d): upgrade logsinkd",
		    have, latest);
		return -1;
	}
	for (f = schema_files; f->name != NULL; f++)
		if (f->version > have &&
		    apply_file(conn, f, table, err, errlen) == -1)
			return -1;
	for (f = schema_files; f->name != NULL; f++)
		if (f->version == 0 &&
		    apply_file(conn, f, table, err, errlen) == -1)
			return -1;
	return 0;
}

int
schema_apply(PGconn *conn, const char *table, char *err, size_t errlen)
{
	char ignored[256];
	int rc;

	if (check_table(table, err, errlen) == -1)
		return -1;
	/* Quiet "already exists, skipping"; always_roles.sql lowers it. */
	if (run(conn, "SET client_min_messages TO warning", table, "SET", NULL,
		err, errlen) == -1 ||
	    run(conn, SCHEMA_LOCK_SQL, table, "waiting for other --init-db",
		NULL, err, errlen) == -1)
		return -1;
	rc = apply_all(conn, table, err, errlen);
	(void)run(conn, SCHEMA_UNLOCK_SQL, table, "unlock", NULL, ignored,
	    sizeof(ignored));
	return rc;
}
