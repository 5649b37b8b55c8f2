"""--init-db and the schema: day partitions, <table>_maintain(), versioned
migrations, roles, the connection check (SQLSTATE LS001) and the indexes
(checked with EXPLAIN on generated data)."""

import datetime
import io
import json
import os
import re
import subprocess
import threading

import psycopg2
import pytest

import harness

# The migrations in sql/: (version, file name), in order.
SQL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "..", "sql")
MIGRATIONS = sorted((int(f[:3]), f) for f in os.listdir(SQL_DIR)
                    if re.match(r"[0-9]{3}_.*[.]sql$", f))
from harness import make_lines, run_logsinkd, send_lines, wait_for

TIMEOUT = 120
COLUMNS = ("received_at, peer, host, app, procid, msgid, facility, "
           "severity, event_time, message, fields, tls_subject")
# The table's indexes (every partition has a copy).  The trigram index
# on message is not one of them: maintain() builds it on each partition
# whose day has ended (sql/005_trigram_per_partition.sql).
INDEXES = {
    "time_brin": "brin (received_at)",
    "host_time": "btree (host, received_at)",
    "app_time": "btree (app, received_at)",
    "severity_time": "btree (severity, received_at)",
    "fields_gin": "gin (fields jsonb_path_ops)",
}
TRIGRAM = "gin (message gin_trgm_ops)"


# --------------------------------------------------------------------------
# helpers


def build_dir():
    return os.environ.get("LOGSINK_BUILD",
                          os.path.join(harness.REPO_ROOT, "build"))


