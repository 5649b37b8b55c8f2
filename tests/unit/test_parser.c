/*
 * Unit tests for the parser: tables of real-world and malformed messages
 * per format with the expected columns, plus generated inputs (huge
 * structured data, deep JSON nesting), time zone handling and every
 * prefix of every sample (truncation; run under ASan to catch overreads).
 *
 * Each input is copied to a heap block of exactly its length, so reading
 * one byte past the message is an ASan error.
 *
 * LOGSINK_WRITE_CORPUS=dir ./test_parser writes every sample to
 * dir/parse-NNN (the libFuzzer seed corpus) and exits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "logsink/buf.h"
#include "logsink/parser.h"
#include "logsink/record.h"
#include "logsink/tzrule.h"
#include "../../src/parser_int.h"

#define RECV_DEFAULT "2026-11-21T12:00:00Z"

/* One sample and the columns it must produce.  NULL strings are SQL NULL. */
struct pcase {
	const char *name;
	const char *in;
	size_t inlen;
	enum parser_format fmt;
	const char *recv; /* received time (UTC); NULL: RECV_DEFAULT */
	int fac, sev;
	const char *host, *app, *procid, *msgid;
	const char *time; /* expected event time (UTC), NULL: none */
	const char *msg;  /* expected message; never NULL */
	size_t msglen;    /* 0: strlen(msg) */
	const char *fields;
	size_t fieldslen; /* 0: strlen(fields) */
};

#define IN(s)  .in = (s), .inlen = sizeof(s) - 1
#define NOPRI  .fac = -1, .sev = -1
#define PRI(p) .fac = (p) / 8, .sev = (p) % 8

/* RFC 5424, from logger(1), RFC 5424 section 6.5 and broken variants. */
static const struct pcase rfc5424_cases[] = {
	{ "logger --rfc5424",
	    IN("<13>1 2026-11-21T10:00:00.123456+01:00 myhost alice - - "
	       "[timeQuality tzKnown=\"1\" isSynced=\"1\" "
	       "syncAccuracy=\"63500\"] hello world"),
	    PRI(13), .host = "myhost", .app = "alice",
	    .time = "2026-11-21T09:00:00.123456Z", .msg = "hello world",
	    .fields = "{\"timeQuality\": {\"tzKnown\": \"1\", \"isSynced\": "
		      "\"1\", \"syncAccuracy\": \"63500\"}}" },
	{ "logger --rfc5424 --sd-id zoo@123 --sd-param",
	    IN("<13>1 2026-11-21T10:00:00.123456+01:00 myhost alice 4242 - "
	       "[timeQuality tzKnown=\"1\" isSynced=\"0\"][zoo@123 "
	       "tiger=\"hungry\" zebra=\"running\"] the zoo"),
	    PRI(13), .host = "myhost", .app = "alice", .procid = "4242",
	    .time = "2026-11-21T09:00:00.123456Z", .msg = "the zoo",
	    .fields = "{\"timeQuality\": {\"tzKnown\": \"1\", \"isSynced\": "
		      "\"0\"}, \"zoo@123\": {\"tiger\": \"hungry\", "
		      "\"zebra\": \"running\"}}" },
	{ "RFC 5424 example 1 (BOM)",
	    IN("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - "
	       "ID47 - \xef\xbb\xbf'su root' failed for lonvick on "
	       "/dev/pts/8"),
	    PRI(34), .host = "mymachine.example.com", .app = "su",
	    .msgid = "ID47", .time = "2003-10-11T22:14:15.003Z",
	    .msg = "'su root' failed for lonvick on /dev/pts/8" },
	{ "RFC 5424 example 2 (offset, procid)",
	    IN("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc "
	       "8710 - - %% It's time to make the do-nothing."),
	    PRI(165), .host = "192.0.2.1", .app = "myproc", .procid = "8710",
	    .time = "2003-08-24T12:14:15.000003Z",
	    .msg = "%% It's time to make the do-nothing." },
	{ "RFC 5424 example 3",
	    IN("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com "
	       "evntslog - ID47 [exampleSDID@32473 iut=\"3\" "
	       "eventSource=\"Application\" eventID=\"1011\"] "
	       "\xef\xbb\xbf"
	       "An application event log entry..."),
	    PRI(165), .host = "mymachine.example.com", .app = "evntslog",
	    .msgid = "ID47", .time = "2003-10-11T22:14:15.003Z",
	    .msg = "An application event log entry...",
	    .fields = "{\"exampleSDID@32473\": {\"iut\": \"3\", "
		      "\"eventSource\": \"Application\", \"eventID\": "
		      "\"1011\"}}" },
	{ "RFC 5424 example 4 (no MSG)",
	    IN("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com "
	       "evntslog - ID47 [exampleSDID@32473 iut=\"3\"]"
	       "[examplePriority@32473 class=\"high\"]"),
	    PRI(165), .host = "mymachine.example.com", .app = "evntslog",
	    .msgid = "ID47", .time = "2003-10-11T22:14:15.003Z", .msg = "",
	    .fields = "{\"exampleSDID@32473\": {\"iut\": \"3\"}, "
		      "\"examplePriority@32473\": {\"class\": \"high\"}}" },
	{ "all NILVALUE", IN("<0>1 - - - - - -"), PRI(0), .msg = "" },
	{ "all NILVALUE, empty MSG", IN("<191>1 - - - - - - "), PRI(191),
	    .msg = "" },
	{ "SD escapes",
	    IN("<13>1 - h a - - [x@1 a=\"q\\\"uo\\\\te\\]x\" "
	       "b=\"back\\slash\" c=\"\"] m"),
	    PRI(13), .host = "h", .app = "a", .msg = "m",
	    .fields = "{\"x@1\": {\"a\": \"q\\\"uo\\\\te]x\", \"b\": "
		      "\"back\\\\slash\", \"c\": \"\"}}" },
	{ "SD control chars and NUL",
	    IN("<13>1 - h a - - [x v=\"t\tn\nz\0e\x1b\"] m"), PRI(13),
	    .host = "h", .app = "a", .msg = "m",
	    .fields = "{\"x\": {\"v\": \"t\\tn\\nz\\ufffde\\u001b\"}}" },
	{ "SD CR and DEL", IN("<13>1 - h a - - [x v=\"a\rb\x7f\"] m"), PRI(13),
	    .host = "h", .app = "a", .msg = "m",
	    .fields = "{\"x\": {\"v\": \"a\\rb\x7f\"}}" },
	{ "SD unescaped ] in value, backslash in name",
	    IN("<13>1 - h a - - [a\\b v=\"x]y\"] m"), PRI(13), .host = "h",
	    .app = "a", .msg = "m",
	    .fields = "{\"a\\\\b\": {\"v\": \"x]y\"}}" },
	{ "SD duplicates kept in order",
	    IN("<13>1 - h a - - [a x=\"1\" x=\"2\"][a y=\"3\"] m"), PRI(13),
	    .host = "h", .app = "a", .msg = "m",
	    .fields = "{\"a\": {\"x\": \"1\", \"x\": \"2\"}, \"a\": {\"y\": "
		      "\"3\"}}" },
	{ "SD element without params, extra spaces",
	    IN("<13>1 - h a - - [meta][b  k=\"v\" ] m"), PRI(13), .host = "h",
	    .app = "a", .msg = "m",
	    .fields = "{\"meta\": {}, \"b\": {\"k\": \"v\"}}" },
	{ "invalid UTF-8 in fields",
	    IN("<13>1 - h\xff\xfe a\xc3 - - [x v=\"\xff\xc3(\"] \xfe m"),
	    PRI(13), .host = "h\xff\xfe", .app = "a\xc3", .msg = "\xfe m",
	    .fields = "{\"x\": {\"v\": \"\xff\xc3(\"}}" },
	{ "MSG is JSON: stays text",
	    IN("<14>1 2026-11-21T10:00:00Z h a p id - {\"msg\":\"x\"}"),
	    PRI(14), .host = "h", .app = "a", .procid = "p", .msgid = "id",
	    .time = "2026-11-21T10:00:00Z", .msg = "{\"msg\":\"x\"}" },
	{ "lowercase t and z, 9 fraction digits truncated",
	    IN("<14>1 2026-11-21t10:00:00.123456789z h a - - - m"), PRI(14),
	    .host = "h", .app = "a", .time = "2026-11-21T10:00:00.123456Z",
	    .msg = "m" },
	{ "leap year Feb 29", IN("<14>1 2028-02-29T23:59:59-00:30 h - - - -"),
	    PRI(14), .host = "h", .time = "2028-03-01T00:29:59Z", .msg = "" },
	{ "year 0001 is the first storable",
	    IN("<14>1 0001-01-01T00:00:00Z h a - - - m"), PRI(14), .host = "h",
	    .app = "a", .time = "0001-01-01T00:00:00Z", .msg = "m" },
	{ "year 0000 is out of range",
	    IN("<14>1 0000-02-29T10:00:00Z h a - - - m"), PRI(14), .host = "h",
	    .app = "a", .msg = "m" },
	{ "year 10000 UTC is out of range",
	    IN("<14>1 9999-12-31T23:59:59-01:00 h a - - - m"), PRI(14),
	    .host = "h", .app = "a", .msg = "m" },
	{ "bad date Feb 30: time NULL, rest kept",
	    IN("<14>1 2026-02-30T10:00:00Z h a - - - m"), PRI(14), .host = "h",
	    .app = "a", .msg = "m" },
	{ "bad date Feb 29 2026", IN("<14>1 2026-02-29T10:00:00Z h a - - - m"),
	    PRI(14), .host = "h", .app = "a", .msg = "m" },
	{ "bad hour 25", IN("<14>1 2026-11-21T25:00:00Z h a - - - m"), PRI(14),
	    .host = "h", .app = "a", .msg = "m" },
	{ "bad offset +24:00",
	    IN("<14>1 2026-11-21T10:00:00+24:00 h a - - - m"), PRI(14),
	    .host = "h", .app = "a", .msg = "m" },
	{ "no offset", IN("<14>1 2026-11-21T10:00:00 h a - - - m"), PRI(14),
	    .host = "h", .app = "a", .msg = "m" },
	{ "empty fraction", IN("<14>1 2026-11-21T10:00:00.Z h a - - - m"),
	    PRI(14), .host = "h", .app = "a", .msg = "m" },
	{ "truncated header: PRI kept, rest is message",
	    IN("<13>1 2026-11-21T10:00:00Z host app"), PRI(13),
	    .msg = "1 2026-11-21T10:00:00Z host app" },
	{ "truncated after version", IN("<13>1 "), PRI(13), .msg = "1 " },
	{ "unterminated SD value", IN("<13>1 - h a - - [x y=\"z] msg"), PRI(13),
	    .msg = "1 - h a - - [x y=\"z] msg" },
	{ "unterminated SD element", IN("<13>1 - h a - - [x y=\"z\""), PRI(13),
	    .msg = "1 - h a - - [x y=\"z\"" },
	{ "SD param without value", IN("<13>1 - h a - - [x y] m"), PRI(13),
	    .msg = "1 - h a - - [x y] m" },
	{ "garbage after SD", IN("<13>1 - h a - - [x]y m"), PRI(13),
	    .msg = "1 - h a - - [x]y m" },
	{ "SD neither - nor [", IN("<13>1 - h a - - x m"), PRI(13),
	    .msg = "1 - h a - - x m" },
	{ "double space in header", IN("<13>1 -  h a - - - m"), PRI(13),
	    .msg = "1 -  h a - - - m" },
};

