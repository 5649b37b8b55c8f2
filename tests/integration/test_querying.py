"""Runs every SQL block of docs/querying.md against generated rows and
checks what each returns.

Each ```sql block of the page is preceded by <!-- query: NAME -->; CHECKS
below has one expectation per name (a block without one, or a check
without a block, fails).  psql variables (:'app') are replaced by quoted
values.  The expected rows come from a Python model of the rows inserted,
so the tests check the statements' meaning, not only that they run.
"""

import datetime
import os
import re

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest

import harness
from harness import run_logsinkd
from test_schema import explain, init_table, maintain_all

DOC = os.path.join(harness.REPO_ROOT, "docs", "querying.md")
BLOCK_RE = re.compile(r"<!-- query: ([a-z0-9_]+) -->\n```sql\n(.*?)```",
                      re.S)
UTC = datetime.timezone.utc


def doc_blocks():
    with open(DOC) as f:
        text = f.read()
    blocks = BLOCK_RE.findall(text)
    assert len(blocks) == text.count("```sql"), \
        "every ```sql block of %s needs a <!-- query: NAME --> line" % DOC
    names = [n for n, _ in blocks]
    assert len(set(names)) == len(names), "duplicate query names"
    return dict(blocks)


def statements(block, params):
    """The block's statements with psql variables replaced."""
    def var(m):
        assert m.group(1) in params, "no value for :'%s'" % m.group(1)
        return psycopg2.extensions.adapt(params[m.group(1)]) \
            .getquoted().decode()

    text = re.sub(r":'(\w+)'", var, block)
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def run_block(pg, name, params=None):
    """Runs the doc's block name; returns the rows of its last statement
    that returns rows."""
    rows = None
    conn = psycopg2.connect(pg.conninfo, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for stmt in statements(doc_blocks()[name], params or {}):
                cur.execute(stmt)
                if cur.description is not None:
                    rows = cur.fetchall()
    finally:
        conn.close()
    return rows


# --------------------------------------------------------------------------
# the generated rows and their model


class Row:
    def __init__(self, at, message, peer="10.0.0.1", host=None, app=None,
                 severity=None, fields=None):
        self.received_at, self.message = at, message
        self.peer, self.host, self.app = peer, host, app
        self.severity, self.fields = severity, fields


def make_rows(t0):
    """Rows around t0 (the database's now()), each at a distinct
    microsecond, none within a minute of a query's time bound."""
    m = datetime.timedelta(minutes=1)
    s = datetime.timedelta(seconds=1)
    at = t0 - 120 * m  # the incident
    rows = [
        # errors of the last 15 minutes, and near misses
        Row(t0 - 1 * m, "deadlock detected", "10.0.0.3", "db1", "pg", 3),
        Row(t0 - 5 * m, "could not write block", "10.0.0.3", "db1", "pg", 2),
        Row(t0 - 13 * m, "out of memory", "10.0.0.3", "db1", "pg", 3),
        Row(t0 - 2 * m, "kernel panic", "10.0.0.1", "web1", "kernel", 0),
        Row(t0 - 3 * m, "plain line error", "10.0.0.9", None, None, 3),
        Row(t0 - 1.5 * m, "disk 91% full", "10.0.0.1", "web1", "df", 4),
        Row(t0 - 20 * m, "old error", "10.0.0.3", "db1", "pg", 3),
        Row(t0 - 4 * m, "no severity", "10.0.0.2", "web2", "nginx"),
        # one app around an incident
        Row(at - 6 * m, "billing: before the window", "10.0.0.4", "app1",
            "billing", 6),
        Row(at - 4 * m, "billing: slow", "10.0.0.4", "app1", "billing", 4),
        Row(at, "billing: failed", "10.0.0.4", "app1", "billing", 3),
        Row(at + 4 * m + 59 * s, "billing: recovered", "10.0.0.4", "app1",
            "billing", 5),
        Row(at + 6 * m, "billing: after the window", "10.0.0.4", "app1",
            "billing", 6),
        Row(at + 1 * m, "search: unrelated", "10.0.0.5", "app2", "search",
            3),
        # JSON fields
        Row(t0 - 30 * m, "GET /pay 500", "10.0.0.2", "web2", "nginx", 6,
            {"user": "alice", "status": 500, "ms": 1500}),
        Row(t0 - 31 * m, "GET /pay 500 again", "10.0.0.2", "web2", "nginx",
            6, {"user": "alice", "status": 500, "ms": 900}),
        Row(t0 - 32 * m, "GET /pay 200", "10.0.0.2", "web2", "nginx", 6,
            {"user": "alice", "status": 200, "ms": "slow"}),
        Row(t0 - 33 * m, "GET /pay 500 bob", "10.0.0.2", "web2", "nginx", 6,
            {"user": "bob", "status": 500, "ms": 2500}),
        Row(t0 - 2 * 1440 * m, "GET /pay 500 old", "10.0.0.2", "web2",
            "nginx", 6, {"user": "alice", "status": 500}),
        Row(t0 - 34 * m, "no status", "10.0.0.2", "web2", "nginx", 6,
            {"user": "carol", "ms": 1001}),
        # text search
        Row(t0 - 10 * m, "upstream: Connection refused by 10.1.1.1",
            "10.0.0.1", "web1", "nginx", 3),
        Row(t0 - 130 * m, "connect: connection refused", "10.0.0.1",
            "web1", "app"),
        Row(t0 - 11 * m, "connection reset by peer", "10.0.0.1", "web1",
            "app"),
        Row(t0 - 40 * m, "Request timeout after 250 ms", "10.0.0.2",
            "web2", "app"),
        Row(t0 - 41 * m, "timeout after ms", "10.0.0.2", "web2", "app"),
        Row(t0 - 3 * 1440 * m, "timeout after 3000 ms", "10.0.0.2", "web2",
            "app"),
        # a sender whose clock is far ahead: the DEFAULT partition
        Row(t0 + 20 * 1440 * m, "clock ahead", "10.0.0.99", "future"),
    ]
    # tail -f: :'last' is t0 - 30 s, the overlap 10 s
    for off, text in ((45, "tail: before the overlap"),
                      (35, "tail: in the overlap"),
                      (20, "tail: new 1"), (5, "tail: new 2")):
        rows.append(Row(t0 - off * s, text, "10.0.0.6", "tailer", "t"))
    # top talkers: plain lines of various lengths
    for i in range(20):
        rows.append(Row(t0 - (45 + i / 10) * m, "x" * (10 + i), "10.0.0.1",
                        "web1", "app"))
    for i in range(7):
        rows.append(Row(t0 - (50 + i / 10) * m, "plain %d" % i, "10.0.0.7"))
    for i, r in enumerate(rows):
        r.received_at += datetime.timedelta(microseconds=i)
    return rows


class Model:
    def __init__(self, t0, rows):
        self.t0, self.rows = t0, rows

    def since(self, delta):
        return [r for r in self.rows if r.received_at > self.t0 - delta]

    @staticmethod
    def host_or_peer(r):
        return r.host if r.host is not None else r.peer


@pytest.fixture(scope="module")
def data(pg):
    """pg (from conftest: a cluster of this module, schema applied) with
    the generated rows; past days moved into partitions, and given their
    trigram indexes by the next maintain() calls."""
    t0 = pg.scalar("SELECT date_trunc('second', now())")
    rows = make_rows(t0)
    conn = psycopg2.connect(pg.conninfo, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO logs (received_at, peer, host, app, severity, "
                "message, fields) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(r.received_at, r.peer, r.host, r.app, r.severity,
                  r.message, psycopg2.extras.Json(r.fields)
                  if r.fields is not None else None) for r in rows])
            cur.execute("SELECT public.logs_maintain(3, 0)")
    finally:
        conn.close()
    maintain_all(pg, "public.logs")
    pg.query("ANALYZE logs")
    return Model(t0, rows)


