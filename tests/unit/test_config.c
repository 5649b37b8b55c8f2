/*
 * Unit tests for config: defaults, every key with good and bad values
 * (sizes, durations, ranges, listen addresses, table names, log levels),
 * the config file reader (comments, quotes, errors naming file and line)
 * and config_finish()'s cross-key checks.  Every error path asserts the
 * words its message must contain: the key, the range, the file and line.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "logsink/config.h"
#include "logsink/framer.h"
#include "logsink/parser.h"
#include "logsink/tls.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)

/* Heap fixture: the config, a temp file and a memory stream. */
struct fx {
	struct config cfg;
	struct config cfg2; /* for reload comparisons */
	struct config cfg3;
	char path[64];    /* temp file, or "" */
	char db_path[64]; /* a second one (db-file), or "" */
	char *mem;        /* open_memstream buffer */
	size_t memlen;
	char err[512];
};

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -1;
	config_init(&x->cfg);
	config_init(&x->cfg2);
	config_init(&x->cfg3);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;

	config_free(&x->cfg);
	config_free(&x->cfg2);
	config_free(&x->cfg3);
	if (x->path[0] != '\0')
		unlink(x->path);
	if (x->db_path[0] != '\0')
		unlink(x->db_path);
	free(x->mem);
	free(x);
	return 0;
}

static void
set_ok(struct fx *x, const char *key, const char *value)
{
	x->err[0] = '\0';
	if (config_set(&x->cfg, key, value, x->err, sizeof(x->err)) != 0)
		fail_msg("config_set(%s, '%s'): %s", key, value, x->err);
}

/* Fails unless err contains every string of the NULL-terminated list. */
static void
assert_err_has(const char *err, ...)
{
	const char *s;
	va_list ap;

	va_start(ap, err);
	while ((s = va_arg(ap, const char *)) != NULL) {
		if (strstr(err, s) == NULL) {
			va_end(ap);
			fail_msg("error '%s' does not contain '%s'", err, s);
		}
	}
	va_end(ap);
}

/* config_set must fail; returns the message. */
static const char *
set_err(struct fx *x, const char *key, const char *value)
{
	x->err[0] = '\0';
	if (config_set(&x->cfg, key, value, x->err, sizeof(x->err)) != -1)
		fail_msg("config_set(%s, '%s') accepted", key, value);
	assert_true(x->err[0] != '\0');
	return x->err;
}

/* Writes text to a new temp file; its path is x->path. */
static const char *
write_file(struct fx *x, const char *text)
{
	size_t n = strlen(text);
	int fd;

	snprintf(x->path, sizeof(x->path), "/tmp/logsink-test-config.XXXXXX");
	fd = mkstemp(x->path);
	assert_true(fd >= 0);
	if (write(fd, text, n) != (ssize_t)n) {
		close(fd);
		fail_msg("write %s: %s", x->path, strerror(errno));
	}
	assert_int_equal(close(fd), 0);
	return x->path;
}

static void
test_defaults(void **state)
{
	struct fx *x = *state;
	struct config *c = &x->cfg;

	assert_int_equal(c->nlisten, 0); /* applied by config_finish() */
	assert_null(c->db);
	assert_string_equal(c->table, "public.logs");
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(c->max_line_bytes, 64 * KiB);
	assert_int_equal(c->queue_bytes, 64 * MiB);
	assert_int_equal(c->queue_resume_percent, 75);
	assert_int_equal(c->db_connections, 2);
	assert_int_equal(c->batch_lines, 5000);
	assert_int_equal(c->batch_bytes, 16 * MiB);
	assert_int_equal(c->flush_interval_ms, 100);
	assert_int_equal(c->shutdown_timeout_ms, 30000);
	assert_int_equal(c->reconnect_min_ms, 100);
	assert_int_equal(c->reconnect_max_ms, 30000);
	assert_int_equal(c->stats_interval_ms, 60000);
	assert_null(c->metrics_listen);
	assert_int_equal(c->partitions_ahead, 3);
	assert_int_equal(c->retention_days, 0);
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, CONFIG_DEFAULT_LISTEN);
	assert_string_equal(CONFIG_DEFAULT_LISTEN, "127.0.0.1:5140");
	/* Twice is harmless: no second default. */
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
	assert_int_equal(c->nlisten, 1);
}

static void
test_is_key(void **state)
{
	static const char *const keys[] = { "listen", "db", "table",
		"log-level", "max-line-bytes", "queue-bytes",
		"queue-resume-percent", "db-connections", "batch-lines",
		"batch-bytes", "flush-interval-ms", "shutdown-timeout",
		"reconnect-min-ms", "reconnect-max-ms", "stats-interval",
		"metrics-listen", "partitions-ahead", "retention-days" };
	struct fx *x = *state;
	char *out;
	size_t i, len;
	FILE *fp;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_true(config_is_key(keys[i]));
	assert_false(config_is_key("bogus"));
	assert_false(config_is_key(""));
	assert_false(config_is_key("Table"));
	assert_false(config_is_key("batch_lines"));
	/* --help lists every key. */
	fp = open_memstream(&x->mem, &x->memlen);
	assert_non_null(fp);
	config_print_keys(fp);
	assert_int_equal(fclose(fp), 0);
	out = x->mem;
	len = strlen(out);
	assert_true(len > 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char want[64];

		snprintf(want, sizeof(want), "--%s ", keys[i]);
		if (strstr(out, want) == NULL)
			fail_msg("--help lacks '%s'", want);
	}
}