/* RFC 3164 / BSD, as logger(1), rsyslog, devices and Python send it. */
static const struct pcase rfc3164_cases[] = {
	{ "logger --rfc3164", IN("<13>Nov 21 10:00:00 myhost alice: hello"),
	    PRI(13), .host = "myhost", .app = "alice",
	    .time = "2026-11-21T10:00:00Z", .msg = "hello" },
	{ "tag[pid]",
	    IN("<38>Nov 21 10:00:00 myhost sshd[1234]: Accepted publickey "
	       "for bob"),
	    PRI(38), .host = "myhost", .app = "sshd", .procid = "1234",
	    .time = "2026-11-21T10:00:00Z",
	    .msg = "Accepted publickey for bob" },
	{ "no hostname, tag[pid]:", IN("<13>Nov 21 10:00:00 sshd[12]: msg"),
	    PRI(13), .app = "sshd", .procid = "12",
	    .time = "2026-11-21T10:00:00Z", .msg = "msg" },
	{ "no hostname, tag:", IN("<78>Nov 21 10:00:00 CRON: job done"),
	    PRI(78), .app = "CRON", .time = "2026-11-21T10:00:00Z",
	    .msg = "job done" },
	{ "space-padded day", IN("<13>Nov  1 10:00:00 host tag: msg"), PRI(13),
	    .host = "host", .app = "tag", .time = "2026-11-01T10:00:00Z",
	    .msg = "msg" },
	{ "one-digit day", IN("<13>Nov 1 10:00:00 host tag: msg"), PRI(13),
	    .host = "host", .app = "tag", .time = "2026-11-01T10:00:00Z",
	    .msg = "msg" },
	{ "rsyslog RFC3339 template",
	    IN("<13>2026-11-21T10:00:00.123456+01:00 host tag: msg"), PRI(13),
	    .host = "host", .app = "tag", .time = "2026-11-21T09:00:00.123456Z",
	    .msg = "msg" },
	{ "rsyslog RFC3339, bad date", IN("<13>2026-13-01T10:00:00Z host t: m"),
	    PRI(13), .host = "host", .app = "t", .msg = "m" },
	{ "no PRI", IN("Nov 21 10:00:00 host tag: msg"), NOPRI, .host = "host",
	    .app = "tag", .time = "2026-11-21T10:00:00Z", .msg = "msg" },
	{ "tag without pid or colon", IN("<13>Nov 21 10:00:00 host tag msg x"),
	    PRI(13), .host = "host", .app = "tag",
	    .time = "2026-11-21T10:00:00Z", .msg = "msg x" },
	{ "tag[pid] without colon", IN("<13>Nov 21 10:00:00 host tag[5] msg"),
	    PRI(13), .host = "host", .app = "tag", .procid = "5",
	    .time = "2026-11-21T10:00:00Z", .msg = "msg" },
	{ "tag:msg without space", IN("<13>Nov 21 10:00:00 host tag:msg"),
	    PRI(13), .host = "host", .app = "tag",
	    .time = "2026-11-21T10:00:00Z", .msg = "msg" },
	{ "unclosed pid: no tag", IN("<13>Nov 21 10:00:00 host tag[5 msg"),
	    PRI(13), .host = "host", .time = "2026-11-21T10:00:00Z",
	    .msg = "tag[5 msg" },
	{ "Cisco fraction",
	    IN("<189>Nov 21 10:00:00.123 rtr1 %SYS-5-CONFIG_I: Configured"),
	    PRI(189), .host = "rtr1", .app = "%SYS-5-CONFIG_I",
	    .time = "2026-11-21T10:00:00.123Z", .msg = "Configured" },
	{ "timestamp only", IN("<13>Nov 21 10:00:00"), PRI(13),
	    .time = "2026-11-21T10:00:00Z", .msg = "" },
	{ "timestamp and host only", IN("<13>Nov 21 10:00:00 host"), PRI(13),
	    .host = "host", .time = "2026-11-21T10:00:00Z", .msg = "" },
	{ "Dec 31 received Jan 1 is last year",
	    IN("<13>Dec 31 23:59:50 h t: m"), .recv = "2027-01-01T00:00:30Z",
	    PRI(13), .host = "h", .app = "t", .time = "2026-12-31T23:59:50Z",
	    .msg = "m" },
	{ "Jan 1 received Dec 31 is next year",
	    IN("<13>Jan  1 00:00:10 h t: m"), .recv = "2026-12-31T23:59:50Z",
	    PRI(13), .host = "h", .app = "t", .time = "2027-01-01T00:00:10Z",
	    .msg = "m" },
	{ "Feb 29 in a leap year", IN("<13>Feb 29 12:00:00 h t: m"),
	    .recv = "2028-03-01T00:00:00Z", PRI(13), .host = "h", .app = "t",
	    .time = "2028-02-29T12:00:00Z", .msg = "m" },
	{ "Feb 29: nearest leap year", IN("<13>Feb 29 12:00:00 h t: m"),
	    .recv = "2027-06-01T00:00:00Z", PRI(13), .host = "h", .app = "t",
	    .time = "2028-02-29T12:00:00Z", .msg = "m" },
	{ "Feb 30: time NULL, rest kept", IN("<13>Feb 30 10:00:00 h t: m"),
	    PRI(13), .host = "h", .app = "t", .msg = "m" },
	{ "hour 25: time NULL, rest kept", IN("<13>Nov 21 25:00:00 h t: m"),
	    PRI(13), .host = "h", .app = "t", .msg = "m" },
	{ "lowercase month", IN("<13>nov 21 10:00:00 h t: m"), PRI(13),
	    .host = "h", .app = "t", .time = "2026-11-21T10:00:00Z",
	    .msg = "m" },
	{ "Python SysLogHandler", IN("<14>message text"), PRI(14),
	    .msg = "message text" },
	{ "Python SysLogHandler with ident", IN("<14>myapp: message text"),
	    PRI(14), .app = "myapp", .msg = "message text" },
	{ "Python SysLogHandler ident[pid]", IN("<11>myapp[42]: oops"), PRI(11),
	    .app = "myapp", .procid = "42", .msg = "oops" },
	{ "no timestamp, URL is not a tag", IN("<14>http://x.example/ down"),
	    PRI(14), .msg = "http://x.example/ down" },
	{ "PRI only", IN("<14>"), PRI(14), .msg = "" },
	{ "PRI with leading zero", IN("<013>text"), PRI(13), .msg = "text" },
	{ "version 2 is not RFC 5424", IN("<13>2 x"), PRI(13), .msg = "2 x" },
	{ "bad month is not a timestamp", IN("<13>Foo 21 10:00:00 h t: m"),
	    PRI(13), .msg = "Foo 21 10:00:00 h t: m" },
};