HELPER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "logsink/schema.h"
/* Prints the statements schema.c makes, for the tests. */
int main(int argc, char **argv)
{
	char *s = NULL;

	if (argc == 2 && strcmp(argv[1], "version") == 0) {
		printf("%d\n", schema_version());
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "check") == 0)
		s = schema_check_sql(argv[2]);
	else if (argc == 5 && strcmp(argv[1], "maintain") == 0)
		s = schema_maintain_sql(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (s == NULL)
		return 1;
	fputs(s, stdout);
	free(s);
	return 0;
}
"""


class SchemaSql:
    """The SQL that src/schema.c generates, from a helper program linked
    with the build's liblogsink_core.a and liblogsink_pure.a (the
    statements are not printed by the daemon, and must not be copied into
    the tests)."""

    def __init__(self, workdir):
        build = build_dir()
        cache = {}
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                m = re.match(r"^([A-Za-z_]+):[A-Z]+=(.*)$", line.strip())
                if m:
                    cache[m.group(1)] = m.group(2)
        cc = cache.get("CMAKE_C_COMPILER") or "cc"
        flags = []
        if cache.get("LOGSINK_SANITIZE", "OFF").upper() in ("ON", "1",
                                                             "TRUE"):
            flags = ["-fsanitize=address,undefined"]
        src = os.path.join(workdir, "schema_sql_helper.c")
        self.exe = os.path.join(workdir, "schema_sql_helper")
        with open(src, "w") as f:
            f.write(HELPER_C)

        def pkg(*args):
            return subprocess.run(["pkg-config"] + list(args),
                                  check=True, stdout=subprocess.PIPE,
                                  text=True).stdout.split()

        cmd = ([cc, "-std=c11", "-D_GNU_SOURCE"] + flags
               + ["-I", os.path.join(harness.REPO_ROOT, "include")]
               + pkg("--cflags", "libpq", "libevent", "libbsd-overlay")
               + [src, os.path.join(build, "liblogsink_core.a"),
                  os.path.join(build, "liblogsink_pure.a")]
               + pkg("--libs", "libevent", "libpq", "libbsd-overlay")
               + ["-lm", "-o", self.exe] + flags)
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        assert p.returncode == 0, "cannot build the SQL helper:\n%s\n%s" % (
            " ".join(cmd), p.stdout)

    def _run(self, *args):
        p = subprocess.run([self.exe] + [str(a) for a in args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        return p.returncode, p.stdout

    def check(self, table="public.logs"):
        rc, out = self._run("check", table)
        assert rc == 0, "schema_check_sql(%r) returned NULL" % table
        return out

    def maintain(self, table, days_ahead, retention_days):
        rc, out = self._run("maintain", table, days_ahead, retention_days)
        assert rc == 0
        return out

    def version(self):
        return int(self._run("version")[1])

    def check_rejects(self, table):
        return self._run("check", table)[0] != 0


@pytest.fixture(scope="session")
def sql(logsinkd, tmp_path_factory):
    return SchemaSql(str(tmp_path_factory.mktemp("schema-sql")))


def conninfo_as(pg, user):
    return pg.conninfo.replace("user=postgres", "user=%s" % user)


def connect_as(pg, user="postgres"):
    conn = psycopg2.connect(conninfo_as(pg, user), connect_timeout=10)
    conn.autocommit = True
    return conn


def run_as(pg, user, sql_text, params=None):
    """Runs sql_text as user; returns the rows (or None)."""
    conn = connect_as(pg, user)
    try:
        with conn.cursor() as cur:
            cur.execute(sql_text, params)
            return cur.fetchall() if cur.description is not None else None
    finally:
        conn.close()


def sql_error(pg, user, sql_text):
    """Runs sql_text as user, which must fail; returns the psycopg2
    error."""
    with pytest.raises(psycopg2.Error) as ei:
        run_as(pg, user, sql_text)
    return ei.value


def init_table(pg, table, user="postgres", expect_ok=True):
    p = run_logsinkd("--db", conninfo_as(pg, user), "--table", table,
                     "--init-db", timeout=harness.PG_TIMEOUT)
    if expect_ok:
        assert p.returncode == 0, "--init-db --table %s exited %d\n%s" % (
            table, p.returncode, p.output)
    return p


def partitions(pg, table="public.logs"):
    """{partition name: (from, to) or 'DEFAULT'}."""
    rows = pg.query(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass", (table,))
    out = {}
    for name, bound in rows:
        m = re.match(r"FOR VALUES FROM \('([^']*)'\) TO \('([^']*)'\)",
                     bound)
        out[name] = (m.group(1), m.group(2)) if m else bound
    return out


def utc_today(pg):
    return pg.scalar("SELECT (now() AT TIME ZONE 'UTC')::date")


def day_name(base, day):
    return "%s_p%s" % (base, day.strftime("%Y%m%d"))


def day_bounds(day):
    nxt = day + datetime.timedelta(days=1)
    return ("%s 00:00:00+00" % day.isoformat(),
            "%s 00:00:00+00" % nxt.isoformat())


def rows_per_partition(pg, table):
    return dict(pg.query("SELECT tableoid::regclass::text, count(*) "
                         "FROM %s GROUP BY 1" % table))


def trigram_indexes(pg, table="public.logs"):
    """{partition: {trigram index on it: its definition after USING}}
    for every partition of table."""
    out = {}
    for part, idx, dfn in pg.query(
            "SELECT c.relname, ic.relname, regexp_replace("
            "pg_get_indexdef(ic.oid), '^.* USING ', '') "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "LEFT JOIN (pg_index x JOIN pg_opclass o "
            "ON o.oid = x.indclass[0] AND o.opcname = 'gin_trgm_ops' "
            "JOIN pg_class ic ON ic.oid = x.indexrelid) "
            "ON x.indrelid = c.oid WHERE i.inhparent = %s::regclass",
            (table,)):
        out.setdefault(part, {})
        if idx is not None:
            out[part][idx] = dfn
    return out


@pytest.fixture(scope="module")
def roles(pg):
    """Login roles: w1 (logsink_writer), r1 (logsink_reader), nobody."""
    pg.query("CREATE ROLE w1 LOGIN IN ROLE logsink_writer; "
             "CREATE ROLE r1 LOGIN IN ROLE logsink_reader; "
             "CREATE ROLE nobody LOGIN")
    return {"writer": "w1", "reader": "r1", "none": "nobody"}


# --------------------------------------------------------------------------
# layout


def test_init_db_makes_a_day_partitioned_table(pg, sql):
    assert pg.scalar("SELECT relkind FROM pg_class "
                     "WHERE oid = 'public.logs'::regclass") == "p"
    assert pg.scalar("SELECT pg_get_partkeydef('public.logs'::regclass)") \
        == "RANGE (received_at)"
    assert pg.scalar(
        "SELECT partdefid::regclass::text FROM pg_partitioned_table "
        "WHERE partrelid = 'public.logs'::regclass") == "logs_default"
    # always_partitions.sql: the UTC day of the run and the next 3.
    ran = pg.scalar("SELECT (max(applied_at) AT TIME ZONE 'UTC')::date "
                    "FROM logs_schema_version")
    parts = partitions(pg)
    for i in range(4):
        day = ran + datetime.timedelta(days=i)
        assert parts.get(day_name("logs", day)) == day_bounds(day), parts
    assert parts["logs_default"] == "DEFAULT"

    cols = pg.query("SELECT attname FROM pg_attribute WHERE attrelid = "
                    "'public.logs'::regclass AND attnum > 0 "
                    "AND NOT attisdropped ORDER BY attnum")
    assert ", ".join(c[0] for c in cols) == COLUMNS

    assert pg.query("SELECT version, name FROM logs_schema_version "
                    "ORDER BY version") == MIGRATIONS
    assert sql.version() == MIGRATIONS[-1][0]
    assert pg.scalar("SELECT public.logs_schema_version()") == sql.version()


def test_indexes_exist_on_the_table_and_every_partition(pg):
    defs = dict(pg.query(
        "SELECT c.relname, regexp_replace(pg_get_indexdef(c.oid), "
        "'^.* USING ', '') FROM pg_index x JOIN pg_class c "
        "ON c.oid = x.indexrelid WHERE x.indrelid = 'public.logs'::regclass"))
    assert defs == {"logs_" + k: v for k, v in INDEXES.items()}
    # Every partition has one child of each.
    n = pg.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                  "'public.logs'::regclass")
    for name in defs:
        assert pg.scalar("SELECT count(*) FROM pg_inherits WHERE "
                         "inhparent = %s::regclass", (name,)) == n, name
    # No trigram index where rows arrive: today's partition, the coming
    # days' and the DEFAULT one (--init-db made no other).
    assert all(v == {} for v in trigram_indexes(pg).values()), \
        trigram_indexes(pg)


def test_maintain_function_is_a_pinned_security_definer(pg):
    row = pg.query(
        "SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner), "
        "pg_get_userbyid(c.relowner), "
        "has_function_privilege('public', p.oid, 'EXECUTE'), "
        "has_function_privilege('logsink_writer', p.oid, 'EXECUTE'), "
        "has_function_privilege('logsink_reader', p.oid, 'EXECUTE'), "
        "pg_get_function_result(p.oid), pg_get_function_arguments(p.oid) "
        "FROM pg_proc p, pg_class c "
        "WHERE p.oid = 'public.logs_maintain'::regproc "
        "AND c.oid = 'public.logs'::regclass")[0]
    (definer, config, fowner, towner, public, writer, reader, result,
     args) = row
    assert definer
    # As 003 set them; 005's CREATE OR REPLACE says them again.
    assert config == ["search_path=pg_catalog, pg_temp", "TimeZone=UTC",
                      "DateStyle=ISO, YMD", "lock_timeout=2s"]
    assert fowner == towner
    assert (public, writer, reader) == (False, True, False)
    assert result == "text"
    assert args == "days_ahead integer, retention_days integer"


# --------------------------------------------------------------------------
# migrations


def _snapshot(pg, table):
    name = table.split(".")[1]
    return {
        "versions": pg.query("SELECT * FROM %s_schema_version "
                             "ORDER BY version" % table),
        "partitions": partitions(pg, table),
        "indexes": pg.query("SELECT indexrelid::regclass::text FROM pg_index "
                            "WHERE indrelid = %s::regclass ORDER BY 1",
                            (table,)),
        "acl": pg.query("SELECT relacl::text FROM pg_class WHERE oid = "
                        "%s::regclass", (table,)),
        "functions": pg.query("SELECT proname, prosrc, proacl::text FROM "
                              "pg_proc WHERE proname LIKE %s ORDER BY 1",
                              (name + "\\_%",)),
    }


def test_init_db_again_changes_nothing(pg):
    init_table(pg, "public.again")
    before = _snapshot(pg, "public.again")
    p = init_table(pg, "public.again")
    assert "error" not in p.output.lower(), p.output
    assert _snapshot(pg, "public.again") == before


def test_newer_database_is_refused(pg, sql):
    init_table(pg, "public.newer")
    future = sql.version() + 1
    pg.query("INSERT INTO newer_schema_version (version, name, logsinkd) "
             "VALUES (%s, %s, '9.9')", (future, "%03d_future.sql" % future))
    before = _snapshot(pg, "public.newer")
    p = init_table(pg, "public.newer", expect_ok=False)
    assert p.returncode == 1
    assert ("database schema version %d is newer than this logsinkd (%d): "
            "upgrade logsinkd" % (future, sql.version())) in p.output, \
        p.output
    assert _snapshot(pg, "public.newer") == before


def test_only_missing_migrations_run_each_in_its_own_transaction(pg, sql):
    """A database at version 2 gets 003 only; a failing migration leaves
    no trace and no version row."""
    init_table(pg, "public.older")
    old = pg.query("SELECT version, applied_at FROM older_schema_version "
                   "WHERE version < 3 ORDER BY 1")
    pg.query("DELETE FROM older_schema_version WHERE version >= 3")
    e = sql_error(pg, "postgres", sql.check("public.older"))
    assert e.pgcode == "LS001"
    assert e.diag.message_primary == (
        "schema version 2 of table public.older is older than this "
        "logsinkd (%d): run logsinkd --init-db" % sql.version())

    # 003 creates older_maintain(), which still exists: it fails, and
    # nothing of it stays.
    p = init_table(pg, "public.older", expect_ok=False)
    assert p.returncode == 1
    assert "003_maintain.sql: function \"older_maintain\" already exists" \
        in p.output, p.output
    assert pg.scalar("SELECT max(version) FROM older_schema_version") == 2

    pg.query("DROP FUNCTION older_maintain(int, int)")
    init_table(pg, "public.older")
    assert pg.query("SELECT version, applied_at FROM older_schema_version "
                    "WHERE version < 3 ORDER BY 1") == old
    assert pg.scalar("SELECT max(version) FROM older_schema_version") == \
        sql.version()
    run_as(pg, "postgres", sql.check("public.older"))
    assert pg.scalar("SELECT has_function_privilege('logsink_writer', "
                     "'public.older_maintain(int, int)', 'EXECUTE')")


def test_pre_release_table_is_refused_with_a_way_out(pg):
    """A table made by the first sql/001_logs.sql (not partitioned, no
    version table): refused; the hint's recipe works."""
    pg.query("""
        CREATE TABLE public.prerel (
            received_at timestamptz NOT NULL, peer inet, host text,
            app text, procid text, msgid text, facility smallint,
            severity smallint, event_time timestamptz,
            message text NOT NULL, fields jsonb);
        CREATE INDEX prerel_received_at_brin ON public.prerel
            USING brin (received_at);
        INSERT INTO public.prerel (received_at, message)
            VALUES (now(), 'kept 1'), (now(), 'kept 2')""")
    p = init_table(pg, "public.prerel", expect_ok=False)
    assert p.returncode == 1
    assert ("table public.prerel exists but has no version table "
            "public.prerel_schema_version: it was made by a pre-release "
            "logsinkd or by hand, and cannot be upgraded in place; rename "
            "it (ALTER TABLE public.prerel RENAME TO prerel_old), run "
            "logsinkd --init-db again, then copy its rows: INSERT INTO "
            "public.prerel SELECT * FROM public.prerel_old") in p.output, \
        p.output
    assert pg.scalar("SELECT to_regclass('public.prerel_schema_version') "
                     "IS NULL")

    pg.query("ALTER TABLE public.prerel RENAME TO prerel_old")
    init_table(pg, "public.prerel")
    pg.query("INSERT INTO public.prerel SELECT * FROM public.prerel_old")
    assert sorted(pg.messages("public.prerel")) == ["kept 1", "kept 2"]


