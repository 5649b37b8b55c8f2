"""The seeded, randomized fault soak (engine and details: soak.py).

PostgreSQL runs in a network namespace of its own behind a veth pair;
logsinkd runs outside with spool-dir on a small tmpfs, one ack=commit and
one ack=spooled listener; four clients (two per listener) send unique
sequenced lines at a fixed rate, read "ok N", and on any error reconnect
and resend from their last ack.  A scheduler seeded from LOGSINK_SOAK_SEED
(random when unset; always printed) injects rounds of every fault kind,
shuffled, for LOGSINK_SOAK_SECONDS (at least one round):

- pg_immediate: pg_ctl stop -m immediate, down a few seconds, start;
- pg_freeze: every PostgreSQL process SIGSTOPped a few seconds, SIGCONT;
- pg_restart_fast: pg_ctl restart -m fast;
- pg_terminate: pg_terminate_backend() of the daemon's backends;
- daemon_sigterm / daemon_sigkill: logsinkd stopped so, restarted on the
  same spool;
- spool_full: the spool's tmpfs filled with a ballast file, later removed;
- network: a partition (nftables drop-all on the namespace's veth: real
  kernel drops), then 200 ms latency per direction with 5 % loss per
  direction, then healed.  The loss is real (nftables numgen drops on the
  veth); the latency is emulated by a userspace TCP relay on 127.0.0.1
  that is always in the daemon's path to PostgreSQL and holds each chunk
  200 ms while the fault is on, because this kernel has no sch_netem
  (tc netem is unavailable and modules cannot be loaded).

In about half of pg_immediate, pg_freeze and network (drawn from the seed)
logsinkd is also SIGTERMed or SIGKILLed and restarted halfway through.

While the database is away (stopped, frozen, partitioned) with room in
the spool, every ack=spooled stream must go on being acknowledged.  At the
end everything is healed and the clients drain; then for every stream: lost_acked = 0 (every acknowledged line stored), lost = 0 (every
sent line stored after resends), duplicates printed, public.logs_rejected
empty, and the sampled RSS and open fds of logsinkd within the bounds of
Soak.bounds() (RSS not checked under ASan, whose quarantine holds freed
memory).  A failure prints the seed and the schedule: rerun with
LOGSINK_SOAK_SEED=<seed> LOGSINK_SOAK_SECONDS=<s> to replay it.
"""

import os
import random
import shutil
import tempfile

import pytest

import harness
import soak

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason=(
    "the soak needs root: network namespaces, nftables, a tmpfs mount"))


def soak_seconds():
    env = os.environ.get("LOGSINK_SOAK_SECONDS")
    if env:
        return float(env)
    # One round of every fault takes about 70 s whatever this says; under
    # ASan/UBSan the suite runs the single round only.
    return 0 if soak.sanitized_build() else 60


@pytest.fixture
def workdir():
    """A directory the daemon (user nobody, when run as root) can reach:
    pytest's tmp_path lies below a 0700 directory."""
    path = tempfile.mkdtemp(prefix="logsink-soak-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_fault_soak(logsinkd, workdir, capsys):
    harness.need_tool(shutil.which("nft"), "nft", "nftables")
    harness.need_tool(shutil.which("ip"), "ip", "iproute2")
    env = os.environ.get("LOGSINK_SOAK_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(1 << 31)
    seconds = soak_seconds()
    with capsys.disabled():
        # batch-lines 50: at 800 lines/s most batches are sealed full,
        # between the spool's syncs (as at high rates), not by its tick.
        s, result = soak.run(seed, seconds, 200, workdir, batch_lines=50)
        print("\n[soak] schedule:\n" + s.schedule_text())
        for tag, st in sorted(result["streams"].items()):
            print("[soak] stream %s: %s" % (tag, " ".join(
                "%s=%s" % kv for kv in st.items())))
        print("[soak] " + soak.summary(result), flush=True)
    assert set(result["faults"]) == set(soak.KINDS)
    assert not result["errors"], (
        "soak failed (%s):\n  %s\nschedule:\n%s\n%s"
        % (s.replay_hint(), "\n  ".join(result["errors"]), s.schedule_text(),
           soak.summary(result)))