/* Neither syslog nor JSON, and PARSER_RAW. */
static const struct pcase plain_cases[] = {
	{ "plain text", IN("hello world"), NOPRI, .msg = "hello world" },
	{ "empty", IN(""), NOPRI, .msg = "" },
	{ "lone <", IN("<"), NOPRI, .msg = "<" },
	{ "<>", IN("<>"), NOPRI, .msg = "<>" },
	{ "<12", IN("<12"), NOPRI, .msg = "<12" },
	{ "<999>", IN("<999>hello"), NOPRI, .msg = "<999>hello" },
	{ "<192>", IN("<192>Nov 21 10:00:00 h t: m"), NOPRI,
	    .msg = "<192>Nov 21 10:00:00 h t: m" },
	{ "<1234>", IN("<1234>x"), NOPRI, .msg = "<1234>x" },
	{ "<-1>", IN("<-1>x"), NOPRI, .msg = "<-1>x" },
	{ "<1a>", IN("<1a>x"), NOPRI, .msg = "<1a>x" },
	{ "no PRI, RFC3339 is plain", IN("2026-11-21T10:00:00Z h t: m"), NOPRI,
	    .msg = "2026-11-21T10:00:00Z h t: m" },
	{ "month name but no time", IN("Nov 21 was a Saturday"), NOPRI,
	    .msg = "Nov 21 was a Saturday" },
	{ "NUL bytes", IN("a\0b"), NOPRI, .msg = "a\0b", .msglen = 3 },
	{ "invalid UTF-8", IN("\xff\xfe\xc3"), NOPRI, .msg = "\xff\xfe\xc3" },
	{ "raw: syslog not parsed", IN("<13>Nov 21 10:00:00 h t: m"),
	    .fmt = PARSER_RAW, NOPRI, .msg = "<13>Nov 21 10:00:00 h t: m" },
	{ "raw: JSON not parsed", IN("{\"msg\":\"x\"}"), .fmt = PARSER_RAW,
	    NOPRI, .msg = "{\"msg\":\"x\"}" },
};