def test_table_names_init_db_cannot_use(pg, sql):
    name = "n" * 41
    p = init_table(pg, "public." + name, expect_ok=False)
    assert p.returncode == 1
    assert "table name '%s' is too long for --init-db: at most 40" % name \
        in p.output, p.output
    p = init_table(pg, "public.a$b$c", expect_ok=False)
    assert p.returncode == 1
    assert "more than one '$' is not supported" in p.output, p.output
    assert pg.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE "
                     "'nnnnnnnn%' OR relname LIKE 'a$b$c%'") == 0
    # Names the daemon cannot take make no SQL at all.
    assert sql.check_rejects("public.x'y")
    assert sql.check_rejects("nodot")
    # One '$' is fine, and the check's quoting copes with it.
    init_table(pg, "public.dollar$s")
    run_as(pg, "postgres", sql.check("public.dollar$s"))


def test_concurrent_init_db_runs_wait_for_each_other(pg):
    results = []

    def one():
        results.append(init_table(pg, "public.race", expect_ok=False))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert [p.returncode for p in results] == [0, 0, 0], \
        "\n".join(p.output for p in results)
    assert pg.query("SELECT version FROM race_schema_version "
                    "ORDER BY 1") == [(v,) for v, _ in MIGRATIONS]


# --------------------------------------------------------------------------
# maintain()


def maintain(pg, table, days_ahead, retention_days, user="postgres"):
    return run_as(pg, user, "SELECT %s_maintain(%%s, %%s)" % table,
                  (days_ahead, retention_days))[0][0]


def maintain_once(pg, table, days_ahead, retention_days):
    """maintain(), again while another run (the daemon's upkeep) has the
    table."""
    return wait_for(
        lambda: (lambda out: None if out.startswith("skipped:") else out)(
            maintain(pg, table, days_ahead, retention_days)),
        TIMEOUT, "%s_maintain() to run" % table)


def maintain_all(pg, table, days_ahead=3, retention_days=0):
    """maintain() until it leaves no past partition without its trigram
    index (it builds at most 3 per call); its summaries."""
    outs = []
    for _ in range(10):
        outs.append(maintain(pg, table, days_ahead, retention_days))
        if "left for the next call" not in outs[-1]:
            return outs
    raise AssertionError("trigram indexes still missing: %s" % outs)


def test_maintain_sql_is_the_call(sql):
    assert sql.maintain("public.logs", 3, 0) == \
        "SELECT public.logs_maintain(3, 0)"
    assert sql.maintain("logsink.Events", 7, 30) == \
        "SELECT logsink.Events_maintain(7, 30)"


def test_maintain_is_idempotent_and_creates_days_ahead(pg, sql):
    init_table(pg, "public.mt_ahead")
    run_as(pg, "postgres", sql.maintain("public.mt_ahead", 3, 0))
    before = partitions(pg, "public.mt_ahead")
    out = maintain(pg, "public.mt_ahead", 3, 0)
    assert out.startswith("public.mt_ahead: created 0 partition(s), "
                          "dropped 0,"), out
    assert partitions(pg, "public.mt_ahead") == before

    out = maintain(pg, "public.mt_ahead", 6, 0)
    today = utc_today(pg)
    parts = partitions(pg, "public.mt_ahead")
    for i in range(7):
        day = today + datetime.timedelta(days=i)
        assert parts[day_name("mt_ahead", day)] == day_bounds(day)
    assert len(parts) == 8  # 7 days and the default
    assert "created 3 partition(s) (mt_ahead_p" in out, out


