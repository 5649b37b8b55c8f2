"""pytest fixtures for the logsinkd integration tests (see harness.py)."""

import os
import pwd
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def logsinkd():
    path = harness.logsinkd_path()
    if not os.access(path, os.X_OK):
        pytest.fail("logsinkd binary not found at %s: build it first "
                    "(cmake -S . -B build && cmake --build build) or set "
                    "LOGSINKD" % path, pytrace=False)
    return path


def _new_cluster(stopped=False):
    pg = harness.PgCluster()
    try:
        pg.init().start()
        harness.init_db(pg.conninfo)
        if stopped:
            pg.stop("fast")
    except BaseException:
        pg.destroy()
        raise
    return pg


@pytest.fixture(scope="module")
def pg(logsinkd):
    """A running cluster with the schema applied, shared by a module.

    Tests that share it must not stop it; they truncate the table first.
    """
    cluster = _new_cluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def fresh_pg(logsinkd):
    """A running cluster of the test's own (it may stop/restart it)."""
    cluster = _new_cluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def stopped_pg(logsinkd):
    """A cluster of the test's own, initialised with the schema, then
    stopped."""
    cluster = _new_cluster(stopped=True)
    yield cluster
    cluster.destroy()


@pytest.fixture
def empty_table(pg):
    """The module's cluster (pg) with the logs table emptied first.  A
    module whose tests all start from an empty table says so with
    pytestmark = pytest.mark.usefixtures("empty_table")."""
    pg.truncate()


class DaemonFactory:
    """daemon(...) starts a logsinkd; all are stopped at teardown."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.daemons = []

    def __call__(self, *args, db=None, listen=True, ipv6=False,
                 ready_ports=None, start=True):
        """Starts logsinkd with args.

        db: conninfo passed as --db (None: no --db).
        listen: add --listen 127.0.0.1:<free port> (d.port).
        ipv6: also add --listen [::1]:<free port> (d.port6).
        ready_ports: [(host, port)] to poll instead of the above.
        """
        args = [str(a) for a in args]
        ports = list(ready_ports or [])
        port = port6 = None
        if listen:
            port = harness.free_port()
            args += ["--listen", "127.0.0.1:%d" % port]
            ports.append(("127.0.0.1", port))
        if ipv6:
            port6 = harness.free_port("::1")
            args += ["--listen", "[::1]:%d" % port6]
            ports.append(("::1", port6))
        if db is not None:
            args += ["--db", db]
        d = harness.Daemon(args, self.workdir,
                           "logsinkd-%d" % (len(self.daemons) + 1), ports)
        d.port, d.port6 = port, port6
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def logsink_artifacts(self):
        return [("logsinkd output (%s)" % d.log_path,
                 harness.tail_text(d.log_path)) for d in self.daemons]

    def cleanup(self):
        for d in self.daemons:
            try:
                d.stop(timeout=30)
            except AssertionError:
                d.kill()


@pytest.fixture
def daemon(tmp_path):
    factory = DaemonFactory(str(tmp_path))
    yield factory
    factory.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the daemon's output and the server log."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        artifacts = getattr(value, "logsink_artifacts", None)
        if callable(artifacts):
            try:
                for title, text in artifacts():
                    rep.sections.append((title, text))
            except Exception as e:  # never hide the real failure
                rep.sections.append(("artifacts", repr(e)))


@pytest.fixture
def spool_parent():
    """A directory the daemon's user (nobody, when the tests run as root)
    can create its spool in: pytest's tmp_path is private to root."""
    path = tempfile.mkdtemp(prefix="logsink-spool-")
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)