/* JSON lines from common loggers, and broken JSON. */
static const struct pcase json_cases[] = {
	{ "Go zap",
	    IN("{\"level\":\"info\",\"ts\":1732186800.123,"
	       "\"caller\":\"main.go:12\",\"msg\":\"hi\"}"),
	    .fac = -1, .sev = 6, .time = "2024-11-21T11:00:00.123Z",
	    .msg = "hi",
	    .fields = "{\"level\":\"info\",\"ts\":1732186800.123,"
		      "\"caller\":\"main.go:12\",\"msg\":\"hi\"}" },
	{ "Node pino",
	    IN("{\"level\":30,\"time\":1732186800123,\"pid\":7,"
	       "\"hostname\":\"web1\",\"msg\":\"request done\"}"),
	    .fac = -1, .sev = 6, .host = "web1",
	    .time = "2024-11-21T11:00:00.123Z", .msg = "request done",
	    .fields = "{\"level\":30,\"time\":1732186800123,\"pid\":7,"
		      "\"hostname\":\"web1\",\"msg\":\"request done\"}" },
	{ "Node bunyan",
	    IN("{\"name\":\"app\",\"hostname\":\"h\",\"pid\":1,\"level\":50,"
	       "\"msg\":\"boom\",\"time\":\"2026-11-21T10:00:00.000Z\","
	       "\"v\":0}"),
	    .fac = -1, .sev = 3, .host = "h", .time = "2026-11-21T10:00:00Z",
	    .msg = "boom",
	    .fields = "{\"name\":\"app\",\"hostname\":\"h\",\"pid\":1,"
		      "\"level\":50,\"msg\":\"boom\",\"time\":"
		      "\"2026-11-21T10:00:00.000Z\",\"v\":0}" },
	{ "Go slog",
	    IN("{\"time\":\"2026-11-21T10:00:00.123456789+01:00\","
	       "\"level\":\"WARN\",\"msg\":\"disk\",\"free\":12}"),
	    .fac = -1, .sev = 4, .time = "2026-11-21T09:00:00.123456Z",
	    .msg = "disk",
	    .fields = "{\"time\":\"2026-11-21T10:00:00.123456789+01:00\","
		      "\"level\":\"WARN\",\"msg\":\"disk\",\"free\":12}" },
	{ "Go logrus",
	    IN("{\"level\":\"error\",\"msg\":\"failed\","
	       "\"time\":\"2026-11-21T10:00:00+01:00\"}"),
	    .fac = -1, .sev = 3, .time = "2026-11-21T09:00:00Z",
	    .msg = "failed",
	    .fields = "{\"level\":\"error\",\"msg\":\"failed\","
		      "\"time\":\"2026-11-21T10:00:00+01:00\"}" },
	{ "Python json-logger",
	    IN("{\"asctime\": \"2026-11-21 10:00:00,123\", \"levelname\": "
	       "\"INFO\", \"message\": \"started\", \"host\": \"py1\"}"),
	    NOPRI, .host = "py1", .msg = "started",
	    .fields = "{\"asctime\": \"2026-11-21 10:00:00,123\", "
		      "\"levelname\": \"INFO\", \"message\": \"started\", "
		      "\"host\": \"py1\"}" },
	{ "Python structlog: no message key, whole line",
	    IN("{\"event\": \"hi\", \"level\": \"warning\", \"timestamp\": "
	       "\"2026-11-21T10:00:00.5Z\"}"),
	    .fac = -1, .sev = 4, .time = "2026-11-21T10:00:00.5Z",
	    .msg = "{\"event\": \"hi\", \"level\": \"warning\", "
		   "\"timestamp\": \"2026-11-21T10:00:00.5Z\"}",
	    .fields = "{\"event\": \"hi\", \"level\": \"warning\", "
		      "\"timestamp\": \"2026-11-21T10:00:00.5Z\"}" },
	{ "Logstash @timestamp",
	    IN("{\"@timestamp\":\"2026-11-21T10:00:00Z\","
	       "\"log\":\"x\"}"),
	    NOPRI, .time = "2026-11-21T10:00:00Z", .msg = "x",
	    .fields = "{\"@timestamp\":\"2026-11-21T10:00:00Z\","
		      "\"log\":\"x\"}" },
	{ "surrounding whitespace", IN(" \t{\"msg\": \"x\"} \r\n"), NOPRI,
	    .msg = "x", .fields = "{\"msg\": \"x\"}" },
	{ "escapes unescaped into message",
	    IN("{\"msg\":\"l1\\nl2 \\\"q\\\" \\/ \\u00e9 \\ud83d\\ude00 "
	       "\\t\"}"),
	    NOPRI, .msg = "l1\nl2 \"q\" / \xc3\xa9 \xf0\x9f\x98\x80 \t",
	    .fields = "{\"msg\":\"l1\\nl2 \\\"q\\\" \\/ \\u00e9 "
		      "\\ud83d\\ude00 \\t\"}" },
	{ "\\u0000 and lone surrogates rewritten",
	    IN("{\"msg\":\"a\\u0000b\",\"x\":\"\\ud800\",\"y\":\"\\udc00z\","
	       "\"\\u0000k\":[\"\\ud800\\u0041\"]}"),
	    NOPRI,
	    .msg = "a\xef\xbf\xbd"
		   "b",
	    .fields = "{\"msg\":\"a\\ufffdb\",\"x\":\"\\ufffd\",\"y\":"
		      "\"\\ufffdz\",\"\\ufffdk\":[\"\\ufffd\\u0041\"]}" },
	{ "valid surrogate pair not rewritten",
	    IN("{\"k\":\"\\uD83D\\uDE00\"}"), NOPRI,
	    .msg = "{\"k\":\"\\uD83D\\uDE00\"}",
	    .fields = "{\"k\":\"\\uD83D\\uDE00\"}" },
	{ "non-string message is raw JSON",
	    IN("{\"msg\":{\"a\":[1,2]},\"level\":null}"), NOPRI,
	    .msg = "{\"a\":[1,2]}",
	    .fields = "{\"msg\":{\"a\":[1,2]},\"level\":null}" },
	{ "numeric message", IN("{\"message\":-4.5e+3}"), NOPRI,
	    .msg = "-4.5e+3", .fields = "{\"message\":-4.5e+3}" },
	{ "message beats msg beats log",
	    IN("{\"log\":\"c\",\"msg\":\"b\",\"message\":\"a\"}"), NOPRI,
	    .msg = "a",
	    .fields = "{\"log\":\"c\",\"msg\":\"b\",\"message\":\"a\"}" },
	{ "duplicate key: last wins, as in jsonb",
	    IN("{\"msg\":\"a\",\"msg\":\"b\"}"), NOPRI, .msg = "b",
	    .fields = "{\"msg\":\"a\",\"msg\":\"b\"}" },
	{ "nested keys are not columns",
	    IN("{\"ctx\":{\"msg\":\"inner\",\"level\":\"error\"}}"), NOPRI,
	    .msg = "{\"ctx\":{\"msg\":\"inner\",\"level\":\"error\"}}",
	    .fields = "{\"ctx\":{\"msg\":\"inner\",\"level\":\"error\"}}" },
	{ "escaped key does not match", IN("{\"m\\u0073g\":\"x\"}"), NOPRI,
	    .msg = "{\"m\\u0073g\":\"x\"}", .fields = "{\"m\\u0073g\":\"x\"}" },
	{ "empty object", IN("{}"), NOPRI, .msg = "{}", .fields = "{}" },
	{ "level number 3", IN("{\"level\":3}"), .fac = -1, .sev = 3,
	    .msg = "{\"level\":3}", .fields = "{\"level\":3}" },
	{ "level number 8 unknown", IN("{\"level\":8}"), NOPRI,
	    .msg = "{\"level\":8}", .fields = "{\"level\":8}" },
	{ "severity CRITICAL", IN("{\"severity\":\"CRITICAL\"}"), .fac = -1,
	    .sev = 2, .msg = "{\"severity\":\"CRITICAL\"}",
	    .fields = "{\"severity\":\"CRITICAL\"}" },
	{ "level panic", IN("{\"level\":\"Panic\"}"), .fac = -1, .sev = 0,
	    .msg = "{\"level\":\"Panic\"}", .fields = "{\"level\":\"Panic\"}" },
	{ "level information", IN("{\"level\":\"information\"}"), .fac = -1,
	    .sev = 6, .msg = "{\"level\":\"information\"}",
	    .fields = "{\"level\":\"information\"}" },
	{ "level trace", IN("{\"level\":\"TRACE\"}"), .fac = -1, .sev = 7,
	    .msg = "{\"level\":\"TRACE\"}", .fields = "{\"level\":\"TRACE\"}" },
	{ "level bogus", IN("{\"level\":\"bogus\"}"), NOPRI,
	    .msg = "{\"level\":\"bogus\"}", .fields = "{\"level\":\"bogus\"}" },
	{ "level beats severity",
	    IN("{\"severity\":\"error\",\"level\":\"debug\"}"), .fac = -1,
	    .sev = 7, .msg = "{\"severity\":\"error\",\"level\":\"debug\"}",
	    .fields = "{\"severity\":\"error\",\"level\":\"debug\"}" },
	{ "time in seconds", IN("{\"timestamp\":1732186800}"), NOPRI,
	    .time = "2024-11-21T11:00:00Z", .msg = "{\"timestamp\":1732186800}",
	    .fields = "{\"timestamp\":1732186800}" },
	{ "time in microseconds", IN("{\"ts\":1732186800123456}"), NOPRI,
	    .time = "2024-11-21T11:00:00.123456Z",
	    .msg = "{\"ts\":1732186800123456}",
	    .fields = "{\"ts\":1732186800123456}" },
	{ "time in nanoseconds, \\b \\f \\r, false",
	    IN("{\"msg\":\"\\b\\f\\r\",\"ok\":false,"
	       "\"time\":1732186800123456789}"),
	    NOPRI, .time = "2024-11-21T11:00:00.123456Z", .msg = "\b\f\r",
	    .fields = "{\"msg\":\"\\b\\f\\r\",\"ok\":false,"
		      "\"time\":1732186800123456789}" },
	{ "time with too many digits", IN("{\"time\":12345678901234567890}"),
	    NOPRI, .msg = "{\"time\":12345678901234567890}",
	    .fields = "{\"time\":12345678901234567890}" },
	{ "time with exponent ignored", IN("{\"time\":1.7e9}"), NOPRI,
	    .msg = "{\"time\":1.7e9}", .fields = "{\"time\":1.7e9}" },
	{ "negative time ignored", IN("{\"time\":-5}"), NOPRI,
	    .msg = "{\"time\":-5}", .fields = "{\"time\":-5}" },
	{ "time not a date", IN("{\"time\":\"yesterday\"}"), NOPRI,
	    .msg = "{\"time\":\"yesterday\"}",
	    .fields = "{\"time\":\"yesterday\"}" },
	{ "time Feb 30", IN("{\"time\":\"2026-02-30T10:00:00Z\"}"), NOPRI,
	    .msg = "{\"time\":\"2026-02-30T10:00:00Z\"}",
	    .fields = "{\"time\":\"2026-02-30T10:00:00Z\"}" },
	{ "host with escape", IN("{\"host\":\"h\\u0031\",\"msg\":\"a\\tb\"}"),
	    NOPRI, .host = "h1", .msg = "a\tb",
	    .fields = "{\"host\":\"h\\u0031\",\"msg\":\"a\\tb\"}" },
	{ "host not a string", IN("{\"host\":1}"), NOPRI, .msg = "{\"host\":1}",
	    .fields = "{\"host\":1}" },
	{ "invalid UTF-8 in string is kept", IN("{\"msg\":\"\xff\xfe\"}"),
	    NOPRI, .msg = "\xff\xfe", .fields = "{\"msg\":\"\xff\xfe\"}" },
	{ "unterminated object", IN("{\"msg\":\"x\""), NOPRI,
	    .msg = "{\"msg\":\"x\"" },
	{ "trailing garbage", IN("{\"msg\":\"x\"} y"), NOPRI,
	    .msg = "{\"msg\":\"x\"} y" },
	{ "two objects", IN("{}{}"), NOPRI, .msg = "{}{}" },
	{ "unquoted key", IN("{msg:1}"), NOPRI, .msg = "{msg:1}" },
	{ "raw tab in string", IN("{\"msg\":\"a\tb\"}"), NOPRI,
	    .msg = "{\"msg\":\"a\tb\"}" },
	{ "raw NUL in string", IN("{\"msg\":\"a\0b\"}"), NOPRI,
	    .msg = "{\"msg\":\"a\0b\"}", .msglen = 13 },
	{ "bad escape \\x", IN("{\"msg\":\"\\x41\"}"), NOPRI,
	    .msg = "{\"msg\":\"\\x41\"}" },
	{ "short \\u escape", IN("{\"msg\":\"\\u12\"}"), NOPRI,
	    .msg = "{\"msg\":\"\\u12\"}" },
	{ "leading zero", IN("{\"a\":01}"), NOPRI, .msg = "{\"a\":01}" },
	{ "dot without digits", IN("{\"a\":1.}"), NOPRI, .msg = "{\"a\":1.}" },
	{ "lone minus", IN("{\"a\":-}"), NOPRI, .msg = "{\"a\":-}" },
	{ "bad literal", IN("{\"a\":tru}"), NOPRI, .msg = "{\"a\":tru}" },
	{ "trailing comma", IN("{\"a\":1,}"), NOPRI, .msg = "{\"a\":1,}" },
	{ "array trailing comma", IN("{\"a\":[1,]}"), NOPRI,
	    .msg = "{\"a\":[1,]}" },
	{ "missing colon", IN("{\"a\" 1}"), NOPRI, .msg = "{\"a\" 1}" },
	{ "jsonb can store 1e131071", IN("{\"a\":1e131071}"), NOPRI,
	    .msg = "{\"a\":1e131071}", .fields = "{\"a\":1e131071}" },
	{ "jsonb cannot store 1e131072", IN("{\"a\":1e131072}"), NOPRI,
	    .msg = "{\"a\":1e131072}" },
	{ "jsonb can store 0.01e131073", IN("{\"a\":0.01e131073}"), NOPRI,
	    .msg = "{\"a\":0.01e131073}", .fields = "{\"a\":0.01e131073}" },
	{ "jsonb can store 1e-16383", IN("{\"a\":1e-16383}"), NOPRI,
	    .msg = "{\"a\":1e-16383}", .fields = "{\"a\":1e-16383}" },
	{ "jsonb cannot store 1e-16384", IN("{\"a\":1e-16384}"), NOPRI,
	    .msg = "{\"a\":1e-16384}" },
	{ "jsonb cannot store 0e-16384", IN("{\"a\":0e-16384}"), NOPRI,
	    .msg = "{\"a\":0e-16384}" },
	{ "jsonb can store 0e200000", IN("{\"a\":0e200000}"), NOPRI,
	    .msg = "{\"a\":0e200000}", .fields = "{\"a\":0e200000}" },
	{ "jsonb cannot store 0.5e-16383", IN("{\"a\":0.5e-16383}"), NOPRI,
	    .msg = "{\"a\":0.5e-16383}" },
	{ "jsonb can store -1.5E+3", IN("{\"a\":-1.5E+3}"), NOPRI,
	    .msg = "{\"a\":-1.5E+3}", .fields = "{\"a\":-1.5E+3}" },
	{ "jsonb cannot store 1E000000000000000000",
	    IN("{\"a\":"
	       "1E0000000000000000000000000000000000000000000016397105841297379"
	       "212}"),
	    NOPRI,
	    .msg = "{\"a\":"
		   "1E000000000000000000000000000000000000000000001639710584129"
		   "7379212}" },
	{ "top-level array is plain", IN("[1,2]"), NOPRI, .msg = "[1,2]" },
	{ "lone {", IN("{"), NOPRI, .msg = "{" },
};