def test_maintain_moves_rows_out_of_the_default_partition(pg):
    """Rows whose day had no partition wait in the DEFAULT partition;
    maintain() moves them when it creates their day (future days within
    days_ahead, and past days)."""
    t = "public.mt_move"
    init_table(pg, t)
    pg.query("INSERT INTO mt_move (received_at, message) "
             "SELECT now() + interval '10 days' + g * interval '1 s', "
             "'future ' || g FROM generate_series(1, 300) g")
    pg.query("INSERT INTO mt_move (received_at, message) "
             "SELECT date_trunc('day', now() - interval '5 days') "
             "+ g * interval '1 min', 'past ' || g "
             "FROM generate_series(0, 99) g")
    assert rows_per_partition(pg, t) == {"mt_move_default": 400}

    out = maintain(pg, t, 3, 0)
    past = pg.scalar("SELECT ((now() - interval '5 days') AT TIME ZONE "
                     "'UTC')::date")
    assert "created 1 partition(s) (%s)" % day_name("mt_move", past) in out
    assert "moved 100 row(s)" in out, out
    assert rows_per_partition(pg, t) == {
        "mt_move_default": 300, day_name("mt_move", past): 100}

    out = maintain(pg, t, 12, 0)
    assert "moved 300 row(s)" in out, out
    future = dict(pg.query(
        "SELECT tableoid::regclass::text, count(*) FROM mt_move "
        "WHERE message LIKE 'future%' GROUP BY 1"))
    assert "mt_move_default" not in future
    assert sum(future.values()) == 300
    # The moved rows are where their bounds say, and the indexes have them.
    assert pg.scalar("SELECT count(*) FROM mt_move_default") == 0
    assert pg.scalar("SELECT count(*) FROM mt_move WHERE message "
                     "ILIKE '%%past 4%%'") == 11
    assert partitions(pg, t)[day_name("mt_move", past)] == day_bounds(past)
    # Nothing is left behind: no stray CHECK constraints.
    assert pg.scalar("SELECT count(*) FROM pg_constraint c JOIN pg_inherits "
                     "i ON i.inhrelid = c.conrelid WHERE i.inhparent = "
                     "%s::regclass AND c.contype = 'c'", (t,)) == 0


def test_maintain_retention_drops_whole_days_only(pg):
    t = "public.mt_ret"
    init_table(pg, t)
    # Rows 1..6 days old (one per day, at noon UTC) and today's.
    pg.query("INSERT INTO mt_ret (received_at, message) "
             "SELECT date_trunc('day', now() AT TIME ZONE 'UTC') "
             "AT TIME ZONE 'UTC' - g * interval '1 day' + interval '12 h', "
             "'day -' || g FROM generate_series(1, 6) g")
    pg.query("INSERT INTO mt_ret (received_at, message) "
             "VALUES (now(), 'today')")
    maintain(pg, t, 1, 0)  # past days get their partitions
    # 6 past days, today and 3 more (--init-db), the default.
    assert len(partitions(pg, t)) == 6 + 4 + 1
    # A row older than the retention that sits in the DEFAULT partition
    # is deleted too.
    pg.query("ALTER TABLE mt_ret DETACH PARTITION %s"
             % day_name("mt_ret", utc_today(pg) - datetime.timedelta(6)))
    pg.query("INSERT INTO mt_ret (received_at, message) VALUES "
             "(now() - interval '6 days', 'stranded old')")

    out = maintain(pg, t, 1, 3)
    today = utc_today(pg)
    gone = [day_name("mt_ret", today - datetime.timedelta(d))
            for d in (5, 4)]
    assert "dropped 2 (%s)" % ", ".join(gone) in out, out
    assert "deleted 1 expired row(s)" in out, out
    # Ranges ending less than 3 days ago stay (days -3 .. -1 and today):
    # retention 3 keeps at least 3 days.
    kept = sorted(m for m in pg.messages(t))
    assert kept == ["day -1", "day -2", "day -3", "today"], kept
    assert maintain(pg, t, 1, 3).startswith(
        "public.mt_ret: created 0 partition(s), dropped 0,")


def _trgm_names(parts):
    return ", ".join(p + "_message_trgm" for p in parts)


def test_maintain_indexes_past_days_for_text_search_only(pg):
    """Partitions whose day has ended get a trigram index, newest first, 3
    per call; today's, the coming days' and the DEFAULT partition never
    do (rows arrive there: COPY stays fast).  A second call builds
    nothing."""
    t = "public.mt_trgm"
    init_table(pg, t)
    pg.query("INSERT INTO mt_trgm (received_at, message) "
             "SELECT date_trunc('day', now(), 'UTC') - d * interval '1 day' "
             "+ g * interval '1 min', 'day -' || d || ' line ' || g "
             "FROM generate_series(1, 5) d, generate_series(0, 99) g")
    pg.query("INSERT INTO mt_trgm (received_at, message) "
             "VALUES (now(), 'today')")
    today = utc_today(pg)
    past = [day_name("mt_trgm", today - datetime.timedelta(d))
            for d in range(1, 6)]

    # The call that makes the past days' partitions builds nothing: it
    # holds ACCESS EXCLUSIVE on the DEFAULT partition until it ends.
    out = maintain(pg, t, 3, 0)
    assert "created 5 partition(s)" in out, out
    assert out.endswith("built 0 trigram index(es), 5 past partition(s) "
                        "left for the next call"), out
    assert all(v == {} for v in trigram_indexes(pg, t).values())

    out = maintain(pg, t, 3, 0)
    assert out == ("public.mt_trgm: created 0 partition(s), dropped 0, "
                   "moved 0 row(s) out of the default partition, deleted 0 "
                   "expired row(s) from it, built 3 trigram index(es) (%s), "
                   "2 past partition(s) left for the next call"
                   % _trgm_names(past[:3])), out
    out = maintain(pg, t, 3, 0)
    assert out.endswith("built 2 trigram index(es) (%s)"
                        % _trgm_names(past[3:])), out
    # Idempotent.
    out = maintain(pg, t, 3, 0)
    assert out == ("public.mt_trgm: created 0 partition(s), dropped 0, "
                   "moved 0 row(s) out of the default partition, deleted 0 "
                   "expired row(s) from it, built 0 trigram index(es)"), out

    got = trigram_indexes(pg, t)
    assert got == {p: {p + "_message_trgm": TRIGRAM} if p in past else {}
                   for p in partitions(pg, t)}, got
    assert got[day_name("mt_trgm", today)] == {}
    assert got["mt_trgm_default"] == {}
    # Not children of an index of the table: the table has none.
    assert pg.scalar("SELECT count(*) FROM pg_index x JOIN pg_opclass o "
                     "ON o.oid = x.indclass[0] WHERE o.opcname = "
                     "'gin_trgm_ops' AND x.indrelid = %s::regclass",
                     (t,)) == 0
    assert pg.scalar("SELECT count(*) FROM mt_trgm WHERE message ILIKE "
                     "'%%-3 LINE 4%%'") == 11