/* Every key with a good value. */
static void
test_set_every_key(void **state)
{
	struct fx *x = *state;
	struct config *c = &x->cfg;

	set_ok(x, "listen", "0.0.0.0:514");
	set_ok(x, "db", "host=/tmp dbname=x");
	set_ok(x, "table", "logs.events");
	set_ok(x, "log-level", "debug");
	set_ok(x, "max-line-bytes", "1MiB");
	set_ok(x, "queue-bytes", "2g");
	set_ok(x, "queue-resume-percent", "50");
	set_ok(x, "db-connections", "8");
	set_ok(x, "batch-lines", "100");
	set_ok(x, "batch-bytes", "64KiB");
	set_ok(x, "flush-interval-ms", "250");
	set_ok(x, "shutdown-timeout", "10");
	set_ok(x, "reconnect-min-ms", "200");
	set_ok(x, "reconnect-max-ms", "30s");
	set_ok(x, "stats-interval", "0");
	set_ok(x, "metrics-listen", "127.0.0.1:9100");
	set_ok(x, "partitions-ahead", "7");
	set_ok(x, "retention-days", "30");
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, "0.0.0.0:514");
	assert_string_equal(c->db, "host=/tmp dbname=x");
	assert_string_equal(c->table, "logs.events");
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(c->max_line_bytes, MiB);
	assert_int_equal(c->queue_bytes, 2 * GiB);
	assert_int_equal(c->queue_resume_percent, 50);
	assert_int_equal(c->db_connections, 8);
	assert_int_equal(c->batch_lines, 100);
	assert_int_equal(c->batch_bytes, 64 * KiB);
	assert_int_equal(c->flush_interval_ms, 250);
	assert_int_equal(c->shutdown_timeout_ms, 10000);
	assert_int_equal(c->reconnect_min_ms, 200);
	assert_int_equal(c->reconnect_max_ms, 30000);
	assert_int_equal(c->stats_interval_ms, 0);
	assert_string_equal(c->metrics_listen, "127.0.0.1:9100");
	assert_int_equal(c->partitions_ahead, 7);
	assert_int_equal(c->retention_days, 30);
	/* A later value replaces an earlier one (listen appends). */
	set_ok(x, "db", "dbname=y");
	assert_string_equal(c->db, "dbname=y");
	set_ok(x, "metrics-listen", "[::1]:9101");
	assert_string_equal(c->metrics_listen, "[::1]:9101");
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
	assert_int_equal(c->nlisten, 1);
}

static void
test_sizes(void **state)
{
	static const struct {
		const char *v;
		size_t want;
	} ok[] = {
		{ "65536", 64 * KiB },
		{ "64KiB", 64 * KiB },
		{ "64kib", 64 * KiB },
		{ "64 KiB", 64 * KiB },
		{ "64k", 64 * KiB },
		{ "64kb", 64 * KiB },
		{ "64K", 64 * KiB },
		{ "1MiB", MiB },
		{ "1m", MiB },
		{ "1MB", MiB },
		{ "2g", 2 * GiB },
		{ "2GiB", 2 * GiB },
		{ "1t", 1024 * GiB },
		{ "1TiB", 1024 * GiB },
		{ "70000b", 70000 },
	};
	static const char *const bad[] = { "", "abc", "1.5MiB", "MiB", "64XiB",
		"-1", "+64", " 64", "64 k b", "0x10000", "64KiBs",
		"99999999999999999999", "9999999999999t" };
	struct fx *x = *state;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		set_ok(x, "queue-bytes", ok[i].v);
		assert_int_equal(x->cfg.queue_bytes, ok[i].want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_err_has(set_err(x, "queue-bytes", bad[i]), "queue-bytes",
		    "size", NULL);
	/* A failed set leaves the old value. */
	assert_int_equal(x->cfg.queue_bytes, 70000);
}

static void
test_durations(void **state)
{
	struct fx *x = *state;
	struct config *c = &x->cfg;

	/* flush-interval-ms: a bare number means milliseconds. */
	set_ok(x, "flush-interval-ms", "100");
	assert_int_equal(c->flush_interval_ms, 100);
	set_ok(x, "flush-interval-ms", "100ms");
	assert_int_equal(c->flush_interval_ms, 100);
	set_ok(x, "flush-interval-ms", "30s");
	assert_int_equal(c->flush_interval_ms, 30000);
	set_ok(x, "flush-interval-ms", "1m");
	assert_int_equal(c->flush_interval_ms, 60000);
	/* shutdown-timeout: a bare number means seconds. */
	set_ok(x, "shutdown-timeout", "100");
	assert_int_equal(c->shutdown_timeout_ms, 100000);
	set_ok(x, "shutdown-timeout", "100ms");
	assert_int_equal(c->shutdown_timeout_ms, 100);
	set_ok(x, "shutdown-timeout", "30s");
	assert_int_equal(c->shutdown_timeout_ms, 30000);
	set_ok(x, "shutdown-timeout", "2m");
	assert_int_equal(c->shutdown_timeout_ms, 120000);
	set_ok(x, "shutdown-timeout", "2min");
	assert_int_equal(c->shutdown_timeout_ms, 120000);
	set_ok(x, "shutdown-timeout", "1h");
	assert_int_equal(c->shutdown_timeout_ms, 3600000);
	set_ok(x, "shutdown-timeout", "0");
	assert_int_equal(c->shutdown_timeout_ms, 0);
	set_ok(x, "stats-interval", "5");
	assert_int_equal(c->stats_interval_ms, 5000);
	set_ok(x, "reconnect-max-ms", "2m");
	assert_int_equal(c->reconnect_max_ms, 120000);
	set_ok(x, "reconnect-min-ms", "1s");
	assert_int_equal(c->reconnect_min_ms, 1000);
	/* Not durations. */
	assert_err_has(set_err(x, "flush-interval-ms", "1.5s"),
	    "flush-interval-ms", "milliseconds", NULL);
	assert_err_has(
	    set_err(x, "flush-interval-ms", "10us"), "flush-interval-ms", NULL);
	assert_err_has(set_err(x, "shutdown-timeout", "soon"),
	    "shutdown-timeout", "seconds", NULL);
	assert_err_has(
	    set_err(x, "shutdown-timeout", "1d"), "shutdown-timeout", NULL);
	/* 2m is 120000 ms: beyond flush-interval-ms's 60000. */
	assert_err_has(set_err(x, "flush-interval-ms", "2m"),
	    "flush-interval-ms", "out of range", "1 to 60000 ms", NULL);
	assert_err_has(set_err(x, "shutdown-timeout", "2h"), "shutdown-timeout",
	    "out of range", "0 to 3600000 ms", NULL);
}

/* Each numeric key: min and max accepted, min - 1 and max + 1 not. */
static void
test_ranges(void **state)
{
	static const struct {
		const char *key, *min, *below, *max, *above, *range;
	} t[] = {
		{ "max-line-bytes", "16", "15", "1GiB", "1073741825",
		    "(16 to 1073741824 bytes)" },
		{ "queue-bytes", "64KiB", "65535", "1TiB", "1099511627777",
		    "(65536 to 1099511627776 bytes)" },
		{ "queue-resume-percent", "1", "0", "99", "100", "(1 to 99)" },
		{ "db-connections", "1", "0", "64", "65", "(1 to 64)" },
		{ "batch-lines", "1", "0", "10000000", "10000001",
		    "(1 to 10000000)" },
		{ "batch-bytes", "4096", "4095", "4GiB", "4294967297",
		    "(4096 to 4294967296 bytes)" },
		{ "flush-interval-ms", "1", "0", "60000", "60001",
		    "(1 to 60000 ms)" },
		{ "shutdown-timeout", "0", NULL, "3600", "3601",
		    "(0 to 3600000 ms)" },
		{ "reconnect-min-ms", "1", "0", "3600000", "3600001",
		    "(1 to 3600000 ms)" },
		{ "reconnect-max-ms", "1", "0", "1h", "3600001",
		    "(1 to 3600000 ms)" },
		{ "stats-interval", "0", NULL, "86400", "86401",
		    "(0 to 86400000 ms)" },
		{ "partitions-ahead", "0", NULL, "365", "366", "(0 to 365)" },
		{ "retention-days", "0", NULL, "1000000", "1000001",
		    "(0 to 1000000)" },
	};
	struct fx *x = *state;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		set_ok(x, t[i].key, t[i].min);
		set_ok(x, t[i].key, t[i].max);
		if (t[i].below != NULL)
			assert_err_has(set_err(x, t[i].key, t[i].below),
			    t[i].key, t[i].below, "out of range", t[i].range,
			    NULL);
		assert_err_has(set_err(x, t[i].key, t[i].above), t[i].key,
		    t[i].above, "out of range", t[i].range, NULL);
	}
}

