/*
 * schema: --init-db and the table-derived statements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "logsink/copyenc.h"
#include "logsink/schema.h"

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

char *
schema_copy_sql(const char *table)
{
	char *s;

	if (asprintf(&s, "COPY %s (%s) FROM STDIN", table, COPYENC_COLUMNS) ==
	    -1)
		return NULL;
	return s;
}

char *
schema_check_sql(const char *table)
{
	char *s;

	if (asprintf(&s, "SELECT %s FROM %s LIMIT 0", COPYENC_COLUMNS,
		table) == -1)
		return NULL;
	return s;
}

static int
exec_ok(PGconn *conn, const char *sql, const char *what, char *err,
    size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(err, errlen, "%s: %s", what, PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

int
schema_apply(PGconn *conn, const char *table, char *err, size_t errlen)
{
	const struct schema_file *f;
	char *sql;
	int rc;

	if (exec_ok(conn, "SET client_min_messages TO warning", "SET", err,
		errlen) == -1 ||
	    exec_ok(conn, "BEGIN", "BEGIN", err, errlen) == -1)
		return -1;
	for (f = schema_files; f->name != NULL; f++) {
		if ((sql = schema_expand(f->sql, table)) == NULL) {
			snprintf(err, errlen, "%s: out of memory", f->name);
			return -1;
		}
		rc = exec_ok(conn, sql, f->name, err, errlen);
		free(sql);
		if (rc == -1)
			return -1;
	}
	return exec_ok(conn, "COMMIT", "COMMIT", err, errlen);
}
