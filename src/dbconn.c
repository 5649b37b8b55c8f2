/*
 * dbconn: libpq connection parameters (see include/logsink/dbconn.h).
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "logsink/dbconn.h"

const char *
dbconn_trim(char *out, size_t outlen, const char *msg)
{
	size_t n;
	char *p;

	snprintf(out, outlen, "%s", msg != NULL ? msg : "");
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	for (p = out; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	return out;
}

/* The options shown in log lines; secrets (password, sslkey...) never. */
static void
describe(struct dbconn *dc, PQconninfoOption *opts)
{
	static const char *const shown[] = { "host", "hostaddr", "port",
		"dbname", "user" };
	size_t i, len = 0;
	PQconninfoOption *o;
	int n;

	dc->target[0] = '\0';
	for (i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
		for (o = opts; o->keyword != NULL; o++) {
			if (strcmp(o->keyword, shown[i]) != 0 ||
			    o->val == NULL || o->val[0] == '\0')
				continue;
			n = snprintf(dc->target + len, sizeof(dc->target) - len,
			    "%s%s=%s", len ? " " : "", o->keyword, o->val);
			if (n < 0 || (size_t)n >= sizeof(dc->target) - len)
				return;
			len += (size_t)n;
		}
	}
	if (len == 0)
		snprintf(dc->target, sizeof(dc->target), "libpq defaults");
}

int
dbconn_init(struct dbconn *dc, const char *conninfo, char *err, size_t errlen)
{
	PQconninfoOption *opts;
	char *perr = NULL;
	char msg[256];
	int n = 0;

	memset(dc, 0, sizeof(*dc));
	opts = conninfo != NULL ? PQconninfoParse(conninfo, &perr)
				: PQconndefaults();
	if (opts == NULL) {
		snprintf(err, errlen,
		    "db: not a valid libpq connection string or URI: %s",
		    perr != NULL ? dbconn_trim(msg, sizeof(msg), perr)
				 : "out of memory");
		PQfreemem(perr);
		return -1;
	}
	describe(dc, opts);
	PQconninfoFree(opts);
	/* Entries after "dbname" override what the conninfo string says;
	 * those before it are defaults it may override. */
	dc->keys[n] = "application_name", dc->vals[n++] = "logsinkd";
	if (conninfo != NULL)
		dc->keys[n] = "dbname", dc->vals[n++] = conninfo;
	dc->keys[n] = "client_encoding", dc->vals[n++] = "UTF8";
	dc->keys[n] = NULL, dc->vals[n] = NULL;
	return 0;
}

void
dbconn_set_timeouts(struct dbconn *dc, int timeout_ms)
{
	static const char *const keepalive[][2] = { { "keepalives", "1" },
		{ "keepalives_idle", "15" }, { "keepalives_interval", "5" },
		{ "keepalives_count", "3" } };
	size_t i, n = 0, k;

	while (dc->keys[n] != NULL)
		n++;
	snprintf(dc->user_timeout, sizeof(dc->user_timeout), "%d", timeout_ms);
	/* Shift the existing entries up: defaults go first. */
	k = sizeof(keepalive) / sizeof(keepalive[0]) + 1;
	memmove(dc->keys + k, dc->keys, (n + 1) * sizeof(dc->keys[0]));
	memmove(dc->vals + k, dc->vals, (n + 1) * sizeof(dc->vals[0]));
	for (i = 0; i + 1 < k; i++) {
		dc->keys[i] = keepalive[i][0];
		dc->vals[i] = keepalive[i][1];
	}
	dc->keys[i] = "tcp_user_timeout";
	dc->vals[i] = dc->user_timeout;
}