def size_pretty(n):
    """pg_size_pretty() for the small sizes the tests make."""
    assert n < 10 * 1024
    return "%d bytes" % n


# --------------------------------------------------------------------------
# expectations, one per doc block: f(model, pg) -> (params, check(rows))

CHECKS = {}


def check(name):
    def register(f):
        CHECKS[name] = f
        return f
    return register


@check("errors_per_host")
def _errors_per_host(m, pg):
    per = {}
    for r in m.since(datetime.timedelta(minutes=15)):
        if r.severity is not None and r.severity <= 3:
            h = m.host_or_peer(r)
            n, last = per.get(h, (0, None))
            per[h] = (n + 1, max(last or r.received_at, r.received_at))
    want = sorted(((h, n, last) for h, (n, last) in per.items()),
                  key=lambda x: (-x[1], x[0]))
    assert want[0][:2] == ("db1", 3) and len(want) == 3  # the model's sanity

    def verify(rows):
        assert rows == want
    return {}, verify


@check("errors_recent")
def _errors_recent(m, pg):
    want = [(r.received_at, m.host_or_peer(r), r.app, r.severity, r.message)
            for r in sorted(m.since(datetime.timedelta(minutes=15)),
                            key=lambda r: r.received_at, reverse=True)
            if r.severity is not None and r.severity <= 3]
    assert len(want) == 6

    def verify(rows):
        assert rows == want
    return {}, verify


