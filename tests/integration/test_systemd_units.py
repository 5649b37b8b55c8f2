"""Checks of the systemd units in systemd/ (no running systemd needed).

- systemd-analyze verify accepts both units, with ExecStart pointing at
  the built binary (verify insists that it exists);
- systemd-analyze security --offline=true rates the service's sandbox; the
  exposure is printed and must stay below 2.0 (it was 1.0 when written);
- the unit's stop timeout leaves the daemon time for its own
  shutdown-timeout, and the units' man: links name pages we ship.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

import pytest

import harness

UNIT_DIR = os.path.join(harness.REPO_ROOT, "systemd")
MAN_DIR = os.path.join(harness.REPO_ROOT, "docs", "man")
UNITS = ("logsinkd.service", "logsinkd.socket", "logsinkd-udp.socket")
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed")


def read_unit(name):
    with open(os.path.join(UNIT_DIR, name)) as f:
        return f.read()


def unit_settings(text):
    """{(section, key): [values]} of a unit file (comments skipped)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


@pytest.fixture
def unit_copies(tmp_path, logsinkd):
    """The units in a temp dir, ExecStart= on the built binary."""
    for name in UNITS:
        text = read_unit(name)
        if name.endswith(".service"):
            assert "ExecStart=/usr/bin/logsinkd " in text
            text = text.replace("/usr/bin/logsinkd",
                                os.path.abspath(logsinkd))
        (tmp_path / name).write_text(text)
    return tmp_path


def run(*args):
    return subprocess.run(list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120)


def test_verify_units(unit_copies):
    # --man=no: the systemd.socket(5) page that the socket unit links to
    # is not installed on minimal machines; our own pages are checked below.
    paths = [str(unit_copies / n) for n in UNITS]
    p = run("systemd-analyze", "verify", "--man=no", *paths)
    ours = [line for line in (p.stdout + p.stderr).splitlines()
            if "logsinkd" in line]
    assert p.returncode == 0 and not ours, (
        "systemd-analyze verify failed (rc %d):\n%s%s"
        % (p.returncode, p.stdout, p.stderr))


def test_verify_catches_a_broken_unit(unit_copies):
    """The check above would notice a bad key (guards the grep)."""
    path = unit_copies / "logsinkd.service"
    path.write_text(path.read_text().replace("Type=notify",
                                             "Type=notify\nNoSuchKey=1"))
    p = run("systemd-analyze", "verify", "--man=no", str(path))
    assert "NoSuchKey" in p.stdout + p.stderr


def test_security_exposure(unit_copies, capsys):
    p = run("systemd-analyze", "security", "--offline=true",
            "--no-pager", str(unit_copies / "logsinkd.service"))
    out = p.stdout + p.stderr
    m = re.search(r"Overall exposure level for logsinkd\.service: "
                  r"([0-9]+\.[0-9]+)", out)
    assert m, "no exposure figure in:\n" + out
    exposure = float(m.group(1))
    open_items = [line for line in out.splitlines()
                  if line.startswith("\u2717")]
    with capsys.disabled():
        print("\nsystemd-analyze security: logsinkd.service exposure %.1f; "
              "open items:\n  %s" % (exposure, "\n  ".join(
                  re.sub(r"\s{2,}", "  ", line) for line in open_items)))
    assert exposure < MAX_EXPOSURE, out


def test_service_settings():
    s = unit_settings(read_unit("logsinkd.service"))
    svc = lambda key: s.get(("Service", key), [None])[-1]  # noqa: E731
    assert svc("Type") == "notify"
    assert svc("NotifyAccess") == "main"
    assert svc("ExecStart") == "/usr/bin/logsinkd -c /etc/logsinkd/logsinkd.conf"
    assert svc("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert svc("User") == "logsink"
    assert svc("StateDirectory") == "logsinkd"
    assert svc("CapabilityBoundingSet") == ""
    assert svc("AmbientCapabilities") == ""
    assert ("Service", "IPAddressDeny") not in s
    assert s[("Install", "WantedBy")] == ["multi-user.target"]


def seconds(value):
    m = re.fullmatch(r"([0-9]+)(ms|s|min|m|h)?", value.strip())
    assert m, value
    mult = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600}
    return int(m.group(1)) * mult[m.group(2)]


def test_stop_timeout_exceeds_shutdown_timeout(logsinkd):
    """systemd must not SIGKILL a daemon still within shutdown-timeout."""
    p = harness.run_logsinkd("--help")
    m = re.search(r"--shutdown-timeout\s.*\(default: ([0-9a-z]+)\)",
                  p.stdout)
    assert m, p.output
    s = unit_settings(read_unit("logsinkd.service"))
    stop = seconds(s[("Service", "TimeoutStopSec")][-1])
    assert stop >= seconds(m.group(1)) + 10, (stop, m.group(1))