/* GELF 1.1 payloads (gelf-pro, Graylog's examples) and odd ones. */
static const struct pcase gelf_cases[] = {
	{ "GELF spec example",
	    IN("{\"version\":\"1.1\",\"host\":\"example.org\","
	       "\"short_message\":\"A short message that helps you identify "
	       "what is going on\",\"full_message\":\"Backtrace here\\n\\n"
	       "more stuff\",\"timestamp\":1385053862.3072,\"level\":1,"
	       "\"_user_id\":9001,\"_some_info\":\"foo\","
	       "\"_some_env_var\":\"bar\"}"),
	    .fac = -1, .sev = 1, .host = "example.org",
	    .time = "2013-11-21T17:11:02.3072Z",
	    .msg = "A short message that helps you identify what is going on",
	    .fields = "{\"full_message\":\"Backtrace here\\n\\nmore stuff\","
		      "\"user_id\":9001,\"some_info\":\"foo\","
		      "\"some_env_var\":\"bar\"}" },
	{ "gelf-pro with _facility",
	    IN("{\"version\":\"1.1\",\"short_message\":\"hello\","
	       "\"timestamp\":1764583200.5,\"host\":\"web1\",\"level\":6,"
	       "\"_facility\":\"billing\",\"_owner\":\"Tom\"}"),
	    .fac = -1, .sev = 6, .host = "web1", .app = "billing",
	    .time = "2025-12-01T10:00:00.5Z", .msg = "hello",
	    .fields = "{\"facility\":\"billing\",\"owner\":\"Tom\"}" },
	{ "_app beats facility, escapes",
	    IN("{ \"version\" : \"1.1\" , \"host\" : \"h\\u0031\", "
	       "\"short_message\" : \"a\\tb\", \"facility\" : \"old\", "
	       "\"_app\" : \"n\\u0065w\" }"),
	    NOPRI, .host = "h1", .app = "new", .msg = "a\tb",
	    .fields = "{\"facility\":\"old\",\"app\":\"n\\u0065w\"}" },
	{ "full_message only is the message",
	    IN("{\"version\":\"1.1\",\"host\":\"h\","
	       "\"full_message\":\"line1\\nline2\"}"),
	    NOPRI, .host = "h", .msg = "line1\nline2" },
	{ "_id kept, bad level and time kept",
	    IN("{\"version\":\"1.1\",\"short_message\":\"m\",\"_id\":\"x\","
	       "\"level\":9,\"timestamp\":\"soon\",\"_\":1}"),
	    NOPRI, .msg = "m",
	    .fields = "{\"_id\":\"x\",\"level\":9,\"timestamp\":\"soon\","
		      "\"_\":1}" },
	{ "level name and string timestamp",
	    IN("{\"version\":\"1.0\",\"short_message\":\"m\","
	       "\"level\":\"warning\",\"timestamp\":\"1385053862\","
	       "\"file\":\"a.c\",\"line\":12}"),
	    .fac = -1, .sev = 4, .time = "2013-11-21T17:11:02Z", .msg = "m",
	    .fields = "{\"file\":\"a.c\",\"line\":12}" },
	{ "RFC 3339 timestamp, nested extra",
	    IN("{\"version\":\"1.1\",\"short_message\":\"m\","
	       "\"timestamp\":\"2026-11-21T10:00:00Z\","
	       "\"_ctx\":{\"a\":[1,{\"b\":null}]}}"),
	    NOPRI, .time = "2026-11-21T10:00:00Z", .msg = "m",
	    .fields = "{\"ctx\":{\"a\":[1,{\"b\":null}]}}" },
	{ "\\u0000 in an extra field becomes \\ufffd",
	    IN("{\"version\":\"1.1\",\"short_message\":\"a\\u0000b\","
	       "\"_k\\u0000\":\"v\\ud800\"}"),
	    NOPRI,
	    .msg = "a\xef\xbf\xbd"
		   "b",
	    .fields = "{\"k\\ufffd\":\"v\\ufffd\"}" },
	{ "non-string short_message and host",
	    IN("{\"version\":\"1.1\",\"short_message\":42,\"host\":7}"), NOPRI,
	    .msg = "42", .fields = "{\"host\":7}" },
	{ "version not a string: JSON line",
	    IN("{\"version\":1,\"short_message\":\"m\"}"), NOPRI,
	    .msg = "{\"version\":1,\"short_message\":\"m\"}",
	    .fields = "{\"version\":1,\"short_message\":\"m\"}" },
	{ "no short_message nor full_message: JSON line",
	    IN("{\"version\":\"1.1\",\"host\":\"h\",\"msg\":\"m\"}"), NOPRI,
	    .host = "h", .msg = "m",
	    .fields = "{\"version\":\"1.1\",\"host\":\"h\",\"msg\":\"m\"}" },
	{ "broken GELF is plain",
	    IN("{\"version\":\"1.1\",\"short_message\":\"m\""), NOPRI,
	    .msg = "{\"version\":\"1.1\",\"short_message\":\"m\"" },
};