@check("app_incident")
def _app_incident(m, pg):
    at = m.t0 - datetime.timedelta(minutes=120)
    five = datetime.timedelta(minutes=5)
    want = [(r.received_at, r.host, r.severity, r.message)
            for r in sorted(m.rows, key=lambda r: r.received_at)
            if r.app == "billing" and at - five <= r.received_at <= at + five]
    assert [w[3] for w in want] == ["billing: slow", "billing: failed",
                                    "billing: recovered"]

    def verify(rows):
        assert rows == want
    return {"app": "billing", "at": at.isoformat()}, verify


@check("top_hosts")
def _top_hosts(m, pg):
    per = {}
    for r in m.since(datetime.timedelta(hours=1)):
        h = r.host if r.host is not None else "-"
        n, b = per.get(h, (0, 0))
        per[h] = (n + 1, b + len(r.message.encode()))
    want = sorted(((h, n, b, size_pretty(b)) for h, (n, b) in per.items()),
                  key=lambda x: (-x[1], x[0]))[:10]
    assert want[0][0] == "web1"

    def verify(rows):
        assert rows == want
    return {}, verify


@check("top_peers")
def _top_peers(m, pg):
    per = {}
    for r in m.since(datetime.timedelta(hours=1)):
        n, b = per.get(r.peer, (0, 0))
        per[r.peer] = (n + 1, b + len(r.message.encode()))

    def ip_key(p):
        return tuple(int(x) for x in p.split("."))
    want = sorted(((p, n, b) for p, (n, b) in per.items()),
                  key=lambda x: (-x[2], ip_key(x[0])))[:10]

    def verify(rows):
        assert rows == want
    return {}, verify


@check("json_contains")
def _json_contains(m, pg):
    want = [(r.received_at, r.host, r.message, r.fields)
            for r in sorted(m.since(datetime.timedelta(days=1)),
                            key=lambda r: r.received_at, reverse=True)
            if r.fields and r.fields.get("user") == "alice"
            and r.fields.get("status") == 500]
    assert [w[2] for w in want] == ["GET /pay 500", "GET /pay 500 again"]

    def verify(rows):
        assert rows == want
    return {}, verify


@check("json_group")
def _json_group(m, pg):
    per = {}
    for r in m.since(datetime.timedelta(hours=1)):
        if r.fields and "status" in r.fields:
            k = str(r.fields["status"])
            per[k] = per.get(k, 0) + 1
    want = sorted(per.items(), key=lambda x: (-x[1], x[0]))
    assert want == [("500", 3), ("200", 1)]

    def verify(rows):
        assert rows == want
    return {}, verify


@check("json_compare")
def _json_compare(m, pg):
    want = [(r.received_at, r.fields.get("user"), r.fields["ms"])
            for r in m.since(datetime.timedelta(hours=1))
            if r.fields and isinstance(r.fields.get("ms"), int)
            and r.fields["ms"] > 1000]
    want.sort(key=lambda x: -x[2])
    # "slow" does not match and does not fail the query
    assert [w[1] for w in want] == ["bob", "alice", "carol"]

    def verify(rows):
        assert rows == want
    return {}, verify


@check("text_ilike")
def _text_ilike(m, pg):
    want = [(r.received_at, r.host, r.message)
            for r in sorted(m.since(datetime.timedelta(days=1)),
                            key=lambda r: r.received_at, reverse=True)
            if "connection refused" in r.message.lower()]
    assert len(want) == 2

    def verify(rows):
        assert rows == want
    return {}, verify