def test_maintain_postpones_a_trigram_index_it_cannot_lock(pg):
    """A transaction still writing into a past day: that day's index
    waits lock_timeout (2 s) and is postponed to the next call; the other
    days are indexed, and the writer was not stopped for long."""
    t = "public.mt_trgm_lock"
    init_table(pg, t)
    pg.query("INSERT INTO mt_trgm_lock (received_at, message) "
             "SELECT date_trunc('day', now(), 'UTC') - d * interval '1 day' "
             "+ interval '1 h', 'day -' || d FROM generate_series(1, 2) d")
    maintain(pg, t, 3, 0)
    today = utc_today(pg)
    day1, day2 = (day_name("mt_trgm_lock", today - datetime.timedelta(d))
                  for d in (1, 2))
    holder = connect_as(pg)
    try:
        holder.autocommit = False
        with holder.cursor() as cur:
            cur.execute("INSERT INTO mt_trgm_lock (received_at, message) "
                        "VALUES (date_trunc('day', now(), 'UTC') "
                        "- interval '1 day' + interval '2 h', 'late')")
            out = maintain(pg, t, 3, 0)
        holder.commit()
    finally:
        holder.close()
    assert ("built 1 trigram index(es) (%s_message_trgm); indexing %s "
            "postponed: canceling statement due to lock timeout"
            % (day2, day1)) in out, out
    out = maintain(pg, t, 3, 0)
    assert out.endswith("built 1 trigram index(es) (%s_message_trgm)"
                        % day1), out
    assert sorted(m for m in pg.messages(t)) == ["day -1", "day -2", "late"]


def test_migration_5_keeps_the_past_days_trigram_indexes(pg):
    """A table of schema version 4 has the trigram index on the table,
    so on every partition.  Migration 5 drops it but keeps the copies of
    the past days' partitions (now theirs, renamed); the other indexes
    stay attached, none is rebuilt, and no row moves."""
    t = "public.up5"
    init_table(pg, t)
    pg.query("INSERT INTO up5 (received_at, message) "
             "SELECT now() - g * interval '1 hour', 'line ' || g "
             "FROM generate_series(0, 95) g")
    maintain(pg, t, 3, 0)  # the past days' partitions, not indexed yet
    # Back to version 4: the index as sql/002_indexes.sql made it.
    pg.query("CREATE INDEX up5_message_trgm ON up5 "
             "USING gin (message gin_trgm_ops); "
             "DELETE FROM up5_schema_version WHERE version >= 5")
    today = utc_today(pg)
    parts = partitions(pg, t)
    past = sorted(p for p in parts if p != "up5_default"
                  and p < day_name("up5", today))
    assert len(past) >= 3
    q_indexes = ("SELECT c.relname, ic.relname, x.indexrelid, "
                 "(SELECT pi.relname FROM pg_inherits h JOIN pg_class pi "
                 "ON pi.oid = h.inhparent WHERE h.inhrelid = x.indexrelid) "
                 "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                 "JOIN pg_index x ON x.indrelid = c.oid "
                 "JOIN pg_class ic ON ic.oid = x.indexrelid "
                 "WHERE i.inhparent = 'public.up5'::regclass")
    before = pg.query(q_indexes)
    rows = sorted(pg.query("SELECT tableoid::regclass::text, received_at, "
                           "message FROM up5"))

    init_table(pg, t)
    assert pg.scalar("SELECT max(version) FROM up5_schema_version") == \
        MIGRATIONS[-1][0]
    assert pg.scalar("SELECT to_regclass('public.up5_message_trgm') IS "
                     "NULL")
    assert trigram_indexes(pg, t) == {
        p: {p + "_message_trgm": TRIGRAM} if p in past else {}
        for p in parts}
    # The same index objects: the trigram ones of past days on their
    # own, the others attached to the table's indexes as before.
    want = set()
    for part, idx, oid, parent in before:
        if parent != "up5_message_trgm":
            want.add((part, idx, oid, parent))
        elif part in past:
            want.add((part, part + "_message_trgm", oid, None))
    assert set(pg.query(q_indexes)) == want
    assert sorted(pg.query("SELECT tableoid::regclass::text, received_at, "
                           "message FROM up5")) == rows
    assert partitions(pg, t) == parts
    assert pg.scalar("SELECT count(*) FROM pg_constraint c JOIN pg_inherits "
                     "i ON i.inhrelid = c.conrelid WHERE i.inhparent = "
                     "%s::regclass AND c.contype = 'c'", (t,)) == 0
    assert maintain(pg, t, 3, 0).endswith("built 0 trigram index(es)")


def test_migration_6_adds_tls_subject(pg):
    """A table of schema version 5 (no tls_subject column): --init-db adds
    it to the table and its dead-letter table; older rows have NULL."""
    t = "public.up6"
    init_table(pg, t)
    pg.query("INSERT INTO up6 (received_at, message) VALUES (now(), 'old')")
    pg.query("ALTER TABLE up6 DROP COLUMN tls_subject; "
             "ALTER TABLE up6_rejected DROP COLUMN tls_subject; "
             "DELETE FROM up6_schema_version WHERE version >= 6")
    init_table(pg, t)
    assert pg.scalar("SELECT max(version) FROM up6_schema_version") == \
        MIGRATIONS[-1][0]
    assert pg.query("SELECT message, tls_subject FROM up6") == [
        ("old", None)]
    assert pg.query("SELECT attrelid::regclass::text, atttypid::regtype::text "
                    "FROM pg_attribute WHERE attname = 'tls_subject' AND "
                    "attrelid IN ('public.up6'::regclass, "
                    "'public.up6_rejected'::regclass) ORDER BY 1") == [
        ("up6", "text"), ("up6_rejected", "text")]


def test_maintain_checks_its_arguments(pg):
    for args, text in (((-1, 0), "days_ahead must be 0..366, not -1"),
                       ((367, 0), "days_ahead must be 0..366, not 367"),
                       ((1, -2), "retention_days must be >= 0 (0: keep "
                                 "forever), not -2")):
        e = sql_error(pg, "postgres",
                      "SELECT public.logs_maintain(%d, %d)" % args)
        assert e.pgcode == "22023"
        assert e.diag.message_primary == text


def test_maintain_does_not_wait_long_for_locks(pg):
    """A reader holding the DEFAULT partition: creating a day is
    postponed after lock_timeout (2 s) instead of blocking; a concurrent
    maintain() returns at once."""
    t = "public.mt_lock"
    init_table(pg, t)
    holder = connect_as(pg)
    try:
        holder.autocommit = False
        with holder.cursor() as cur:
            cur.execute("SELECT count(*) FROM mt_lock_default")
            out = maintain(pg, t, 5, 0)
            assert "creating %s postponed: canceling statement due to " \
                "lock timeout" % day_name(
                    "mt_lock", utc_today(pg) + datetime.timedelta(4)) \
                in out, out
            assert "created 0 partition(s)" in out
            cur.execute("SELECT %s_maintain(5, 0)" % t)
            assert "created 2 partition(s)" in cur.fetchone()[0]
            # Another session now: the advisory lock is taken.
            assert maintain(pg, t, 5, 0) == \
                "skipped: another public.mt_lock_maintain() is running"
        holder.rollback()
    finally:
        holder.close()