/* Not numbers: the message names the key and the value. */
static void
test_not_numbers(void **state)
{
	static const char *const keys[] = { "queue-resume-percent",
		"db-connections", "batch-lines", "partitions-ahead",
		"retention-days", "flush-interval-ms", "reconnect-min-ms",
		"stats-interval", "max-line-bytes", "batch-bytes" };
	static const char *const bad[] = { "", "abc", "12abc", "0x10", " 5",
		"+5", "-5", "5.0", "five" };
	struct fx *x = *state;
	size_t i, j;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
			assert_err_has(set_err(x, keys[i], bad[j]), keys[i],
			    "is not", NULL);
	/* Integer keys take no unit. */
	assert_err_has(set_err(x, "batch-lines", "5k"), "batch-lines", "'5k'",
	    "whole number", NULL);
	assert_err_has(set_err(x, "queue-resume-percent", "75%"),
	    "queue-resume-percent", "'75%'", NULL);
}

static void
test_unknown_key(void **state)
{
	struct fx *x = *state;

	assert_err_has(
	    set_err(x, "bogus", "1"), "unknown key", "'bogus'", NULL);
	assert_err_has(set_err(x, "Table", "logs"), "'Table'", NULL);
	assert_err_has(set_err(x, "batch_lines", "5"), "'batch_lines'", NULL);
	assert_err_has(set_err(x, "", "5"), "unknown key", NULL);
}