/* logfmt from Go loggers, the Heroku router, and near misses. */
static const struct pcase logfmt_cases[] = {
	{ "the issue's example",
	    IN("level=warn msg=\"disk full\" host=db1 dur=12ms"), .fac = -1,
	    .sev = 4, .host = "db1", .msg = "disk full",
	    .fields = "{\"level\": \"warn\", \"msg\": \"disk full\", "
		      "\"host\": \"db1\", \"dur\": \"12ms\"}" },
	{ "Go slog TextHandler",
	    IN("time=2026-11-21T10:00:00.123+01:00 level=INFO msg=\"hello "
	       "world\" count=3 path=/var/x"),
	    .fac = -1, .sev = 6, .time = "2026-11-21T09:00:00.123Z",
	    .msg = "hello world",
	    .fields = "{\"time\": \"2026-11-21T10:00:00.123+01:00\", "
		      "\"level\": \"INFO\", \"msg\": \"hello world\", "
		      "\"count\": \"3\", \"path\": \"/var/x\"}" },
	{ "logrus TextFormatter, escapes",
	    IN("time=\"2026-11-21T10:00:00Z\" level=error msg=\"failed: "
	       "\\\"x\\\"\\n\" err=\"a\\\\b\" app=api"),
	    .fac = -1, .sev = 3, .app = "api", .time = "2026-11-21T10:00:00Z",
	    .msg = "failed: \"x\"\n",
	    .fields = "{\"time\": \"2026-11-21T10:00:00Z\", \"level\": "
		      "\"error\", \"msg\": \"failed: \\\"x\\\"\\n\", "
		      "\"err\": \"a\\\\b\", \"app\": \"api\"}" },
	{ "go-kit with ts epoch and caller",
	    IN("level=debug ts=1732186800.25 caller=main.go:42 "
	       "msg=starting"),
	    .fac = -1, .sev = 7, .time = "2024-11-21T11:00:00.25Z",
	    .msg = "starting",
	    .fields = "{\"level\": \"debug\", \"ts\": \"1732186800.25\", "
		      "\"caller\": \"main.go:42\", \"msg\": \"starting\"}" },
	{ "Heroku router",
	    IN("at=info method=GET path=\"/\" host=myapp.herokuapp.com "
	       "fwd=\"204.204.204.204\" dyno=web.1 connect=1ms service=18ms "
	       "status=200 bytes=13"),
	    .fac = -1, .sev = 6, .host = "myapp.herokuapp.com", .app = "18ms",
	    .msg = "at=info method=GET path=\"/\" host=myapp.herokuapp.com "
		   "fwd=\"204.204.204.204\" dyno=web.1 connect=1ms "
		   "service=18ms status=200 bytes=13",
	    .fields = "{\"at\": \"info\", \"method\": \"GET\", \"path\": "
		      "\"/\", \"host\": \"myapp.herokuapp.com\", \"fwd\": "
		      "\"204.204.204.204\", \"dyno\": \"web.1\", \"connect\": "
		      "\"1ms\", \"service\": \"18ms\", \"status\": \"200\", "
		      "\"bytes\": \"13\"}" },
	{ "log15 lvl=eror, bare key, \\x and \\u escapes",
	    IN("t=2026-11-21T10:00:00Z lvl=eror msg=\"\\x41\\u00e9\\x00\" "
	       "logger=sql retry   "),
	    .fac = -1, .sev = 3, .msg = "A\xc3\xa9\xef\xbf\xbd",
	    .fields = "{\"t\": \"2026-11-21T10:00:00Z\", \"lvl\": \"eror\", "
		      "\"msg\": \"A\xc3\xa9\xef\xbf\xbd\", \"logger\": "
		      "\"sql\", \"retry\": true}" },
	{ "\\U past U+10FFFF, past 2^31 and valid: U+FFFD, U+FFFD, emoji",
	    IN("level=info msg=\"\\U00110000\\U8001F600\\U0001F600\""),
	    .fac = -1, .sev = 6,
	    .msg = "\xef\xbf\xbd\xef\xbf\xbd\xf0\x9f\x98\x80",
	    .fields = "{\"level\": \"info\", \"msg\": "
		      "\"\xef\xbf\xbd\xef\xbf\xbd\xf0\x9f\x98\x80\"}" },
	{ "empty values, message beats msg, last duplicate wins",
	    IN("msg=a message=\"\" msg=b x= level=3 level=5"), .fac = -1,
	    .sev = 5, .msg = "",
	    .fields = "{\"msg\": \"a\", \"message\": \"\", \"msg\": \"b\", "
		      "\"x\": \"\", \"level\": \"3\", \"level\": \"5\"}" },
	{ "unknown escape kept, control escapes",
	    IN("msg=\"a\\qb\\a\" level=info"), .fac = -1, .sev = 6,
	    .msg = "a\\qb\a",
	    .fields = "{\"msg\": \"a\\\\qb\\u0007\", \"level\": \"info\"}" },
	{ "no anchor key: plain", IN("x=1 y=2 z=3"), NOPRI,
	    .msg = "x=1 y=2 z=3" },
	{ "one pair: plain", IN("level=high water mark reached"), NOPRI,
	    .msg = "level=high water mark reached" },
	{ "as many bare keys as pairs: plain",
	    IN("level=debug changed for module=net"), NOPRI,
	    .msg = "level=debug changed for module=net" },
	{ "first token bare: plain", IN("set level=1 msg=done"), NOPRI,
	    .msg = "set level=1 msg=done" },
	{ "unquoted = in value: plain", IN("msg=a=b level=info"), NOPRI,
	    .msg = "msg=a=b level=info" },
	{ "unterminated quote: plain", IN("msg=\"abc level=info"), NOPRI,
	    .msg = "msg=\"abc level=info" },
	{ "quote inside bare value: plain", IN("msg=ab\"c level=info"), NOPRI,
	    .msg = "msg=ab\"c level=info" },
	{ "text after the closing quote: plain", IN("msg=\"a\"b level=info"),
	    NOPRI, .msg = "msg=\"a\"b level=info" },
	{ "bad key: plain", IN("level=info 9x=1 msg=m"), NOPRI,
	    .msg = "level=info 9x=1 msg=m" },
	{ "key with colon: plain", IN("level=info url:x=1 msg=m"), NOPRI,
	    .msg = "level=info url:x=1 msg=m" },
	{ "leading space: plain", IN(" level=info msg=m"), NOPRI,
	    .msg = " level=info msg=m" },
	{ "control byte: plain", IN("level=info msg=\"a\x01\""), NOPRI,
	    .msg = "level=info msg=\"a\x01\"" },
	{ "RFC 3164 MSG in logfmt: fields and message",
	    IN("<14>Nov 21 10:00:00 web1 api[7]: level=warn msg=\"slow "
	       "query\" dur=2s"),
	    PRI(14), .host = "web1", .app = "api", .procid = "7",
	    .time = "2026-11-21T10:00:00Z", .msg = "slow query",
	    .fields = "{\"level\": \"warn\", \"msg\": \"slow query\", "
		      "\"dur\": \"2s\"}" },
	{ "RFC 5424 without SD, logfmt MSG",
	    IN("<11>1 2026-11-21T10:00:00Z h a - - - level=info msg=hi "
	       "host=other"),
	    PRI(11), .host = "h", .app = "a", .time = "2026-11-21T10:00:00Z",
	    .msg = "hi",
	    .fields = "{\"level\": \"info\", \"msg\": \"hi\", \"host\": "
		      "\"other\"}" },
	{ "RFC 5424 with SD: MSG stays text",
	    IN("<11>1 2026-11-21T10:00:00Z h a - - [x@1 k=\"v\"] level=info "
	       "msg=hi"),
	    PRI(11), .host = "h", .app = "a", .time = "2026-11-21T10:00:00Z",
	    .msg = "level=info msg=hi", .fields = "{\"x@1\": {\"k\": \"v\"}}" },
	{ "syslog MSG logfmt but first key not a lead key: text",
	    IN("<14>Nov 21 10:00:00 web1 api[7]: user=bob level=info msg=x"),
	    PRI(14), .host = "web1", .app = "api", .procid = "7",
	    .time = "2026-11-21T10:00:00Z",
	    .msg = "user=bob level=info msg=x" },
	{ "syslog MSG with t= (log15) is logfmt",
	    IN("<14>Nov 21 10:00:00 web1 grafana: t=2026-11-21T10:00:00Z "
	       "lvl=eror msg=x"),
	    PRI(14), .host = "web1", .app = "grafana",
	    .time = "2026-11-21T10:00:00Z", .msg = "x",
	    .fields = "{\"t\": \"2026-11-21T10:00:00Z\", \"lvl\": \"eror\", "
		      "\"msg\": \"x\"}" },
	{ "syslog MSG not logfmt stays text",
	    IN("<14>Nov 21 10:00:00 web1 sshd[7]: set x=1 done"), PRI(14),
	    .host = "web1", .app = "sshd", .procid = "7",
	    .time = "2026-11-21T10:00:00Z", .msg = "set x=1 done" },
};

struct fixture {
	struct buf sc;
	char *copy; /* the input, in a block of exactly its length */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	buf_free(&f->sc);
	free(f->copy);
	free(f);
	return 0;
}

/* Sets TZ and forgets the parser's cached offset. */
static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
	parser_time_flush_cache();
}

/*
 * Microseconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.f]Z", by timegm()
 * so the expectation does not share code with the parser.
 */