def test_maintain_while_the_daemon_writes(pg, daemon):
    """Partitions created (with rows moved) and dropped while logsinkd
    COPYs into the table: no line is lost, no COPY fails."""
    pg.query("INSERT INTO logs (received_at, message) SELECT now() - "
             "g * interval '1 day', 'expired ' || g "
             "FROM generate_series(5, 9) g")
    d = daemon("--flush-interval-ms", 20, "--db-connections", 3,
               db=pg.conninfo)
    streamers = [harness.Streamer(d.port, "mw%d" % i, chunk=20)
                 for i in range(3)]
    for st in streamers:
        st.start()
    outs = []
    for days in range(4, 16):
        # Odd calls also drop the expired days (ACCESS EXCLUSIVE on logs).
        outs.append(maintain_once(pg, "public.logs", days,
                                  3 if days % 2 else 0))
    for st in streamers:
        st.stop()
    sent = [l for st in streamers for l in st.sent]
    assert len(sent) > 1000
    wait_for(lambda: pg.scalar("SELECT count(*) FROM logs WHERE message "
                               "LIKE 'mw%%'") >= len(sent), TIMEOUT,
             "%d streamed rows" % len(sent))
    assert d.stop() == 0
    got = [m for m in pg.messages() if m.startswith("mw")]
    assert sorted(got) == sorted(sent)
    assert "COPY of" not in d.log(), d.log()
    out = maintain_once(pg, "public.logs", 15, 3)
    assert out.startswith("public.logs: created 0 partition(s), dropped "
                          "0,"), (out, outs)
    assert pg.scalar("SELECT count(*) FROM logs WHERE message LIKE "
                     "'expired %%'") == 0
    assert any("dropped 5" in o or "moved 5" in o for o in outs), outs


# --------------------------------------------------------------------------
# roles


def test_writer_role_inserts_and_maintains_and_nothing_else(pg, roles):
    w = roles["writer"]
    conn = connect_as(pg, w)
    try:
        with conn.cursor() as cur:
            cur.copy_expert("COPY public.logs (%s) FROM STDIN" % COLUMNS,
                            _copy_data(["by writer 1", "by writer 2"]))
            cur.execute("INSERT INTO public.logs (received_at, message) "
                        "VALUES (now(), 'by writer 3')")
            cur.execute("SELECT public.logs_maintain(3, 0)")
            assert cur.fetchone()[0].startswith("public.logs: created")
    finally:
        conn.close()
    assert pg.scalar("SELECT count(*) FROM logs WHERE message LIKE "
                     "'by writer %%'") == 3
    for stmt in ("SELECT count(*) FROM public.logs",
                 "SELECT 1 FROM public.logs_default LIMIT 1",
                 "UPDATE public.logs SET message = 'x'",
                 "DELETE FROM public.logs",
                 "TRUNCATE public.logs",
                 "DROP TABLE public.logs",
                 "ALTER TABLE public.logs ADD COLUMN x int",
                 "DROP FUNCTION public.logs_maintain(int, int)",
                 "SELECT * FROM public.logs_schema_version"):
        e = sql_error(pg, w, stmt)
        assert e.pgcode == "42501", (stmt, e.pgcode, str(e))
    # The role itself, not just this login.
    privs = pg.query(
        "SELECT p, has_table_privilege('logsink_writer', 'public.logs', p) "
        "FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', "
        "'TRUNCATE', 'REFERENCES', 'TRIGGER']) p")
    assert [p for p, ok in privs if ok] == ["INSERT"]
    assert pg.scalar("SELECT rolcanlogin FROM pg_roles "
                     "WHERE rolname = 'logsink_writer'") is False


def test_reader_role_selects_only(pg, roles):
    r = roles["reader"]
    pg.query("INSERT INTO logs (received_at, message) "
             "VALUES (now(), 'for the reader')")
    assert run_as(pg, r, "SELECT count(*) FROM public.logs WHERE message = "
                  "'for the reader'") == [(1,)]
    for stmt in ("INSERT INTO public.logs (received_at, message) "
                 "VALUES (now(), 'x')",
                 "DELETE FROM public.logs",
                 "TRUNCATE public.logs",
                 "SELECT public.logs_maintain(3, 0)"):
        e = sql_error(pg, r, stmt)
        assert e.pgcode == "42501", (stmt, e.pgcode, str(e))
    privs = pg.query(
        "SELECT p, has_table_privilege('logsink_reader', 'public.logs', p) "
        "FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', "
        "'TRUNCATE', 'REFERENCES', 'TRIGGER']) p")
    assert [p for p, ok in privs if ok] == ["SELECT"]