static void
test_listen(void **state)
{
	static const char *const bad[] = { "nohost", ":80", "host:0",
		"host:70000", "[::1]80", "[::1]", "::1:80", "host:", "host:80x",
		"[]:80", "host:-1", "" };
	struct fx *x = *state;
	struct config *c = &x->cfg;
	struct listen_spec spec;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_err_has(
		    set_err(x, "listen", bad[i]), "listen", "HOST:PORT", NULL);
	assert_err_has(set_err(x, "listen", "host:70000"), "'host:70000'",
	    "1 to 65535", NULL);
	assert_int_equal(c->nlisten, 0);
	/* Good ones append, in order. */
	set_ok(x, "listen", "[::1]:5140");
	set_ok(x, "listen", "0.0.0.0:514");
	set_ok(x, "listen", "localhost:65535");
	set_ok(x, "listen", "127.0.0.1:6514 framing=octet format=raw");
	assert_int_equal(c->nlisten, 4);
	assert_string_equal(c->listen[0].text, "[::1]:5140");
	assert_string_equal(c->listen[1].text, "0.0.0.0:514");
	assert_string_equal(c->listen[2].text, "localhost:65535");
	assert_string_equal(
	    c->listen[3].text, "127.0.0.1:6514 framing=octet format=raw");
	/* config_finish() keeps them; no default added. */
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
	assert_int_equal(c->nlisten, 4);
	/* config_clear_listen() drops them all; finish adds the default. */
	config_clear_listen(c);
	assert_int_equal(c->nlisten, 0);
	assert_null(c->listen);
	config_clear_listen(c);
	set_ok(x, "listen", "127.0.0.2:1");
	assert_int_equal(c->nlisten, 1);
	config_clear_listen(c);
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, CONFIG_DEFAULT_LISTEN);
	/* Options. */
	assert_int_equal(
	    config_parse_listen("[::1]:5140", &spec, x->err, sizeof(x->err)),
	    0);
	assert_string_equal(spec.host, "::1");
	assert_string_equal(spec.port, "5140");
	assert_int_equal(spec.framing, FRAMER_AUTO);
	assert_int_equal(spec.format, PARSER_AUTO);
	assert_int_equal(config_parse_listen("h:1  framing=nul\tformat=raw ",
			     &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.framing, FRAMER_NUL);
	assert_int_equal(spec.format, PARSER_RAW);
	assert_err_has(set_err(x, "listen", "h:1 framing=crlf"), "framing",
	    "'crlf'", NULL);
	assert_err_has(
	    set_err(x, "listen", "h:1 format=json"), "format", "'json'", NULL);
	assert_err_has(set_err(x, "listen", "h:1 tls=yes"), "tls", "'yes'",
	    "on or off", NULL);
	assert_err_has(set_err(x, "listen", "h:1 tcp=on"), "unknown option",
	    "'tcp=on'", "tls=", NULL);
	assert_int_equal(config_parse_listen("h:1 tls=on framing=octet", &spec,
			     x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.tls, 1);
	assert_int_equal(spec.framing, FRAMER_OCTET);
	assert_int_equal(
	    config_parse_listen("h:1 tls=off", &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.tls, 0);
	assert_int_equal(spec.nproxy, 0);
	/* proxy=: the proxies' addresses, apart from allow=. */
	assert_int_equal(config_parse_listen("h:1 proxy=10.0.0.5,fd00::/8 "
					     "allow=192.0.2.0/24 tls=on",
			     &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.nproxy, 2);
	assert_int_equal(spec.nallow, 1);
	assert_int_equal(spec.proxy[0].bits, 32);
	assert_int_equal(spec.proxy[1].family, AF_INET6);
	assert_int_equal(spec.proxy[1].bits, 8);
	assert_err_has(set_err(x, "listen", "h:1 proxy=10.0.0.300"),
	    "proxy entry", "'10.0.0.300'", NULL);
	assert_err_has(
	    set_err(x, "listen", "h:1 proxy="), "proxy= is empty", NULL);
	/* tz=: "" (local) unless given; a zone, an offset, UTC. */
	assert_string_equal(spec.tz, "");
	assert_int_equal(config_parse_listen("h:1 tz=Europe/Berlin", &spec,
			     x->err, sizeof(x->err)),
	    0);
	assert_string_equal(spec.tz, "Europe/Berlin");
	assert_int_equal(
	    config_parse_listen("h:1 tz=+05:30", &spec, x->err, sizeof(x->err)),
	    0);
	assert_string_equal(spec.tz, "+05:30");
	assert_int_equal(
	    config_parse_listen("h:1 tz=local", &spec, x->err, sizeof(x->err)),
	    0);
	assert_string_equal(spec.tz, "");
	assert_err_has(set_err(x, "listen", "h:1 tz=Mars/Olympus"), "listen",
	    "'Mars/Olympus'", "Europe/Berlin", NULL);
	assert_err_has(
	    set_err(x, "listen", "h:1 tz=+25:00"), "tz '+25:00'", NULL);
	assert_err_has(set_err(x, "listen", "h:1 tcp=on"), "tz=", NULL);
	/* proto=udp: allow= and format= apply; framing, acks, TLS do not. */
	assert_int_equal(config_parse_listen("h:514 proto=udp format=raw "
					     "allow=10.0.0.0/8",
			     &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.proto, CONFIG_PROTO_UDP);
	assert_int_equal(spec.format, PARSER_RAW);
	assert_int_equal(spec.nallow, 1);
	assert_int_equal(
	    config_parse_listen("h:1 proto=tcp", &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.proto, CONFIG_PROTO_TCP);
	assert_err_has(set_err(x, "listen", "h:1 proto=udp ack=commit"), "h:1",
	    "ack=", "does not apply to proto=udp", NULL);
	assert_err_has(set_err(x, "listen", "h:1 ack=spooled proto=udp"),
	    "ack=", "proto=udp", NULL);
	assert_err_has(set_err(x, "listen", "h:1 proto=udp tls=on"), "tls=on",
	    "proto=udp", NULL);
	assert_err_has(set_err(x, "listen", "h:1 proto=udp framing=lf"),
	    "framing=", "proto=udp", NULL);
	/* proto=relp acknowledges after commit unless ack=spooled. */
	assert_int_equal(config_parse_listen(
			     "h:1 proto=relp", &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.proto, CONFIG_PROTO_RELP);
	assert_int_equal(spec.ack, CONFIG_ACK_COMMIT);
	assert_int_equal(config_parse_listen("h:1 ack=spooled proto=relp",
			     &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.ack, CONFIG_ACK_SPOOLED);
	assert_int_equal(
	    config_parse_listen("h:1 proto=tcp", &spec, x->err, sizeof(x->err)),
	    0);
	assert_int_equal(spec.proto, CONFIG_PROTO_TCP);
	assert_int_equal(spec.ack, CONFIG_ACK_NONE);
	assert_err_has(set_err(x, "listen", "h:1 proto=sctp"), "proto",
	    "'sctp'", "one of tcp, udp, relp", NULL);
	assert_err_has(set_err(x, "listen", "h:1 framing"), "'framing'",
	    "key=value", NULL);
	assert_int_equal(c->nlisten, 1);
	/* metrics-listen takes one address, checked the same way. */
	assert_err_has(set_err(x, "metrics-listen", "nohost"), "metrics-listen",
	    "'nohost'", NULL);
	assert_err_has(
	    set_err(x, "metrics-listen", "host:0"), "metrics-listen", NULL);
}

/* The TLS keys: values, and what config_finish() requires of them. */
static void
test_tls(void **state)
{
	struct fx *x = *state;
	struct config *c = &x->cfg;

	assert_int_equal(c->tls_verify_client, TLS_VERIFY_NONE);
	assert_int_equal(c->tls_min_version, 12);
	assert_int_equal(c->tls_handshake_timeout_ms, 10000);
	set_ok(x, "tls-verify-client", "require");
	assert_int_equal(c->tls_verify_client, TLS_VERIFY_REQUIRE);
	set_ok(x, "tls-verify-client", "optional");
	assert_int_equal(c->tls_verify_client, TLS_VERIFY_OPTIONAL);
	assert_err_has(set_err(x, "tls-verify-client", "yes"),
	    "tls-verify-client", "'yes'", "none, optional or require", NULL);
	set_ok(x, "tls-min-version", "1.3");
	assert_int_equal(c->tls_min_version, 13);
	assert_err_has(set_err(x, "tls-min-version", "1.1"), "tls-min-version",
	    "'1.1'", "1.2 or 1.3", NULL);
	set_ok(x, "tls-handshake-timeout", "2");
	assert_int_equal(c->tls_handshake_timeout_ms, 2000);
	/* rate-limit-mode: a word; the others plain numbers. */
	assert_int_equal(c->rate_limit_drop, 0);
	assert_int_equal(c->fair_share_percent, 50);
	assert_int_equal(c->rate_limit_per_sec, 0);
	set_ok(x, "rate-limit-mode", "drop");
	assert_int_equal(c->rate_limit_drop, 1);
	set_ok(x, "rate-limit-mode", "pause");
	assert_int_equal(c->rate_limit_drop, 0);
	assert_err_has(set_err(x, "rate-limit-mode", "block"),
	    "rate-limit-mode", "'block'", "pause or drop", NULL);
	assert_err_has(set_err(x, "fair-share-percent", "100"),
	    "fair-share-percent", NULL);
	/* optional needs tls-ca. */
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), -1);
	assert_err_has(x->err, "tls-verify-client = optional", "tls-ca", NULL);
	set_ok(x, "tls-verify-client", "none");
	/* A tls=on listener needs the certificate and key. */
	set_ok(x, "listen", "127.0.0.1:6514 tls=on");
	assert_int_equal(config_uses_tls(c), 1);
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), -1);
	assert_err_has(x->err, "tls=on", "tls-cert", "tls-key", NULL);
	set_ok(x, "tls-cert", "/etc/ssl/server.pem");
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), -1);
	assert_err_has(x->err, "tls-cert is set but tls-key is not", NULL);
	set_ok(x, "tls-key", "/etc/ssl/server.key");
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
	config_clear_listen(c);
	set_ok(x, "listen", "127.0.0.1:514");
	assert_int_equal(config_uses_tls(c), 0);
}

static void
test_split_hostport(void **state)
{
	static const struct {
		const char *in, *host, *port;
	} ok[] = {
		{ "127.0.0.1:5140", "127.0.0.1", "5140" },
		{ "0.0.0.0:514", "0.0.0.0", "514" },
		{ "[::1]:5140", "::1", "5140" },
		{ "[::]:1", "::", "1" },
		{ "[fe80::1%eth0]:514", "fe80::1%eth0", "514" },
		{ "localhost:65535", "localhost", "65535" },
		{ "host:0080", "host", "80" },
	};
	static const char *const bad[] = { "nohost", ":80", "host:0",
		"host:70000", "[::1]80", "[::1]", "::1:80", "host:", "host:80x",
		"[]:80", "host:-1", "", "[::1]:", "host:65536" };
	char host[64], port[8];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (config_split_hostport(
			ok[i].in, host, sizeof(host), port, sizeof(port)) != 0)
			fail_msg("'%s' rejected", ok[i].in);
		assert_string_equal(host, ok[i].host);
		assert_string_equal(port, ok[i].port);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_split_hostport(
			bad[i], host, sizeof(host), port, sizeof(port)) != -1)
			fail_msg("'%s' accepted", bad[i]);
	/* The host must fit hostlen with its NUL. */
	assert_int_equal(
	    config_split_hostport("abcd:80", host, 5, port, sizeof(port)), 0);
	assert_string_equal(host, "abcd");
	assert_int_equal(
	    config_split_hostport("abcde:80", host, 5, port, sizeof(port)), -1);
}