def test_socket_unit():
    s = unit_settings(read_unit("logsinkd.socket"))
    assert s[("Socket", "ListenStream")] == ["514"]
    assert s[("Socket", "Service")] == ["logsinkd.service"]
    assert s.get(("Socket", "Accept"), ["no"]) == ["no"]
    assert s[("Install", "WantedBy")] == ["sockets.target"]


def test_udp_socket_unit():
    s = unit_settings(read_unit("logsinkd-udp.socket"))
    assert s[("Socket", "ListenDatagram")] == ["514"]
    assert ("Socket", "ListenStream") not in s
    assert s[("Socket", "Service")] == ["logsinkd.service"]
    assert s[("Install", "WantedBy")] == ["sockets.target"]


def test_documentation_pages_exist():
    for name in UNITS:
        s = unit_settings(read_unit(name))
        for doc in " ".join(s[("Unit", "Documentation")]).split():
            m = re.fullmatch(r"man:([a-z_.]+)\(([0-9])\)", doc)
            assert m, doc
            if m.group(1).startswith("logsinkd"):
                page = os.path.join(MAN_DIR, "%s.%s" % m.groups())
                assert os.path.exists(page), (name, doc)


# --------------------------------------------------------------------------
# The sandbox, without a running systemd: trace the daemon through a
# session (start, lines stored, /metrics, SIGHUP, SIGTERM) and check that
# what it does stays within what logsinkd.service allows.


def syscall_groups():
    """{"@group": [entries]} from systemd-analyze syscall-filter."""
    p = run("systemd-analyze", "syscall-filter", "--no-pager")
    assert p.returncode == 0, p.stderr
    groups, cur = {}, None
    for line in p.stdout.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and cur is not None:
            item = line.strip()
            if item and not item.startswith("#"):
                cur.append(item)
        else:
            cur = None
    return groups


def expand(names, groups):
    out = set()
    for name in names:
        if name.startswith("@"):
            out |= expand(groups[name], groups)
        else:
            out.add(name)
    return out


def allowed_syscalls(unit_text, groups):
    """The net allow list of the unit's SystemCallFilter= lines."""
    allow, deny = set(), set()
    for value in unit_settings(unit_text)[("Service", "SystemCallFilter")]:
        if value.startswith("~"):
            deny |= expand(value[1:].split(), groups)
        else:
            allow |= expand(value.split(), groups)
    return allow - deny


def traced_daemon(strace_pid, binary):
    """The pid of the logsinkd that strace started, once it has exec'd
    (strace also forks short-lived children of its own to probe ptrace)."""
    try:
        with open("/proc/%d/task/%d/children" % (strace_pid,
                                                 strace_pid)) as f:
            pids = [int(c) for c in f.read().split()]
    except OSError:
        return None
    for pid in pids:
        try:
            if os.readlink("/proc/%d/exe" % pid) == binary:
                return pid
        except OSError:
            continue
    return None


