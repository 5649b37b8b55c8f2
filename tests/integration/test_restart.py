"""PostgreSQL restarts while lines are streaming: nothing may be lost
(delivery is at-least-once, so duplicates are reported but allowed)."""

import collections

from harness import Streamer, wait_for

TIMEOUT = 120
RESTARTS = 3


def test_pg_restart_mid_stream_loses_nothing(fresh_pg, daemon):
    pg = fresh_pg
    d = daemon("--reconnect-min-ms", 50, "--reconnect-max-ms", 1000,
               "--flush-interval-ms", 50, db=pg.conninfo)

    streamers = [Streamer(d.port, "r%d" % i, chunk=50, pause=0.02,
                          max_lines=200000) for i in range(4)]
    for s in streamers:
        s.start()
    try:
        # Mid-stream: rows are flowing into the database.  Several
        # restarts make it likely that one hits a COPY in flight.
        need = 2000
        for r in range(RESTARTS):
            wait_for(lambda: pg.count() >= need, TIMEOUT,
                     "%d rows before restart %d" % (need, r + 1))
            pg.restart("fast")
            need = pg.count() + 2000
        # The daemon reconnected and stores lines again.
        wait_for(lambda: pg.count() >= need, TIMEOUT,
                 "%d rows after the last restart" % need)
    finally:
        for s in streamers:
            s.stop()

    sent = [l for s in streamers for l in s.sent]
    assert len(set(sent)) == len(sent)
    sent_set = set(sent)

    def all_present():
        return pg.scalar("select count(distinct message) from logs") \
            >= len(sent_set)
    wait_for(all_present, TIMEOUT, "all %d sent lines stored" % len(sent))
    assert d.alive(), "logsinkd exited during the test"
    assert d.stop() == 0

    got = collections.Counter(pg.messages())
    missing = sent_set - set(got)
    extra = set(got) - sent_set
    dups = sum(n - 1 for n in got.values() if n > 1)
    assert not missing, (
        "%d of %d sent lines missing after a PostgreSQL restart (e.g. %r); "
        "%d duplicate rows" % (len(missing), len(sent), sorted(missing)[:5],
                               dups))
    assert not extra, "unexpected rows: %r" % sorted(extra)[:5]
    print("sent %d lines, stored %d rows, %d duplicates"
          % (len(sent), sum(got.values()), dups))