static void
test_table(void **state)
{
	static const struct {
		const char *in, *want;
	} ok[] = {
		{ "logs", "public.logs" },
		{ "a.b", "a.b" },
		{ "_x", "public._x" },
		{ "log_2026", "public.log_2026" },
		{ "s.t$1", "s.t$1" },
		/* 63 characters is the limit. */
		{ "a23456789012345678901234567890123456789012345678901234567890"
		  "123",
		    "public.a2345678901234567890123456789012345678901234567890"
		    "1234567890123" },
	};
	static const char *const bad[] = { "1x", "a.b.c", "x;drop",
		"x; DROP TABLE y", "", ".logs", "logs.", "a b", "\"logs\"",
		"$x", "a.1b", "a-b",
		("a234567890123456789012345678901234567890123456789012345678901"
		 "234") };
	struct fx *x = *state;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		set_ok(x, "table", ok[i].in);
		assert_string_equal(x->cfg.table, ok[i].want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_err_has(set_err(x, "table", bad[i]), "table", NULL);
	assert_err_has(set_err(x, "table", "x;drop"), "'x;drop'", NULL);
	/* The last good value stays. */
	assert_string_equal(x->cfg.table, ok[5].want);
}

static void
test_log_level(void **state)
{
	static const struct {
		const char *in;
		int want;
	} ok[] = {
		{ "debug", LOG_DEBUG },
		{ "info", LOG_INFO },
		{ "notice", LOG_NOTICE },
		{ "warning", LOG_WARNING },
		{ "warn", LOG_WARNING },
		{ "error", LOG_ERR },
		{ "err", LOG_ERR },
		{ "INFO", LOG_INFO },
		{ "Debug", LOG_DEBUG },
	};
	static const char *const bad[] = { "emerg", "alert", "crit", "verbose",
		"", "7", "trace" };
	struct fx *x = *state;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		set_ok(x, "log-level", ok[i].in);
		assert_int_equal(x->cfg.log_level, ok[i].want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_err_has(
		    set_err(x, "log-level", bad[i]), "log-level", NULL);
	assert_err_has(set_err(x, "log-level", "verbose"), "'verbose'", NULL);
	assert_int_equal(x->cfg.log_level, LOG_DEBUG);
}

static void
test_load_file(void **state)
{
	static const char text[] =
	    "# logsinkd configuration\n"
	    "\n"
	    "   # an indented comment\n"
	    "listen = 127.0.0.1:5140\n"
	    "listen=[::1]:5141 framing=nul   # a second listener\n"
	    "db = host=/tmp dbname=x\n"
	    "table = \"logs\"\n"
	    "\tlog-level\t=\twarning\t\n"
	    "max-line-bytes = 1 MiB # with a space before the unit\n"
	    "batch-lines = 100 # trailing comment\n"
	    "metrics-listen = \"127.0.0.1:9100\"\n"
	    "shutdown-timeout = 5\r\n" /* CRLF line */
	    "flush-interval-ms = 50\n"
	    "   \n"
	    "reconnect-max-ms = 1m"; /* no final LF */
	struct fx *x = *state;
	struct config *c = &x->cfg;

	if (config_load_file(c, write_file(x, text), x->err, sizeof(x->err)) !=
	    0)
		fail_msg("%s", x->err);
	assert_int_equal(c->nlisten, 2);
	assert_string_equal(c->listen[0].text, "127.0.0.1:5140");
	assert_string_equal(c->listen[1].text, "[::1]:5141 framing=nul");
	assert_string_equal(c->db, "host=/tmp dbname=x");
	assert_string_equal(c->table, "public.logs");
	assert_int_equal(c->log_level, LOG_WARNING);
	assert_int_equal(c->max_line_bytes, MiB);
	assert_int_equal(c->batch_lines, 100);
	assert_string_equal(c->metrics_listen, "127.0.0.1:9100");
	assert_int_equal(c->shutdown_timeout_ms, 5000);
	assert_int_equal(c->flush_interval_ms, 50);
	assert_int_equal(c->reconnect_max_ms, 60000);
	/* Untouched keys keep their defaults. */
	assert_int_equal(c->batch_bytes, 16 * MiB);
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
}

/* A quoted value keeps a " #" and surrounding spaces. */
static void
test_load_file_quotes(void **state)
{
	static const char text[] = "db = \"host=/tmp # not a comment \"\n"
				   "table = \"\"\n";
	struct fx *x = *state;

	assert_int_equal(config_load_file(&x->cfg, write_file(x, text), x->err,
			     sizeof(x->err)),
	    -1);
	assert_string_equal(x->cfg.db, "host=/tmp # not a comment ");
	/* table = "" is an empty (invalid) name, on line 2. */
	assert_err_has(x->err, x->path, ":2:", "table", NULL);
}

/*
 * A trailing comment after a quoted value: the comment is only looked
 * for when the value does not start with a quote, so the quotes and the
 * comment become part of the value ('"logs" # main table') and the line
 * is rejected.
 */
static void
test_load_file_quoted_then_comment(void **state)
{
	static const char text[] = "table = \"logs\" # main table\n";
	struct fx *x = *state;

	if (config_load_file(
		&x->cfg, write_file(x, text), x->err, sizeof(x->err)) != 0)
		fail_msg("%s", x->err);
	assert_string_equal(x->cfg.table, "public.logs");
}

static void
test_load_file_unknown_key(void **state)
{
	static const char text[] = "# comment\n"
				   "table = logs\n"
				   "bogus-key = 1\n"
				   "batch-lines = 7\n";
	struct fx *x = *state;

	assert_int_equal(config_load_file(&x->cfg, write_file(x, text), x->err,
			     sizeof(x->err)),
	    -1);
	assert_err_has(x->err, x->path, ":3:", "bogus-key", NULL);
	/* Reading stopped there. */
	assert_int_equal(x->cfg.batch_lines, 5000);
}

static void
test_load_file_errors(void **state)
{
	static const struct {
		const char *text, *line, *word;
	} t[] = {
		{ "table = logs\nlisten 127.0.0.1:5140\n",
		    ":2:", "key = value" },
		{ "\n\n\n# c\nbatch-lines = 0\n", ":5:", "out of range" },
		{ "max-line-bytes = 1.5MiB\n", ":1:", "max-line-bytes" },
		{ "listen = host:0\n", ":1:", "listen" },
		{ "table = x;drop\n", ":1:", "x;drop" },
		{ "log-level = loud\n", ":1:", "log-level" },
		{ "= 5\n", ":1:", "unknown key" },
	};
	struct fx *x = *state;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		config_free(&x->cfg);
		config_init(&x->cfg);
		if (x->path[0] != '\0')
			unlink(x->path);
		assert_int_equal(
		    config_load_file(&x->cfg, write_file(x, t[i].text), x->err,
			sizeof(x->err)),
		    -1);
		assert_err_has(x->err, x->path, t[i].line, t[i].word, NULL);
	}
}

static void
test_load_file_missing(void **state)
{
	struct fx *x = *state;

	assert_int_equal(config_load_file(&x->cfg, "/nonexistent/logsinkd.conf",
			     x->err, sizeof(x->err)),
	    -1);
	assert_err_has(x->err, "/nonexistent/logsinkd.conf",
	    "No such file or directory", NULL);
	/* A directory cannot be read as a file either. */
	assert_int_equal(
	    config_load_file(&x->cfg, "/tmp", x->err, sizeof(x->err)), -1);
	assert_err_has(x->err, "/tmp", NULL);
}

static void
test_finish_errors(void **state)
{
	struct fx *x = *state;
	struct config *c = &x->cfg;

	set_ok(x, "reconnect-min-ms", "5s");
	set_ok(x, "reconnect-max-ms", "1s");
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), -1);
	assert_err_has(
	    x->err, "reconnect-min-ms (5000)", "reconnect-max-ms (1000)", NULL);
	set_ok(x, "reconnect-max-ms", "5s"); /* equal is fine */
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
	/* One max-line-bytes line, encoded (3x) plus 4096, must fit. */
	set_ok(x, "max-line-bytes", "1MiB");
	set_ok(x, "queue-bytes", "1MiB");
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), -1);
	assert_err_has(x->err, "queue-bytes (1048576)",
	    "max-line-bytes (1048576)", "3149824", NULL);
	set_ok(x, "queue-bytes", "3149823");
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), -1);
	set_ok(x, "queue-bytes", "3149824");
	assert_int_equal(config_finish(c, x->err, sizeof(x->err)), 0);
}

