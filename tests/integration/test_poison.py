"""Rows the database refuses: the batch is bisected, every good row is
stored once, each refused row lands in logs_rejected with its reason, and
the pipeline keeps flowing (no endless retry)."""

import harness


def test_check_constraint_rejects_go_to_dead_letter(fresh_pg, daemon):
    pg = fresh_pg
    pg.query("ALTER TABLE logs ADD CONSTRAINT no_bad "
             "CHECK (message NOT LIKE '%BAD%')")
    d = daemon("--batch-lines", 1000, "--flush-interval-ms", 50,

               db=pg.conninfo)
    bad = {7, 500, 501, 999, 1000, 2047}
    lines = ["line-%05d %s" % (i, "BAD" if i in bad else "ok")
             for i in range(3000)]
    harness.send_lines(d.port, lines, wait_close=True)
    good = [l for l in lines if "BAD" not in l]
    harness.wait_for(lambda: pg.count() == len(good) and
                     pg.scalar("select count(*) from logs_rejected")
                     == len(bad), 60, "good rows stored, bad ones rejected")
    assert sorted(pg.messages()) == sorted(good)
    rows = pg.query("select convert_from(raw, 'UTF8'), sqlstate, error, "
                    "peer, received_at is not null, copy_row, tls_subject "
                    "from logs_rejected order by 1")
    assert [r[0] for r in rows] == sorted(l for l in lines if "BAD" in l)
    for raw, sqlstate, error, peer, has_time, copy_row, subject in rows:
        assert sqlstate == "23514"
        assert "no_bad" in error
        assert peer == "127.0.0.1"
        assert subject is None  # plain TCP (test_tls.py: with TLS)
        assert has_time
        assert raw in copy_row
    # The pipeline keeps flowing after the rejects.
    harness.send_lines(d.port, ["after-1", "after-2"], wait_close=True)
    harness.wait_for(lambda: pg.count() == len(good) + 2, 60, "later lines")
    assert "isolating the rejected rows" in d.log()
    assert d.stop() == 0


def test_trigger_raise_and_bad_bytes(fresh_pg, daemon):
    """A user trigger that raises (SQLSTATE P0001) is a data error too;
    the refused row keeps its raw bytes."""
    pg = fresh_pg
    pg.query("""
        CREATE FUNCTION refuse_secret() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN
            IF NEW.message LIKE '%secret%' THEN
                RAISE EXCEPTION 'no secrets here';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_secret BEFORE INSERT ON logs
            FOR EACH ROW EXECUTE FUNCTION refuse_secret();
    """)
    d = daemon(db=pg.conninfo)
    harness.send_bytes(d.port, b"one\ntwo secret \\ tab\there\nthree\n",
                       wait_close=True)
    harness.wait_for(lambda: pg.scalar("select count(*) from logs_rejected")
                     == 1, 60, "the refused row")
    harness.wait_for(lambda: pg.count() == 2, 60, "the other rows")
    assert sorted(pg.messages()) == ["one", "three"]
    raw, sqlstate, error = pg.query(
        "select raw, sqlstate, error from logs_rejected")[0]
    assert bytes(raw) == b"two secret \\ tab\there"
    assert sqlstate == "P0001"
    assert error == "no secrets here"
    assert d.stop() == 0


def test_metrics_count_rejects(fresh_pg, daemon):
    pg = fresh_pg
    pg.query("ALTER TABLE logs ADD CONSTRAINT short CHECK "
             "(length(message) < 20)")
    mport = harness.free_port()
    d = daemon("--metrics-listen", "127.0.0.1:%d" % mport, db=pg.conninfo)
    harness.send_lines(d.port, ["short", "x" * 40, "also short"],
                       wait_close=True)
    harness.wait_for(lambda: pg.count() == 2, 60, "good rows")
    body = harness.metrics_text(mport)
    assert "logsink_lines_rejected_total 1" in body
    assert 'logsink_db_errors_total{sqlstate="23514"}' in body
    assert d.stop() == 0