@check("text_regex")
def _text_regex(m, pg):
    want = [(r.received_at, r.host, r.message)
            for r in sorted(m.since(datetime.timedelta(days=1)),
                            key=lambda r: r.received_at, reverse=True)
            if re.search(r"timeout after [0-9]+ ms", r.message)]
    assert [w[2] for w in want] == ["Request timeout after 250 ms"]

    def verify(rows):
        assert rows == want
    return {}, verify


@check("text_app")
def _text_app(m, pg):
    want = [(r.received_at, r.host, r.message)
            for r in sorted(m.since(datetime.timedelta(hours=1)),
                            key=lambda r: r.received_at, reverse=True)
            if r.app == "nginx" and "refused" in r.message.lower()]
    assert [w[2] for w in want] == ["upstream: Connection refused by "
                                    "10.1.1.1"]

    def verify(rows):
        assert rows == want
    return {"app": "nginx"}, verify


def _utc_midnight(pg):
    return pg.scalar("SELECT date_trunc('day', now(), 'UTC')")


@check("text_past")
def _text_past(m, pg):
    midnight = _utc_midnight(pg)
    want = [(r.received_at, r.host, r.message)
            for r in sorted(m.rows, key=lambda r: r.received_at,
                            reverse=True)
            if midnight - datetime.timedelta(days=7) <= r.received_at
            < midnight and re.search(r"timeout after [0-9]+ ms", r.message)]
    # The one of 3 days ago; the one of 40 minutes ago after 00:40 UTC.
    assert "timeout after 3000 ms" in [w[2] for w in want]

    def verify(rows):
        assert rows == want
    return {}, verify


@check("text_indexes")
def _text_indexes(m, pg):
    today = pg.scalar("SELECT (now() AT TIME ZONE 'UTC')::date")
    names = sorted(_expected_partitions(m, pg))
    past = {n for n in names if n != "logs_default"
            and n < "logs_p" + today.strftime("%Y%m%d")}
    assert past  # the model has rows 2 and 3 days old

    def verify(rows):
        assert [r[:2] for r in rows] == [
            (n, n + "_message_trgm" if n in past else None) for n in names]
        for r in rows:
            if r[1] is not None:
                assert re.match(r"^\d+ kB$", r[2]), r
            else:
                assert r[2] is None, r
    return {}, verify


@check("tail_poll")
def _tail_poll(m, pg):
    last = m.t0 - datetime.timedelta(seconds=30)
    want = [(r.received_at, r.peer, r.host, r.app, r.message)
            for r in sorted(m.rows, key=lambda r: r.received_at)
            if last - datetime.timedelta(seconds=10) < r.received_at
            <= m.t0 + datetime.timedelta(minutes=1)]
    # Not "clock ahead": it would move :'last' 20 days ahead.
    assert [w[4] for w in want] == ["tail: in the overlap", "tail: new 1",
                                    "tail: new 2"]

    def verify(rows):
        assert rows == want
    return {"last": last.isoformat()}, verify


@check("maintain")
def _maintain(m, pg):
    def verify(rows):
        assert len(rows) == 1
        assert rows[0][0].startswith(
            "public.logs: created 0 partition(s), dropped 0, moved 0 "
            "row(s)"), rows
    return {}, verify


def _expected_partitions(m, pg):
    today = pg.scalar("SELECT (now() AT TIME ZONE 'UTC')::date")
    days = {today + datetime.timedelta(days=i) for i in range(4)}
    days |= {r.received_at.astimezone(UTC).date() for r in m.rows
             if r.received_at.astimezone(UTC).date() < today}
    out = {"logs_default": "DEFAULT"}
    for d in days:
        out["logs_p%s" % d.strftime("%Y%m%d")] = (
            "FOR VALUES FROM ('%s 00:00:00+00') TO ('%s 00:00:00+00')"
            % (d, d + datetime.timedelta(days=1)))
    return out


@check("partitions")
def _partitions(m, pg):
    want = _expected_partitions(m, pg)

    def verify(rows):
        assert [r[0] for r in rows] == sorted(want)
        assert {r[0]: r[1] for r in rows} == want
        by_name = {r[0]: r for r in rows}
        assert by_name["logs_default"][2] == 1  # analysed: the future row
        assert all(re.match(r"^\d+ (bytes|kB|MB)$", r[3]) for r in rows)
    return {}, verify