/*
 * --dump-config prints the settings "as a config file": loading that
 * output must give the same settings.  With metrics-listen unset it
 * prints "metrics-listen = ", which the reader rejects.
 */
static void
test_dump_reloads(void **state)
{
	struct fx *x = *state;
	FILE *fp;

	set_ok(x, "listen", "0.0.0.0:514");
	set_ok(x, "listen", "[::1]:5140 framing=octet");
	set_ok(x, "batch-lines", "123");
	set_ok(x, "shutdown-timeout", "7");
	set_ok(x, "stats-interval", "90s");
	assert_int_equal(config_finish(&x->cfg, x->err, sizeof(x->err)), 0);
	fp = open_memstream(&x->mem, &x->memlen);
	assert_non_null(fp);
	config_dump(&x->cfg, fp);
	assert_int_equal(fclose(fp), 0);
	if (config_load_file(
		&x->cfg2, write_file(x, x->mem), x->err, sizeof(x->err)) != 0)
		fail_msg("reloading the dump: %s", x->err);
	assert_int_equal(x->cfg2.nlisten, 2);
	assert_string_equal(x->cfg2.listen[1].text, "[::1]:5140 framing=octet");
	assert_int_equal(x->cfg2.batch_lines, 123);
	assert_int_equal(x->cfg2.shutdown_timeout_ms, 7000);
	assert_int_equal(x->cfg2.stats_interval_ms, 90000);
	assert_null(x->cfg2.metrics_listen);
}

/*
 * A value other than the default for every key, valid together (for
 * config_finish()).  A key missing here fails test_every_key_has_value:
 * each new key gets its reload, dump and diff tests by being added.
 * db-file's value is replaced by a file the fixture makes.
 */