static int64_t
utc_us(const char *s)
{
	struct tm tm = { 0 };
	char frac[8] = "000000";
	int n = 0;
	size_t i;

	if (sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon,
		&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		fail_msg("bad test time %s", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	if (s[n] == '.')
		for (i = 0; i < 6 && s[n + 1 + i] >= '0' && s[n + 1 + i] <= '9';
		     i++)
			frac[i] = s[n + 1 + i];
	return (int64_t)timegm(&tm) * 1000000 + atoi(frac);
}

/* Parses in (copied to a block of exactly its length) into r. */
static void
parse_copy(struct fixture *f, struct record *r, const char *in, size_t len,
    enum parser_format fmt)
{
	free(f->copy);
	f->copy = malloc(len ? len : 1);
	assert_non_null(f->copy);
	memcpy(f->copy, in, len);
	assert_int_equal(parser_parse(r, f->copy, len, fmt, &f->sc), 0);
}

/* Fails unless t is NULL when want is, else exactly want (wlen bytes). */
static void
check_text(const char *name, const char *col, struct text t, const char *want,
    size_t wlen)
{
	if (want == NULL && t.ptr == NULL)
		return;
	if (want == NULL || t.ptr == NULL)
		fail_msg("%s: %s: got %s%.*s%s, want %s", name, col,
		    t.ptr ? "'" : "", (int)t.len, t.ptr ? t.ptr : "NULL",
		    t.ptr ? "'" : "", want ? want : "NULL");
	if (wlen == 0)
		wlen = strlen(want);
	if (t.len != wlen || memcmp(t.ptr, want, wlen) != 0)
		fail_msg("%s: %s: got '%.*s' (%zu), want '%s' (%zu)", name, col,
		    (int)t.len, t.ptr, t.len, want, wlen);
}

/* Parses one table row and checks every column. */
static void
check_case(struct fixture *f, const struct pcase *c)
{
	struct record r = { 0 };

	r.received_us = utc_us(c->recv ? c->recv : RECV_DEFAULT);
	r.peer = "192.0.2.9";
	parse_copy(f, &r, c->in, c->inlen, c->fmt);
	if (r.facility != c->fac || r.severity != c->sev)
		fail_msg("%s: facility/severity %d/%d, want %d/%d", c->name,
		    r.facility, r.severity, c->fac, c->sev);
	check_text(c->name, "host", r.host, c->host, 0);
	check_text(c->name, "app", r.app, c->app, 0);
	check_text(c->name, "procid", r.procid, c->procid, 0);
	check_text(c->name, "msgid", r.msgid, c->msgid, 0);
	check_text(c->name, "message", r.message, c->msg, c->msglen);
	check_text(c->name, "fields", r.fields, c->fields, c->fieldslen);
	if (r.has_event_time != (c->time != NULL))
		fail_msg("%s: has_event_time %d", c->name, r.has_event_time);
	if (c->time != NULL && r.event_us != utc_us(c->time))
		fail_msg("%s: event_us %lld, want %lld (%s)", c->name,
		    (long long)r.event_us, (long long)utc_us(c->time), c->time);
	assert_int_equal(
	    r.received_us, utc_us(c->recv ? c->recv : RECV_DEFAULT));
	assert_string_equal(r.peer, "192.0.2.9");
}

static void
run_table(void **state, const struct pcase *cases, size_t n)
{
	size_t i;

	set_tz("UTC");
	for (i = 0; i < n; i++)
		check_case(*state, &cases[i]);
}

#define RUN_TABLE(t) run_table(state, t, sizeof(t) / sizeof(t[0]))

static void
test_rfc5424(void **state)
{
	RUN_TABLE(rfc5424_cases);
}

static void
test_rfc3164(void **state)
{
	RUN_TABLE(rfc3164_cases);
}

static void
test_plain(void **state)
{
	RUN_TABLE(plain_cases);
}

static void
test_json(void **state)
{
	RUN_TABLE(json_cases);
}

static void
test_gelf(void **state)
{
	RUN_TABLE(gelf_cases);
}

static void
test_logfmt(void **state)
{
	RUN_TABLE(logfmt_cases);
}

/*
 * tests/data/NAME (next to this file's directory) line by line: each line
 * parsed must have fields (want_fields) or not, and then, when fields is
 * NULL, the line stays the message or is syslog.  Returns the line count.
 */
static size_t
check_corpus(struct fixture *f, const char *name, bool want_fields)
{
	char path[4096], line[8192];
	const char *slash = strrchr(__FILE__, '/');
	struct record r = { 0 };
	size_t n = 0, len;
	FILE *fp;

	snprintf(path, sizeof(path), "%.*s/../data/%s",
	    (int)(slash != NULL ? slash - __FILE__ : 1),
	    slash != NULL ? __FILE__ : ".", name);
	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s", path);
	while (fgets(line, sizeof(line), fp) != NULL) {
		len = strcspn(line, "\n");
		if (len == 0)
			continue;
		n++;
		r.received_us = utc_us(RECV_DEFAULT);
		parse_copy(f, &r, line, len, PARSER_AUTO);
		if ((r.fields.ptr != NULL) != want_fields)
			fail_msg("%s:%zu: %s: '%.*s'", name, n,
			    want_fields ? "not logfmt" : "not plain", (int)len,
			    line);
		if (want_fields)
			assert_true(r.fields.len > 2 && r.fields.ptr[0] == '{');
	}
	fclose(fp);
	return n;
}

/*
 * The logfmt detection rule against ordinary log lines that must stay
 * plain text (access logs, kernel, sshd, PostgreSQL, Java, sentences and
 * SQL with "=") and logfmt lines that must parse (slog, logrus, go-kit,
 * log15, Heroku router, dockerd).
 */
static void
test_logfmt_corpus(void **state)
{
	set_tz("UTC");
	assert_true(check_corpus(*state, "plain_lines.txt", false) >= 250);
	assert_true(check_corpus(*state, "logfmt_lines.txt", true) >= 100);
}

/* BSD timestamps are local time (TZ), including DST. */
static void
test_bsd_local_time(void **state)
{
	static const struct pcase winter = { "Berlin, winter",
		IN("<13>Nov 21 10:00:00 h t: m"), PRI(13), .host = "h",
		.app = "t", .time = "2026-11-21T09:00:00Z", .msg = "m" };
	static const struct pcase summer = { "Berlin, summer",
		IN("<13>Jul  1 10:00:00 h t: m"),
		.recv = "2026-07-01T09:00:00Z", PRI(13), .host = "h",
		.app = "t", .time = "2026-07-01T08:00:00Z", .msg = "m" };
	static const struct pcase newyear = { "Berlin, new year",
		IN("<13>Jan  1 00:30:00 h t: m"),
		.recv = "2026-12-31T23:31:00Z", PRI(13), .host = "h",
		.app = "t", .time = "2026-12-31T23:30:00Z", .msg = "m" };

	set_tz("CET-1CEST,M3.5.0,M10.5.0/3");
	check_case(*state, &winter);
	check_case(*state, &summer);
	check_case(*state, &newyear);
	set_tz("UTC");
}

/* A BSD timestamp and receive time, in zone spec, and the UTC it gives. */
struct tzcase {
	const char *name, *stamp, *recv, *want;
};

static void
check_tz(struct fixture *f, const struct tzrule *tz, const struct tzcase *c)
{
	struct record r = { 0 };
	char in[128];
	size_t n;

	n = (size_t)snprintf(in, sizeof(in), "<13>%s h t: m", c->stamp);
	r.received_us = utc_us(c->recv);
	assert_int_equal(
	    parser_parse_tz(&r, in, n, PARSER_AUTO, tz, &f->sc), 0);
	if (!r.has_event_time || r.event_us != utc_us(c->want))
		fail_msg("%s: \"%s\" received %s: event_us %lld, want %s",
		    c->name, c->stamp, c->recv, (long long)r.event_us, c->want);
}

/*
 * tz=Europe/Berlin: the offset in force at the stamped time, across both
 * DST changes (2026-10-25 03:00 CEST -> 02:00 CET, 2027-03-28 02:00 CET ->
 * 03:00 CEST) and New Year, whatever the daemon's own TZ.
 */
static void
test_bsd_tz_berlin(void **state)
{
	static const struct tzcase cases[] = {
		{ "summer", "Jul  1 12:00:00", "2026-07-01T10:05:00Z",
		    "2026-07-01T10:00:00Z" },
		{ "winter", "Jan 15 12:00:00", "2027-01-15T11:05:00Z",
		    "2027-01-15T11:00:00Z" },
		{ "before spring forward", "Mar 28 01:59:59",
		    "2027-03-28T01:00:30Z", "2027-03-28T00:59:59Z" },
		{ "skipped hour: the offset before", "Mar 28 02:30:00",
		    "2027-03-28T01:31:00Z", "2027-03-28T01:30:00Z" },
		{ "after spring forward", "Mar 28 03:00:00",
		    "2027-03-28T01:00:10Z", "2027-03-28T01:00:00Z" },
		{ "stamped before, received after", "Mar 28 01:59:00",
		    "2027-03-28T01:05:00Z", "2027-03-28T00:59:00Z" },
		{ "before fall back", "Oct 25 01:59:59", "2026-10-25T00:00:00Z",
		    "2026-10-24T23:59:59Z" },
		{ "repeated hour: the first", "Oct 25 02:30:00",
		    "2026-10-25T01:40:00Z", "2026-10-25T00:30:00Z" },
		{ "after fall back", "Oct 25 03:00:00", "2026-10-25T02:00:05Z",
		    "2026-10-25T02:00:00Z" },
		{ "Dec 31 read on Jan 1 (local)", "Dec 31 23:59:50",
		    "2026-12-31T23:00:30Z", "2026-12-31T22:59:50Z" },
		{ "Jan 1 read on Dec 31 (local)", "Jan  1 00:00:10",
		    "2026-12-31T22:59:50Z", "2026-12-31T23:00:10Z" },
		{ "Dec read in late Jan", "Dec 20 08:00:00",
		    "2027-01-25T08:00:00Z", "2026-12-20T07:00:00Z" },
		{ "Jan read in late Dec", "Jan  3 08:00:00",
		    "2026-12-28T08:00:00Z", "2027-01-03T07:00:00Z" },
	};
	struct tzrule *tz;
	char err[256];
	size_t i;

	set_tz("America/New_York"); /* the daemon's zone plays no part */
	tz = tzrule_new("Europe/Berlin",
	    utc_us("2026-12-01T00:00:00Z") / 1000000, err, sizeof(err));
	if (tz == NULL)
		fail_msg("%s", err);
	assert_string_equal(getenv("TZ"), "America/New_York");
	assert_int_equal(
	    tzrule_offset(tz, utc_us("2026-07-01T00:00:00Z") / 1000000), 7200);
	assert_int_equal(
	    tzrule_offset(tz, utc_us("2026-10-25T00:59:59Z") / 1000000), 7200);
	assert_int_equal(
	    tzrule_offset(tz, utc_us("2026-10-25T01:00:00Z") / 1000000), 3600);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_tz(*state, tz, &cases[i]);
	tzrule_free(tz);
	set_tz("UTC");
}

/* Fixed offsets and UTC; names that are no zone are refused. */
static void
test_bsd_tz_fixed(void **state)
{
	static const struct {
		const char *spec;
		struct tzcase c;
	} cases[] = {
		{ "UTC",
		    { "utc", "Jul  1 12:00:00", "2026-07-01T12:01:00Z",
			"2026-07-01T12:00:00Z" } },
		{ "+05:30",
		    { "+05:30", "Jul  1 12:00:00", "2026-07-01T06:35:00Z",
			"2026-07-01T06:30:00Z" } },
		{ "-0300",
		    { "-0300", "Jan  1 00:30:00", "2027-01-01T03:31:00Z",
			"2027-01-01T03:30:00Z" } },
		{ "+14",
		    { "+14", "Dec 31 23:00:00", "2026-12-31T09:00:00Z",
			"2026-12-31T09:00:00Z" } },
	};
	static const char *const bad[] = { "Mars/Olympus", "../etc/passwd",
		"/etc/localtime", "+25:00", "+02:60", "", "Europe/", "UTC+1" };
	struct tzrule *tz;
	char err[256];
	size_t i;

	set_tz("Asia/Tokyo");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tz = tzrule_new(cases[i].spec, 1800000000, err, sizeof(err));
		if (tz == NULL)
			fail_msg("%s: %s", cases[i].spec, err);
		check_tz(*state, tz, &cases[i].c);
		tzrule_free(tz);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		tz = tzrule_new(bad[i], 1800000000, err, sizeof(err));
		if (tz != NULL)
			fail_msg("tz '%s' accepted", bad[i]);
		assert_non_null(strstr(err, "tz '"));
	}
	set_tz("UTC");
}

/* Appends s to the test buffer b (test helper, aborts on OOM). */
static void
put(struct buf *b, const char *s)
{
	assert_int_equal(buf_append(b, s, strlen(s)), 0);
}

/* The 10000-param SD message and, if want != NULL, its fields text. */
static void
huge_sd(struct buf *in, struct buf *want)
{
	char tmp[64];
	int i;

	put(in, "<13>1 - h a - - [big");
	if (want != NULL)
		put(want, "{\"big\": {");
	for (i = 0; i < 10000; i++) {
		snprintf(tmp, sizeof(tmp), " p%d=\"v\\\"%d\"", i, i);
		put(in, tmp);
		snprintf(tmp, sizeof(tmp), "%s\"p%d\": \"v\\\"%d\"",
		    i ? ", " : "", i, i);
		if (want != NULL)
			put(want, tmp);
	}
	put(in, "] end");
	if (want != NULL)
		assert_int_equal(buf_append(want, "}}", 3), 0); /* with NUL */
}

/*
 * 10000 params in one SD element.  Scratch is small from the first parse,
 * so it grows while the SD is converted (offsets, not pointers, must be
 * kept while building).
 */
static void
test_huge_sd(void **state)
{
	struct fixture *f = *state;
	struct buf in = { 0 }, want = { 0 };
	struct record r = { 0 };

	parse_copy(f, &r, "{\"msg\":\"a\\tb\"}", 14, PARSER_AUTO);
	check_text("small", "message", r.message, "a\tb", 0);
	huge_sd(&in, &want);
	parse_copy(f, &r, in.data, in.len, PARSER_AUTO);
	check_text("huge SD", "fields", r.fields, want.data, want.len - 1);
	check_text("huge SD", "message", r.message, "end", 0);
	check_text("huge SD", "host", r.host, "h", 0);
	assert_true(f->sc.cap > 16 * 1024);
	buf_free(&in);
	buf_free(&want);
}

/*
 * A logfmt line of more tokens than the scan keeps (LF_CACHE): the fields
 * are written from a second scan, and must be the same.
 */
static void
test_logfmt_many_tokens(void **state)
{
	struct fixture *f = *state;
	struct buf in = { 0 }, want = { 0 };
	struct record r = { 0 };
	char tmp[64];
	int i;

	put(&in, "level=info msg=\"m \\\"q\\\"\"");
	put(&want, "{\"level\": \"info\", \"msg\": \"m \\\"q\\\"\"");
	for (i = 0; i < 40; i++) {
		snprintf(
		    tmp, sizeof(tmp), i % 7 ? " k%d=v%d" : " flag%d", i, i);
		put(&in, tmp);
		snprintf(tmp, sizeof(tmp),
		    i % 7 ? ", \"k%d\": \"v%d\"" : ", \"flag%d\": true", i, i);
		put(&want, tmp);
	}
	assert_int_equal(buf_append(&want, "}", 2), 0); /* with NUL */
	parse_copy(f, &r, in.data, in.len, PARSER_AUTO);
	check_text("many", "fields", r.fields, want.data, want.len - 1);
	check_text("many", "message", r.message, "m \"q\"", 0);
	assert_int_equal(r.severity, 6);
	buf_free(&in);
	buf_free(&want);
}

/* Builds n nested arrays inside an object: {"a":[[...]]}. */
static void
nested(struct buf *b, int n)
{
	int i;

	buf_reset(b);
	put(b, "{\"a\":");
	for (i = 1; i < n; i++)
		put(b, "[");
	for (i = 1; i < n; i++)
		put(b, "]");
	put(b, "}");
}

/* 64 levels of nesting are JSON; 65 are plain text. */
static void
test_json_depth(void **state)
{
	struct fixture *f = *state;
	struct buf in = { 0 };
	struct record r = { 0 };

	nested(&in, 64);
	parse_copy(f, &r, in.data, in.len, PARSER_AUTO);
	assert_non_null(r.fields.ptr);
	assert_int_equal(r.fields.len, in.len);
	nested(&in, 65);
	parse_copy(f, &r, in.data, in.len, PARSER_AUTO);
	assert_null(r.fields.ptr);
	assert_ptr_equal(r.message.ptr, f->copy);
	nested(&in, 100000);
	parse_copy(f, &r, in.data, in.len, PARSER_AUTO);
	assert_null(r.fields.ptr);
	buf_free(&in);
}

static const struct {
	const struct pcase *cases;
	size_t n;
} tables[] = {
	{ rfc5424_cases, sizeof(rfc5424_cases) / sizeof(rfc5424_cases[0]) },
	{ rfc3164_cases, sizeof(rfc3164_cases) / sizeof(rfc3164_cases[0]) },
	{ plain_cases, sizeof(plain_cases) / sizeof(plain_cases[0]) },
	{ json_cases, sizeof(json_cases) / sizeof(json_cases[0]) },
	{ gelf_cases, sizeof(gelf_cases) / sizeof(gelf_cases[0]) },
	{ logfmt_cases, sizeof(logfmt_cases) / sizeof(logfmt_cases[0]) },
};

/* True if t points inside [lo, lo + n) (or is empty at its end). */
static int
within(struct text t, const char *lo, size_t n)
{
	return t.ptr >= lo && t.ptr + t.len <= lo + n;
}

/* Every column points into the input or scratch; ranges hold. */
static void
check_invariants(struct fixture *f, const struct record *r, size_t len)
{
	const struct text *cols[] = { &r->host, &r->app, &r->procid, &r->msgid,
		&r->message, &r->fields };
	size_t i;

	assert_non_null(r->message.ptr);
	assert_true(r->facility >= -1 && r->facility <= 23);
	assert_true(r->severity >= -1 && r->severity <= 7);
	for (i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		if (cols[i]->ptr == NULL) {
			assert_int_equal(cols[i]->len, 0);
			continue;
		}
		assert_true(within(*cols[i], f->copy, len) ||
		    within(*cols[i], f->sc.data, f->sc.len));
	}
}

/* Every prefix of every sample: no crash, no overread, sane columns. */
static void
test_prefixes(void **state)
{
	struct fixture *f = *state;
	struct record r = { 0 };
	const struct pcase *c;
	size_t t, i, len;

	set_tz("UTC");
	for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (i = 0; i < tables[t].n; i++) {
			c = &tables[t].cases[i];
			for (len = 0; len <= c->inlen; len++) {
				parse_copy(f, &r, c->in, len, PARSER_AUTO);
				check_invariants(f, &r, len);
			}
		}
	}
}