@check("total_size")
def _total_size(m, pg):
    def verify(rows):
        assert len(rows) == 1 and re.match(r"^\d+ (kB|MB)$", rows[0][0])
    return {}, verify


@check("default_rows")
def _default_rows(m, pg):
    future = max(r.received_at for r in m.rows)

    def verify(rows):
        assert rows == [(1, future, future)]
    return {}, verify


@check("time_span")
def _time_span(m, pg):
    want = [(min(r.received_at for r in m.rows),
             max(r.received_at for r in m.rows))]

    def verify(rows):
        assert rows == want
    return {}, verify


@check("roles")
def _roles(m, pg):
    def verify(rows):
        got = pg.query(
            "SELECT r.rolname, g.rolname, r.rolcanlogin, "
            "has_table_privilege(r.rolname, 'public.logs', 'INSERT'), "
            "has_table_privilege(r.rolname, 'public.logs', 'SELECT') "
            "FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.member "
            "JOIN pg_roles g ON g.oid = a.roleid "
            "WHERE r.rolname IN ('logsinkd', 'alice') ORDER BY 1")
        assert got == [("alice", "logsink_reader", True, False, True),
                       ("logsinkd", "logsink_writer", True, True, False)]
    return {}, verify


# Blocks checked by tests of their own below (they change the schema).
OWN_TESTS = {"index_drop", "index_create", "upgrade_rename", "upgrade_copy"}


def test_every_block_has_a_check():
    names = set(doc_blocks())
    assert names == set(CHECKS) | OWN_TESTS, (
        "blocks without a check: %s; checks without a block: %s"
        % (sorted(names - set(CHECKS) - OWN_TESTS),
           sorted(set(CHECKS) | OWN_TESTS - names)))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_doc_query(data, pg, name):
    params, verify = CHECKS[name](data, pg)
    verify(run_block(pg, name, params))


@pytest.fixture(scope="module")
def big(pg):
    """public.big: 200k rows over the last 4 days, with rare rows that
    match the doc's literals; analysed."""
    init_table(pg, "public.big")
    pg.query("""
        INSERT INTO big (received_at, peer, host, app, severity, message,
                         fields)
        SELECT now() - g * interval '1728 ms', '10.0.0.1',
               'web-' || g % 50, 'app-' || g % 20,
               CASE WHEN g % 20 = 0 THEN 3 ELSE 6 END,
               'GET /item/' || g || ' took ' || g % 997 || ' ms'
                   || CASE WHEN g % 5000 = 0 THEN ' connection refused'
                           WHEN g % 7000 = 0 THEN ' timeout after 250 ms'
                           ELSE '' END,
               CASE WHEN g % 4000 = 0
                    THEN '{"user": "alice", "status": 500}'::jsonb
                    ELSE jsonb_build_object('user', 'u' || g % 1000,
                                            'status', 200) END
        FROM generate_series(1, 200000) g""")
    pg.query("SELECT public.big_maintain(3, 0)")
    maintain_all(pg, "public.big")
    pg.query("ANALYZE big")
    return pg