static const struct {
	const char *key, *value;
} other_values[] = {
	{ "listen",
	    "[::1]:5141 framing=nul ack=spooled allow=10.0.0.0/8 "
	    "tls=on" },
	{ "db", "host=/tmp dbname=x password=secret" },
	{ "db-file", NULL },
	{ "table", "logs2.events" },
	{ "log-level", "debug" },
	{ "max-line-bytes", "1MiB" },
	{ "queue-bytes", "128MiB" },
	{ "queue-resume-percent", "50" },
	{ "db-connections", "4" },
	{ "batch-lines", "77" },
	{ "batch-bytes", "1MiB" },
	{ "flush-interval-ms", "250" },
	{ "shutdown-timeout", "7" },
	{ "reconnect-min-ms", "200" },
	{ "reconnect-max-ms", "5s" },
	{ "stats-interval", "90s" },
	{ "db-timeout", "45s" },
	{ "maintenance-timeout", "2h" },
	{ "metrics-listen", "127.0.0.1:9100" },
	{ "partitions-ahead", "5" },
	{ "retention-days", "30" },
	{ "max-connections", "100" },
	{ "max-connections-per-ip", "0" },
	{ "idle-timeout", "5s" },
	{ "partial-line-timeout", "0" },
	{ "framing-detect-timeout", "2s" },
	{ "user", "logsink" },
	{ "spool-dir", "/var/lib/logsinkd/spool #2 " }, /* dumped quoted */
	{ "spool-max-bytes", "2GiB" },
	{ "spool-segment-bytes", "1MiB" },
	{ "spool-sync-interval-ms", "50" },
	{ "tls-cert", "/etc/tls/server.pem" },
	{ "tls-key", "/etc/tls/server.key" },
	{ "tls-ca", "/etc/tls/ca.pem" },
	{ "tls-verify-client", "require" },
	{ "tls-min-version", "1.3" },
	{ "tls-handshake-timeout", "3s" },
	{ "tls-max-handshakes", "10" },
	{ "proxy-header-timeout", "3s" },
	{ "proxy-max-header-bytes", "2KiB" },
	{ "forward-max-message-bytes", "16MiB" },
	{ "forward-max-entries", "5000" },
	{ "udp-rcvbuf", "16MiB" },
	{ "http-max-header-bytes", "32KiB" },
	{ "http-max-headers", "50" },
	{ "http-max-body-bytes", "1MiB" },
	{ "http-max-depth", "16" },
	{ "http-header-timeout", "5s" },
	{ "http-body-timeout", "20s" },
	{ "http-keepalive-timeout", "2min" },
	{ "http-answer-timeout", "90s" },
	{ "fair-share-percent", "0" },
	{ "rate-limit-lines-per-sec", "1000" },
	{ "rate-limit-burst", "5000" },
	{ "rate-limit-mode", "drop" },
	{ "rate-limit-sources", "1024" },
};

#define NOTHER (sizeof(other_values) / sizeof(other_values[0]))

/* The other value of key (db-file: a file holding a conninfo). */
static const char *
other_value(struct fx *x, const char *key)
{
	size_t i;
	int fd;

	for (i = 0; i < NOTHER; i++)
		if (strcmp(other_values[i].key, key) == 0)
			break;
	if (i == NOTHER)
		fail_msg("key %s has no entry in other_values[]", key);
	if (other_values[i].value != NULL)
		return other_values[i].value;
	if (x->db_path[0] == '\0') {
		snprintf(x->db_path, sizeof(x->db_path),
		    "/tmp/logsink-test-dbfile.XXXXXX");
		fd = mkstemp(x->db_path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "host=/tmp dbname=y\n", 19), 19);
		assert_int_equal(close(fd), 0);
	}
	return x->db_path;
}

static void
set_in(struct fx *x, struct config *c, const char *key, const char *value)
{
	if (config_set(c, key, value, x->err, sizeof(x->err)) != 0)
		fail_msg("config_set(%s, '%s'): %s", key, value, x->err);
}

/*
 * Every key of the table has other_values[] entry, a unique name, and a
 * reload column holding exactly one enum config_reload value; --help
 * says which.
 */
static void
test_every_key_has_reload(void **state)
{
	struct fx *x = *state;
	size_t i, j, napplied = 0;
	char want[128];
	const char *p;
	unsigned r;
	FILE *fp;

	assert_int_equal(config_nkeys(), NOTHER);
	assert_true(config_nkeys() <= CONFIG_MAX_KEYS);
	fp = open_memstream(&x->mem, &x->memlen);
	assert_non_null(fp);
	config_print_keys(fp);
	assert_int_equal(fclose(fp), 0);
	for (i = 0; i < config_nkeys(); i++) {
		const char *name = config_key_name(i);

		assert_true(config_is_key(name));
		(void)other_value(x, name);
		for (j = 0; j < i; j++)
			assert_string_not_equal(config_key_name(j), name);
		r = (unsigned)config_key_reload(i);
		if (r == 0 || (r & (r - 1)) != 0 || r > CONFIG_APPLY_TLS)
			fail_msg("%s: reload column %#x is not one "
				 "enum config_reload value",
			    name, r);
		napplied += r != CONFIG_RESTART;
		snprintf(want, sizeof(want), "--%s ", name);
		assert_non_null(strstr(x->mem, want));
	}
	/* --help: one "SIGHUP applies it" per applied key. */
	for (p = x->mem, j = 0; (p = strstr(p, "SIGHUP applies it")) != NULL;
	     p++)
		j++;
	assert_int_equal(j, napplied);
}

/* Index of a key by name. */
static size_t
key_index(const char *name)
{
	size_t i;

	for (i = 0; i < config_nkeys(); i++)
		if (strcmp(config_key_name(i), name) == 0)
			return i;
	fail_msg("no key %s", name);
	return 0;
}

/* Which keys SIGHUP applies: the ones the daemon has setters for. */
static void
test_reload_classes(void **state)
{
	static const char *const restart[] = { "listen", "db", "db-file",
		"table", "max-line-bytes", "queue-bytes",
		"queue-resume-percent", "db-connections", "metrics-listen",
		"user", "spool-dir", "spool-max-bytes", "spool-segment-bytes",
		"spool-sync-interval-ms", "udp-rcvbuf", "rate-limit-sources" };
	size_t i, j, n = sizeof(restart) / sizeof(restart[0]);
	bool is_restart;

	(void)state;
	for (i = 0; i < config_nkeys(); i++) {
		is_restart = false;
		for (j = 0; j < n; j++)
			is_restart |=
			    strcmp(restart[j], config_key_name(i)) == 0;
		if (is_restart != (config_key_reload(i) == CONFIG_RESTART))
			fail_msg("%s: %s", config_key_name(i),
			    is_restart ? "should need a restart"
				       : "should be applied by SIGHUP");
	}
	assert_int_equal(config_key_reload(key_index("idle-timeout")),
	    CONFIG_APPLY_LISTENERS);
	assert_int_equal(
	    config_key_reload(key_index("tls-cert")), CONFIG_APPLY_TLS);
	assert_int_equal(config_key_reload(key_index("tls-max-handshakes")),
	    CONFIG_APPLY_LISTENERS);
}

/* Sets every key of c to its other value (db left out when db-file is). */
static void
set_all_other(struct fx *x, struct config *c, bool with_db)
{
	size_t i;

	for (i = 0; i < config_nkeys(); i++) {
		const char *name = config_key_name(i);

		if (strcmp(name, "db") == 0 && !with_db)
			continue;
		set_in(x, c, name, other_value(x, name));
	}
	set_in(x, c, "listen", "0.0.0.0:514");
}