class NotifySink(threading.Thread):
    """Stands in for systemd's NOTIFY_SOCKET; keeps what it receives."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages, self.running = [], True
        self.start()

    def run(self):
        while self.running:
            try:
                self.messages += self.sock.recv(4096).decode().split("\n")
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self.running = False
        self.join(5)
        self.sock.close()


def traced_session(logsinkd, pg, tmp_path):
    """Runs logsinkd under strace -f, as a Type=notify service with a
    watchdog; returns (trace lines, daemon log)."""
    trace = tmp_path / "strace.out"
    # The daemon may run as another user (below): the socket must be
    # reachable for it, as systemd's is.
    notify_dir = tempfile.mkdtemp(prefix="logsink-notify-")
    os.chmod(notify_dir, 0o755)
    notify_path = os.path.join(notify_dir, "notify")
    notify = NotifySink(notify_path)
    os.chmod(notify_path, 0o777)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path,
               WATCHDOG_USEC="1000000")
    env.pop("WATCHDOG_PID", None)
    log_path = tmp_path / "logsinkd.log"
    port, mport = harness.free_port(), harness.free_port()
    uport = harness.free_port()  # the UDP listener's (recvmmsg)
    # As root, run it as nobody (the unit's User= is never root; logsinkd
    # refuses root), so the trace shows what the service would do.
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    cmd = ["strace", "-f", "-qq", "-s", "128", "-o", str(trace)] + as_user + [
           os.path.abspath(logsinkd), "--db", pg.conninfo,
           "--listen", "127.0.0.1:%d" % port,
           "--listen", "127.0.0.1:%d proto=udp" % uport,
           "--metrics-listen", "127.0.0.1:%d" % mport,
           "--flush-interval-ms", "10"]
    pg.truncate()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    pid = None
    try:
        pid = harness.wait_for(
            lambda: traced_daemon(proc.pid, os.path.abspath(logsinkd)), 30,
            "strace to start logsinkd")
        harness.wait_for(lambda: harness.can_connect("127.0.0.1", port), 60,
                         "logsinkd to listen")
        harness.send_lines(port, harness.make_lines("sandbox", 100),
                           wait_close=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"<13>sandbox datagram", ("127.0.0.1", uport))
        harness.wait_for(lambda: pg.count() == 101, 60, "101 rows stored")
        assert harness.http_get(mport, "/metrics")[0] == 200
        os.kill(pid, signal.SIGHUP)
        harness.wait_for(lambda: "configuration reloaded"
                         in log_path.read_text(errors="replace"), 30,
                         "the reload")
        harness.wait_for(lambda: "WATCHDOG=1" in notify.messages, 30,
                         "a watchdog keep-alive")
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text(errors="replace")
    finally:
        # A killed strace leaves its tracee running: kill both.
        if pid is not None and proc.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        shutil.rmtree(notify_dir, ignore_errors=True)
    assert "READY=1" in notify.messages, notify.messages
    lines = trace.read_text(errors="replace").splitlines()
    # Only what the daemon does: from its execve on (systemd applies the
    # sandbox before that).
    start = next(i for i, line in enumerate(lines) if " execve(" in line)
    return lines[start:], log_path.read_text(errors="replace")


SYSCALL_RE = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")
# Paths the sandbox leaves readable: everything but /home, /root and
# /run/user (ProtectHome=), other processes' /proc entries and non-process
# /proc files (ProtectProc=invisible, ProcSubset=pid), and devices beyond
# the pseudo ones (PrivateDevices=).
PSEUDO_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                  "/dev/urandom", "/dev/tty", "/dev/log", "/dev/shm/")


@pytest.mark.skipif(shutil.which("strace") is None,
                    reason="strace is not installed")
def test_daemon_stays_within_the_sandbox(logsinkd, pg, tmp_path, capsys):
    if os.environ.get("LOGSINK_BUILD", "").rstrip("/").endswith("asan"):
        pytest.skip("the sanitizer runtime is not what the unit runs")
    allowed = allowed_syscalls(read_unit("logsinkd.service"),
                               syscall_groups())
    lines, log = traced_session(logsinkd, pg, tmp_path)
    used, problems = set(), []
    families = set()
    for line in lines:
        m = SYSCALL_RE.match(line)
        if not m:
            continue
        name = m.group(1)
        used.add(name)
        m = re.search(r"\bsocket\((AF_[A-Z0-9]+)", line)
        if m:
            families.add(m.group(1))
        if re.search(r"\b(mmap|mprotect|pkey_mprotect)\(", line) and \
                "PROT_WRITE" in line and "PROT_EXEC" in line:
            problems.append("W+X mapping (MemoryDenyWriteExecute=): " + line)
        m = re.search(r'\bopenat\([^"]*"([^"]+)", ([A-Z_|]+).*\) = \d+',
                      line)
        if m:
            path, flags = m.groups()
            if re.search(r"O_WRONLY|O_RDWR|O_CREAT", flags) and \
                    path != "/dev/null":
                problems.append("write outside the state directory "
                                "(ProtectSystem=strict): " + line)
            if path.startswith("/dev/") and not path.startswith(
                    PSEUDO_DEVICES):
                problems.append("device (PrivateDevices=): " + line)
            if path.startswith("/proc/") and not re.match(
                    r"/proc/(self|thread-self|\d+)(/|$)", path):
                problems.append("non-process /proc file (ProcSubset=pid): "
                                + line)
            if path.startswith(("/home/", "/root/", "/run/user/")):
                problems.append("home directory (ProtectHome=): " + line)
    refused = sorted(used - allowed)
    if refused:
        problems.append("system calls outside SystemCallFilter= (they "
                        "would fail with EPERM): %s" % refused)
    # AF_NETLINK: glibc's getaddrinfo(AI_ADDRCONFIG) probes with it and
    # falls back when RestrictAddressFamilies= refuses it.
    families.discard("AF_NETLINK")
    extra = families - {"AF_INET", "AF_INET6", "AF_UNIX"}
    if extra:
        problems.append("address families outside RestrictAddressFamilies="
                        ": %s" % sorted(extra))
    with capsys.disabled():
        print("\nsandbox check: %d distinct system calls, families %s"
              % (len(used), sorted(families)))
    assert not problems, "\n".join(problems) + "\n\ndaemon log:\n" + log