def _copy_data(messages):
    """COPY text rows for COLUMNS, received now."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return io.StringIO("".join(
        "%s\t127.0.0.1\th\ta\t\\N\t\\N\t1\t6\t\\N\t%s\t{\"k\": 1}\t\\N\n"
        % (now, m) for m in messages))


def test_daemon_stores_lines_as_a_writer_login(pg, roles, daemon):
    d = daemon(db=conninfo_as(pg, roles["writer"]))
    lines = make_lines("as-writer", 300)
    send_lines(d.port, lines)
    wait_for(lambda: pg.scalar("SELECT count(*) FROM logs WHERE message "
                               "LIKE 'as-writer-%%'") >= 300, TIMEOUT,
             "300 rows written by the writer login")
    assert d.stop() == 0
    assert sorted(m for m in pg.messages() if m.startswith("as-writer-")) \
        == sorted(lines)


def test_daemon_without_insert_privilege_says_why(pg, roles, daemon):
    d = daemon("--reconnect-min-ms", 50, db=conninfo_as(pg, roles["none"]),
               start=False)
    try:
        d.start()
    except AssertionError:
        pass  # it may exit at once: nothing was received yet
    want = ("role nobody may not INSERT into public.logs: make it a member "
            "of logsink_writer (GRANT logsink_writer TO nobody)")
    wait_for(lambda: want in d.log(), TIMEOUT, "the reason in the log")


# --------------------------------------------------------------------------
# the connection check


def test_check_passes_for_owner_and_writer(pg, roles, sql):
    run_as(pg, "postgres", sql.check())
    run_as(pg, roles["writer"], sql.check())


@pytest.mark.parametrize("case", [
    "no table", "no schema", "no column", "no version function", "older",
    "newer", "reader", "no role", "no usage", "some columns"])
def test_check_fails_with_ls001_saying_what_to_do(pg, roles, sql, case):
    v = sql.version()
    t = "public.chk_" + case.replace(" ", "_")
    user = "postgres"
    if case not in ("no table", "no schema"):
        init_table(pg, t)
    if case == "no table":
        want = "table %s does not exist: run logsinkd --init-db" % t
    elif case == "no schema":
        t = "nowhere.logs"
        want = "table nowhere.logs does not exist: run logsinkd --init-db"
    elif case == "no column":
        pg.query("ALTER TABLE %s DROP COLUMN fields, DROP COLUMN msgid" % t)
        want = ("table %s lacks column(s) msgid, fields: run logsinkd "
                "--init-db" % t)
    elif case == "no version function":
        pg.query("DROP FUNCTION %s_schema_version()" % t)
        want = ("table %s has no schema version (no function "
                "%s_schema_version()): it was not made by logsinkd "
                "--init-db; run logsinkd --init-db" % (t, t))
    elif case == "older":
        pg.query("DELETE FROM %s_schema_version WHERE version = %d" % (t, v))
        want = ("schema version %d of table %s is older than this logsinkd "
                "(%d): run logsinkd --init-db" % (v - 1, t, v))
    elif case == "newer":
        pg.query("INSERT INTO %s_schema_version (version, name, logsinkd) "
                 "VALUES (%d, 'x', 'y')" % (t, v + 2))
        want = ("database schema version %d is newer than this logsinkd "
                "(%d): upgrade logsinkd" % (v + 2, v))
    elif case in ("reader", "no role"):
        user = roles["reader" if case == "reader" else "none"]
        want = ("role %s may not INSERT into %s: make it a member of "
                "logsink_writer (GRANT logsink_writer TO %s)"
                % (user, t, user))
    elif case == "some columns":
        user = roles["none"]
        pg.query("GRANT INSERT (received_at, message) ON %s TO nobody" % t)
        want = ("role nobody may not INSERT into %s (columns peer, host, "
                "app, procid, msgid, facility, severity, event_time, "
                "fields, tls_subject): make it a member of logsink_writer "
                "(GRANT logsink_writer TO nobody)" % t)
    elif case == "no usage":
        user = roles["writer"]
        pg.query("CREATE SCHEMA closed")
        init_table(pg, "closed.logs")
        pg.query("REVOKE USAGE ON SCHEMA closed FROM logsink_writer")
        t = "closed.logs"
        want = ("role w1 may not use schema closed: make it a member of "
                "logsink_writer (GRANT logsink_writer TO w1)")
    e = sql_error(pg, user, sql.check(t))
    assert e.pgcode == "LS001", (e.pgcode, str(e))
    assert e.diag.message_primary == want


def test_check_sees_unquoted_names_as_postgresql_does(pg, sql):
    """The config allows upper case; unquoted SQL folds it."""
    init_table(pg, "Mixed.CaseLogs")
    assert pg.scalar("SELECT count(*) FROM mixed.caselogs") == 0
    run_as(pg, "postgres", sql.check("Mixed.CaseLogs"))
    assert "created 0 partition(s)" in maintain(pg, "Mixed.CaseLogs", 3, 0)


# --------------------------------------------------------------------------
# --init-db without CREATEROLE, in a cluster of its own


@pytest.fixture
def bare_pg(logsinkd):
    """A running cluster without the schema."""
    cluster = harness.PgCluster()
    try:
        cluster.init().start()
    except BaseException:
        cluster.destroy()
        raise
    yield cluster
    cluster.destroy()


def test_init_db_without_createrole_skips_roles_with_a_notice(bare_pg, sql):
    pg = bare_pg
    pg.query("CREATE ROLE owner LOGIN; "
             "GRANT CREATE ON DATABASE postgres TO owner")
    # Nothing yet: the check says so.
    e = sql_error(pg, "owner", sql.check("app.logs"))
    assert (e.pgcode, e.diag.message_primary) == (
        "LS001", "table app.logs does not exist: run logsinkd --init-db")

    p = init_table(pg, "app.logs", user="owner")
    for role in ("logsink_writer", "logsink_reader"):
        assert ("NOTICE:  role %s not created: owner may not create roles "
                "(needs CREATEROLE); grants to it skipped. Have a DBA run: "
                "CREATE ROLE %s NOLOGIN; then run logsinkd --init-db again"
                % (role, role)) in p.output, p.output
    assert pg.scalar("SELECT count(*) FROM pg_roles "
                     "WHERE rolname LIKE 'logsink%%'") == 0
    assert pg.scalar("SELECT pg_get_userbyid(relowner) FROM pg_class "
                     "WHERE oid = 'app.logs'::regclass") == "owner"
    run_as(pg, "owner", sql.check("app.logs"))
    assert "created 0 partition(s)" in maintain(pg, "app.logs", 3, 0,
                                                user="owner")

    # A DBA makes the roles; the owner's next --init-db grants to them.
    pg.query("CREATE ROLE logsink_writer NOLOGIN; "
             "CREATE ROLE logsink_reader NOLOGIN; "
             "CREATE ROLE w2 LOGIN IN ROLE logsink_writer")
    p = init_table(pg, "app.logs", user="owner")
    assert "NOTICE" not in p.output, p.output
    run_as(pg, "w2", sql.check("app.logs"))
    assert "created 0 partition(s)" in maintain(pg, "app.logs", 3, 0,
                                                user="w2")


# --------------------------------------------------------------------------
# indexes, checked with EXPLAIN


@pytest.fixture(scope="module")
def explain_data(pg):
    """public.ex: 200k rows over the last 4 days (5% errors, 50 hosts, 20
    apps, a rare word in 40 messages), moved into day partitions by
    maintain(), the past days' trigram indexes built by the next calls
    (as logsinkd's hourly ones would), analysed."""
    init_table(pg, "public.ex")
    pg.query("""
        INSERT INTO ex (received_at, peer, host, app, severity, message,
                        fields)
        SELECT now() - g * interval '1728 ms',
               '10.0.0.1', 'web-' || g % 50, 'app-' || g % 20,
               CASE WHEN g % 20 = 0 THEN 3 ELSE 6 END,
               'GET /item/' || g || ' took ' || g % 997 || ' ms'
                   || CASE WHEN g % 5000 = 0 THEN ' zanzibar' ELSE '' END,
               jsonb_build_object('user', 'u' || g % 1000,
                                  'status', CASE WHEN g % 50 = 0 THEN 500
                                                 ELSE 200 END)
        FROM generate_series(1, 200000) g""")
    maintain(pg, "public.ex", 3, 0)
    maintain_all(pg, "public.ex")
    pg.query("ANALYZE ex")
    assert pg.scalar("SELECT count(*) FROM ex_default") == 0
    return pg


def explain(pg, query):
    """The scans of query's plan: [(node type, relation, parent index)];
    a partition's index is reported by its parent index name."""
    parent_index = dict(pg.query(
        "SELECT c.relname, p.relname FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE c.relkind = 'i'"))
    plan = pg.scalar("EXPLAIN (FORMAT JSON) " + query)
    if isinstance(plan, str):
        plan = json.loads(plan)
    scans = []

    def walk(node, rel=None):
        kind = node["Node Type"]
        rel = node.get("Relation Name", rel)
        if "Index Name" in node:
            scans.append((kind, rel, parent_index.get(node["Index Name"],
                                                      node["Index Name"])))
        elif "Relation Name" in node and kind != "Bitmap Heap Scan":
            scans.append((kind, rel, None))
        bitmap = kind in ("Bitmap Heap Scan", "BitmapAnd", "BitmapOr")
        for child in node.get("Plans", []):
            walk(child, rel if bitmap else None)

    walk(plan[0]["Plan"])
    return scans


def _relations(scans):
    return {rel for _, rel, _ in scans if rel is not None}


def _day_partition(pg, expr):
    return day_name("ex", pg.scalar("SELECT ((%s) AT TIME ZONE 'UTC')::date"
                                    % expr))


def test_explain_time_range_prunes_to_one_day(explain_data):
    pg = explain_data
    day = pg.scalar("SELECT ((now() - interval '2 days') AT TIME ZONE "
                    "'UTC')::date")
    lo, hi = day_bounds(day)
    scans = explain(pg, "SELECT count(*) FROM ex WHERE received_at >= "
                    "'%s' AND received_at < timestamptz '%s' - interval '20 hours'"
                    % (lo, hi))
    assert _relations(scans) == {day_name("ex", day)}, scans


def test_explain_recent_errors_use_severity_index(explain_data):
    pg = explain_data
    scans = explain(pg, "SELECT host, count(*) FROM ex WHERE received_at > "
                    "now() - interval '15 minutes' AND severity <= 3 "
                    "GROUP BY host")
    now_part = _day_partition(pg, "now()")
    hits = [s for s in scans if s[1] == now_part]
    assert hits and all(s[2] == "ex_severity_time" for s in hits), scans
    # Older days are pruned (at executor start-up: now() is stable).
    older = {day_name("ex", utc_today(pg) - datetime.timedelta(d))
             for d in range(2, 6)}
    assert not _relations(scans) & older, scans


def test_explain_host_over_time_uses_host_index(explain_data):
    pg = explain_data
    scans = explain(pg, "SELECT received_at, message FROM ex WHERE host = "
                    "'web-7' AND received_at >= now() - interval '1 day 2h' "
                    "AND received_at < now() - interval '1 day'")
    day_parts = {_day_partition(pg, "now() - interval '1 day 2h'"),
                 _day_partition(pg, "now() - interval '1 day'")}
    hits = [s for s in scans if s[1] in day_parts]
    assert hits and all(s[2] == "ex_host_time" for s in hits), scans


def test_explain_app_around_an_incident_uses_app_index(explain_data):
    pg = explain_data
    scans = explain(pg, "SELECT received_at, message FROM ex WHERE app = "
                    "'app-3' AND received_at BETWEEN now() - interval '30h' "
                    "- interval '5 min' AND now() - interval '30h' "
                    "+ interval '5 min'")
    hits = [s for s in scans if s[2] is not None]
    assert hits and all(s[2] == "ex_app_time" for s in hits), scans
    assert len(_relations(scans)) <= 2, scans


def _big_partitions(pg):
    """Partitions of ex with enough rows that an index beats a scan (the
    current day's may have a few minutes' worth only)."""
    parts = {r for (r,) in pg.query(
        "SELECT tableoid::regclass::text FROM ex GROUP BY 1 "
        "HAVING count(*) > 10000")}
    assert len(parts) >= 3
    return parts


def test_explain_json_containment_uses_fields_gin(explain_data):
    pg = explain_data
    scans = explain(pg, "SELECT count(*) FROM ex WHERE fields @> "
                    "'{\"user\": \"u42\", \"status\": 500}'")
    data_parts = _big_partitions(pg)
    used = {rel for kind, rel, idx in scans if idx == "ex_fields_gin"}
    assert data_parts <= used, scans


TEXT_SEARCHES = ("message ILIKE '%zanzibar%'", "message ~ 'zan[z]ibar$'")


def test_explain_substring_and_regex_on_past_days_use_their_trigram_index(
        explain_data):
    """Searches restricted to past days: each of those partitions is
    searched with its own trigram index; today's is pruned."""
    pg = explain_data
    today = _day_partition(pg, "now()")
    past = _big_partitions(pg) - {today}
    assert len(past) >= 3
    assert all(trigram_indexes(pg, "public.ex")[p] ==
               {p + "_message_trgm": TRIGRAM} for p in past)
    for cond in TEXT_SEARCHES:
        scans = explain(pg, "SELECT received_at, message FROM ex WHERE "
                        + cond + " AND received_at < "
                        "date_trunc('day', now(), 'UTC')")
        used = {rel for kind, rel, idx in scans
                if idx == "%s_message_trgm" % rel}
        assert past <= used, (cond, scans)
        assert today not in _relations(scans), (cond, scans)
    assert pg.scalar("SELECT count(*) FROM ex WHERE message ILIKE "
                     "'%%ZANZIBAR%%' AND received_at < "
                     "date_trunc('day', now(), 'UTC')") == \
        pg.scalar("SELECT count(*) FROM generate_series(1, 200000) g "
                  "WHERE g % 5000 = 0 AND now() - g * interval '1728 ms' "
                  "< date_trunc('day', now(), 'UTC')")


def test_explain_text_search_today_has_no_trigram_index(explain_data):
    """Today's partition has no trigram index (COPY writes there): a
    search of today reads it without one, and finds the rows."""
    pg = explain_data
    today = _day_partition(pg, "now()")
    assert trigram_indexes(pg, "public.ex")[today] == {}
    for cond in TEXT_SEARCHES:
        scans = explain(pg, "SELECT received_at, message FROM ex WHERE "
                        + cond + " AND received_at >= "
                        "date_trunc('day', now(), 'UTC')")
        assert today in _relations(scans), (cond, scans)
        assert not any(idx and idx.endswith("_message_trgm")
                       for _, _, idx in scans), (cond, scans)
    assert pg.scalar("SELECT count(*) FROM ex WHERE message ILIKE "
                     "'%%ZANZIBAR%%'") == 40