def test_doc_query_plans_use_the_indexes(big):
    """The doc's statements as written (on a 200k-row copy of the
    schema): every partition with enough rows to matter is searched with
    the index meant for the question, and old days are pruned.  Text
    searches use the trigram index of each past day's partition; today's
    has none."""
    pg = big
    t0 = pg.scalar("SELECT now()")
    today = "big_p" + pg.scalar(
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
    trgm = "{partition}_message_trgm"
    want = {"errors_per_host": "big_severity_time",
            "app_incident": "big_app_time",
            "json_contains": "big_fields_gin",
            "text_ilike": trgm,
            "text_regex": trgm,
            "text_past": trgm}
    params = {"app": "app-3",
              "at": (t0 - datetime.timedelta(hours=30)).isoformat()}
    sizes = dict(pg.query("SELECT tableoid::regclass::text, count(*) "
                          "FROM big GROUP BY 1"))
    for name, index in want.items():
        (stmt,) = statements(doc_blocks()[name], params)
        stmt = re.sub(r"\b(public\.)?logs\b", r"\1big", stmt)
        scans = explain(pg, stmt)
        scanned = {rel for _, rel, _ in scans}
        big_parts = {p for p in scanned if sizes.get(p, 0) > 10000}
        if name == "errors_per_host":
            # Only the last 15 minutes: the current day's partition (and
            # the previous one just after midnight), whatever its size.
            assert len(scanned & set(sizes)) <= 2, scans
            big_parts = scanned & set(sizes)
        if index == trgm:
            # Today's partition is read without one.
            assert not any(idx and idx.endswith("_message_trgm")
                           for _, rel, idx in scans if rel == today), scans
            big_parts.discard(today)
            if name == "text_past":
                assert today not in scanned, scans
        assert big_parts, (name, scans)
        # Each such partition is read through the question's index; the
        # planner may AND the time BRIN into the same bitmap (it did on
        # some days' data), but never scans the partition without it.
        for rel in big_parts:
            used = {idx for _, r, idx in scans if r == rel}
            assert index.format(partition=rel) in used, (name, rel, scans)
            assert used <= {index.format(partition=rel),
                            "big_time_brin"}, (name, rel, scans)


def test_index_cost_statements_drop_and_recreate_the_same_indexes(data, pg):
    q = ("SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index x "
         "JOIN pg_class c ON c.oid = x.indexrelid "
         "WHERE x.indrelid = 'public.logs'::regclass ORDER BY 1")
    nparts = pg.scalar("SELECT count(*) FROM pg_inherits "
                       "WHERE inhparent = 'public.logs'::regclass")
    trgm = ("SELECT c.relname FROM pg_index x JOIN pg_inherits i "
            "ON i.inhrelid = x.indrelid JOIN pg_class c "
            "ON c.oid = x.indexrelid WHERE i.inhparent = "
            "'public.logs'::regclass AND c.relname LIKE '%_message_trgm' "
            "ORDER BY 1")
    past = pg.query(trgm)
    assert past  # maintain() indexed the past days
    before = pg.query(q)
    assert len(before) == 5
    run_block(pg, "index_drop")
    assert pg.query(q) == []
    # The past days' trigram indexes are the partitions' own.
    assert pg.query("SELECT c.relname FROM pg_index x JOIN pg_inherits i "
                    "ON i.inhrelid = x.indrelid JOIN pg_class c "
                    "ON c.oid = x.indexrelid WHERE i.inhparent = "
                    "'public.logs'::regclass ORDER BY 1") == past
    run_block(pg, "index_create")
    assert pg.query(q) == before
    for name, _ in before:
        assert pg.scalar("SELECT count(*) FROM pg_inherits WHERE "
                         "inhparent = %s::regclass", ("public." + name,)) \
            == nparts


@pytest.fixture
def bare_pg(logsinkd):
    cluster = harness.PgCluster()
    try:
        cluster.init().start()
    except BaseException:
        cluster.destroy()
        raise
    yield cluster
    cluster.destroy()


def test_upgrade_recipe_for_a_pre_release_table(bare_pg):
    pg = bare_pg
    # The table as the first sql/001_logs.sql made it.
    pg.query("""
        CREATE TABLE public.logs (
            received_at timestamptz NOT NULL, peer inet, host text,
            app text, procid text, msgid text, facility smallint,
            severity smallint, event_time timestamptz,
            message text NOT NULL, fields jsonb);
        CREATE INDEX logs_received_at_brin ON public.logs
            USING brin (received_at);
        INSERT INTO public.logs (received_at, message, fields) VALUES
            (now(), 'today', '{"a": 1}'),
            (now() - interval '2 days', 'two days ago', NULL)""")
    p = run_logsinkd("--db", pg.conninfo, "--init-db",
                     timeout=harness.PG_TIMEOUT)
    assert p.returncode == 1 and "cannot be upgraded in place" in p.output

    run_block(pg, "upgrade_rename")
    harness.init_db(pg.conninfo)
    run_block(pg, "upgrade_copy")
    assert sorted(pg.query("SELECT message, fields FROM logs")) == [
        ("today", {"a": 1}), ("two days ago", None)]
    assert pg.scalar("SELECT count(*) FROM logs_default") == 0
    assert pg.scalar("SELECT to_regclass('public.logs_old') IS NULL")