/*
 * Dump, then load the dump: every key has the same value (db comes from
 * db-file both times; its value is never printed).
 */
static void
test_dump_round_trips_every_key(void **state)
{
	struct fx *x = *state;
	size_t keys[CONFIG_MAX_KEYS];
	FILE *fp;

	set_all_other(x, &x->cfg, false);
	if (config_finish(&x->cfg, x->err, sizeof(x->err)) != 0)
		fail_msg("config_finish: %s", x->err);
	/* Every key differs from its default. */
	assert_int_equal(config_finish(&x->cfg3, x->err, sizeof(x->err)), 0);
	assert_int_equal(config_diff(&x->cfg, &x->cfg3, keys, CONFIG_MAX_KEYS),
	    config_nkeys());
	fp = open_memstream(&x->mem, &x->memlen);
	assert_non_null(fp);
	config_dump(&x->cfg, fp);
	assert_int_equal(fclose(fp), 0);
	assert_null(strstr(x->mem, "dbname")); /* db masked */
	assert_non_null(strstr(x->mem, "# db = (set, not shown"));
	assert_non_null(
	    strstr(x->mem, "spool-dir = \"/var/lib/logsinkd/spool #2 \"\n"));
	if (config_load_file(
		&x->cfg2, write_file(x, x->mem), x->err, sizeof(x->err)) != 0)
		fail_msg("loading the dump: %s\n%s", x->err, x->mem);
	if (config_finish(&x->cfg2, x->err, sizeof(x->err)) != 0)
		fail_msg("config_finish of the dump: %s", x->err);
	if (config_diff(&x->cfg, &x->cfg2, keys, CONFIG_MAX_KEYS) != 0)
		fail_msg("%s differs after dump and load:\n%s",
		    config_key_name(keys[0]), x->mem);
	assert_int_equal(x->cfg2.nlisten, 2);
	assert_int_equal(x->cfg2.listen[0].ack, CONFIG_ACK_SPOOLED);
	assert_int_equal(x->cfg2.listen[0].tls, 1);
	assert_int_equal(x->cfg2.listen[0].nallow, 1);
	assert_string_equal(x->cfg2.listen[1].host, "0.0.0.0");
}

/*
 * config_diff reports exactly the key that changed, one key at a time;
 * config_key_swap moves the value (and its memory) over.
 */
static void
test_diff_names_exactly_the_changed_keys(void **state)
{
	struct fx *x = *state;
	size_t keys[CONFIG_MAX_KEYS], i, n;

	assert_int_equal(
	    config_diff(&x->cfg, &x->cfg2, keys, CONFIG_MAX_KEYS), 0);
	for (i = 0; i < config_nkeys(); i++) {
		const char *name = config_key_name(i);

		set_in(x, &x->cfg2, name, other_value(x, name));
		n = config_diff(&x->cfg, &x->cfg2, keys, CONFIG_MAX_KEYS);
		if (n != 1 || keys[0] != i)
			fail_msg("changing %s: %zu keys differ, the first %s",
			    name, n, n > 0 ? config_key_name(keys[0]) : "-");
		config_key_swap(&x->cfg, &x->cfg2, i);
		/* cfg has the new value, cfg2 the old one: swap back and
		 * the configs differ in the same key again. */
		assert_int_equal(
		    config_diff(&x->cfg, &x->cfg2, keys, CONFIG_MAX_KEYS), 1);
		config_key_swap(&x->cfg, &x->cfg2, i);
		/* Settle: both take the new value. */
		set_in(x, &x->cfg, name, other_value(x, name));
		n = config_diff(&x->cfg, &x->cfg2, keys, CONFIG_MAX_KEYS);
		if (n != 0)
			fail_msg("after setting %s in both: %s differs", name,
			    config_key_name(keys[0]));
	}
	/* Listen: a second entry, the same entries in another order. */
	set_in(x, &x->cfg2, "listen", "127.0.0.1:1");
	assert_int_equal(config_diff(&x->cfg, &x->cfg2, keys, 1), 1);
	assert_string_equal(config_key_name(keys[0]), "listen");
	/* max bounds what is reported. */
	set_in(x, &x->cfg2, "batch-lines", "5");
	assert_int_equal(config_diff(&x->cfg, &x->cfg2, keys, 1), 1);
	assert_int_equal(
	    config_diff(&x->cfg, &x->cfg2, keys, CONFIG_MAX_KEYS), 2);
}

/* Values as the reload log shows them. */
static void
test_key_values_for_the_log(void **state)
{
	struct fx *x = *state;
	char v[256];

	config_key_value(&x->cfg, key_index("db"), v, sizeof(v));
	assert_string_equal(v, "unset");
	set_ok(x, "db", "host=h password=secret");
	config_key_value(&x->cfg, key_index("db"), v, sizeof(v));
	assert_string_equal(v, "(set, not shown)");
	config_key_value(&x->cfg, key_index("idle-timeout"), v, sizeof(v));
	assert_string_equal(v, "3600000ms");
	config_key_value(&x->cfg, key_index("db-connections"), v, sizeof(v));
	assert_string_equal(v, "2");
	config_key_value(&x->cfg, key_index("flush-interval-ms"), v, sizeof(v));
	assert_string_equal(v, "100");
	config_key_value(&x->cfg, key_index("queue-bytes"), v, sizeof(v));
	assert_string_equal(v, "67108864");
	config_key_value(&x->cfg, key_index("tls-min-version"), v, sizeof(v));
	assert_string_equal(v, "1.2");
	config_key_value(&x->cfg, key_index("listen"), v, sizeof(v));
	assert_string_equal(v, "unset");
	set_ok(x, "listen", "127.0.0.1:1");
	set_ok(x, "listen", "[::1]:2 framing=nul");
	config_key_value(&x->cfg, key_index("listen"), v, sizeof(v));
	assert_string_equal(v, "\"127.0.0.1:1\", \"[::1]:2 framing=nul\"");
	/* Truncated, still terminated. */
	config_key_value(&x->cfg, key_index("listen"), v, 8);
	assert_string_equal(v, "\"127.0.");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_is_key, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_set_every_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_durations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_split_hostport, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_log_level, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_load_file, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_load_file_quotes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_load_file_quoted_then_comment, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_load_file_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_load_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_load_file_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_finish_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_dump_reloads, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_every_key_has_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reload_classes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_dump_round_trips_every_key, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_diff_names_exactly_the_changed_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_values_for_the_log, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