/* PARSER_RAW and a NULL message. */
static void
test_raw_and_null(void **state)
{
	struct fixture *f = *state;
	struct record r = { 0 };

	assert_int_equal(parser_parse(&r, NULL, 0, PARSER_AUTO, &f->sc), 0);
	assert_non_null(r.message.ptr);
	assert_int_equal(r.message.len, 0);
	assert_null(r.fields.ptr);
}

/* Writes n bytes to dir/parse-NNN; false on error. */
static int
write_sample(const char *dir, size_t num, const char *p, size_t n)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/parse-%03zu", dir, num);
	if ((fp = fopen(path, "wb")) == NULL)
		return 0;
	if (fwrite(p, 1, n, fp) != n) {
		fclose(fp);
		return 0;
	}
	return fclose(fp) == 0;
}

/*
 * Writes every table sample, the huge SD and the too-deep JSON to
 * dir/parse-NNN (seed corpus for the fuzzer).  Exit status 0 on success.
 */
static int
write_corpus(const char *dir)
{
	struct buf b = { 0 };
	size_t t, i, n = 0;
	int ok = 1;

	for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (i = 0; i < tables[t].n; i++)
			ok &= write_sample(dir, n++, tables[t].cases[i].in,
			    tables[t].cases[i].inlen);
	huge_sd(&b, NULL);
	ok &= write_sample(dir, n++, b.data, b.len);
	nested(&b, 65);
	ok &= write_sample(dir, n++, b.data, b.len);
	buf_free(&b);
	return ok ? 0 : 1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rfc5424, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rfc3164, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gelf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logfmt, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_logfmt_corpus, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_logfmt_many_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bsd_local_time, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bsd_tz_berlin, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bsd_tz_fixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_sd, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_json_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_raw_and_null, setup, teardown),
	};
	const char *dir = getenv("LOGSINK_WRITE_CORPUS");

	if (dir != NULL)
		return write_corpus(dir);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
