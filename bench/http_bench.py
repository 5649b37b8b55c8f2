"""bench/http.sh's driver: records/s, daemon CPU per record and the
latency from send to answer of logsinkd's HTTP ingest (POST /ingest,
NDJSON, optionally gzip; POST /v1/logs, OTLP protobuf and JSON bodies
from bench/otlp/) next to the TCP path (loadgen --ack against an
ack=commit listener: also answered after commit) on the same rows (JSON
lines of the same shape and size), on a private PostgreSQL cluster;
and POST /upload of journal entries (bench/journal_body.py) with httpgen
and with the real systemd-journal-upload, when installed.

Numbers are printed, never asserted."""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import harness  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def kv(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


class Bench:
    def __init__(self, a):
        self.a = a
        self.pg = harness.PgCluster().init().start()
        self.workdir = self.pg.dir
        p = harness.run_logsinkd("--init-db", "--db", self.pg.conninfo)
        if p.returncode != 0:
            sys.exit("--init-db failed: %s" % p.output)
        self.n = 0

    def daemon(self, listen):
        self.n += 1
        port = harness.free_port()
        d = harness.Daemon(
            ["--listen", listen % port, "--db", self.pg.conninfo,
             "--db-connections", str(self.a.db_connections)]
            + self.a.daemon_args.split(),
            self.workdir, "bench-%d" % self.n, [("127.0.0.1", port)])
        d.start()
        d.port = port
        harness.wait_for(lambda: self.pg.count() >= 0, 30, "the database")
        time.sleep(0.5)  # its pool connects (not a measurement window)
        return d

    def run(self, d, cmd):
        self.pg.truncate()
        c0 = cpu_s(d.pid)
        out = subprocess.run(cmd, capture_output=True, text=True)
        c1 = cpu_s(d.pid)
        if out.returncode != 0:
            print("  (exit %d: %s)" % (out.returncode, out.stderr.strip()))
        r = kv(out.stdout)
        return r, c1 - c0

    def tcp(self, rate=0, n=None):
        n = n or self.a.records
        d = self.daemon("127.0.0.1:%d ack=commit")
        try:
            r, cpu = self.run(d, [
                self.a.loadgen, "--connect", "127.0.0.1:%d" % d.port,
                "--connections", str(self.a.connections), "--lines",
                str(n), "--format", "json", "--size", str(self.a.size),
                "--ack", "--rate", str(int(rate))])
        finally:
            d.stop()
        return (float(r.get("lines_per_s", 0)), cpu / n * 1e6,
                r.get("ack_p50_ms"), r.get("ack_p99_ms"))

    def http(self, gzip=False, rate=0, n=None):
        n = n or self.a.records
        d = self.daemon("127.0.0.1:%d proto=http")
        try:
            cmd = [self.a.httpgen, "--connect", "127.0.0.1:%d" % d.port,
                   "--connections", str(self.a.connections), "--records",
                   str(n), "--records-per-body", str(self.a.per_body),
                   "--size", str(self.a.size), "--rate", str(int(rate))]
            if gzip:
                cmd.append("--gzip")
            r, cpu = self.run(d, cmd)
        finally:
            d.stop()
        return (float(r.get("records_per_s", 0)), cpu / n * 1e6,
                r.get("p50_ms"), r.get("p99_ms"))


    def otlp(self, enc, gzip=False, rate=0, n=None):
        """POST /v1/logs of bench/otlp/logs-100.{pb,json}: 100 records
        each, as the OpenTelemetry JS SDK's exporters sent them."""
        n = n or self.a.records
        d = self.daemon("127.0.0.1:%d proto=http")
        body = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "otlp", "logs-100." + enc)
        ctype = "application/" + ("x-protobuf" if enc == "pb" else "json")
        try:
            cmd = [self.a.httpgen, "--connect", "127.0.0.1:%d" % d.port,
                   "--connections", str(self.a.connections), "--records",
                   str(n), "--records-per-body", "100", "--path",
                   "/v1/logs", "--content-type", ctype, "--body", body,
                   "--rate", str(int(rate))]
            if gzip:
                cmd.append("--gzip")
            r, cpu = self.run(d, cmd)
        finally:
            d.stop()
        return (float(r.get("records_per_s", 0)), cpu / n * 1e6,
                r.get("p50_ms"), r.get("p99_ms"))


def journal_body(path, n):
    """A body of n journal entries (bench/journal_body.py) at path."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import journal_body as jb
    with open(path, "w") as f:
        f.write("".join(jb.entry(i) for i in range(n)))
    return path


def journal(b, rate=0, n=None):
    """POST /upload with httpgen: per_body journal entries a request."""
    n = n or b.a.records
    body = journal_body(os.path.join(b.workdir, "journal.body"),
                        b.a.per_body)
    d = b.daemon("127.0.0.1:%d proto=http")
    try:
        r, cpu = b.run(d, [
            b.a.httpgen, "--connect", "127.0.0.1:%d" % d.port,
            "--connections", str(b.a.connections), "--records", str(n),
            "--records-per-body", str(b.a.per_body), "--body", body,
            "--path", "/upload", "--content-type",
            "application/vnd.fdo.journal", "--rate", str(int(rate))])
    finally:
        d.stop()
    return (float(r.get("records_per_s", 0)), cpu / n * 1e6,
            r.get("p50_ms"), r.get("p99_ms"))


JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
JOURNAL_UPLOAD = "/lib/systemd/systemd-journal-upload"


def journal_upload(b, n=None):
    """The real systemd-journal-upload --follow=no of a journal file of n
    entries (written by systemd-journal-remote): one chunked POST,
    answered after the last commit; records/s over its whole run."""
    n = n or b.a.records
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import journal_body as jb
    jfile = os.path.join(b.workdir, "bench.journal")
    if os.path.exists(jfile):
        os.unlink(jfile)
    subprocess.run([JOURNAL_REMOTE, "--output=" + jfile, "-"], check=True,
                   input="".join(jb.entry(i) for i in range(n)).encode(),
                   capture_output=True)
    d = b.daemon("127.0.0.1:%d proto=http")
    try:
        b.pg.truncate()
        c0, t0 = cpu_s(d.pid), time.monotonic()
        out = subprocess.run([JOURNAL_UPLOAD, "--follow=no",
                              "--file=" + jfile,
                              "--url=http://127.0.0.1:%d" % d.port],
                             capture_output=True, text=True)
        t1, c1 = time.monotonic(), cpu_s(d.pid)
        if out.returncode != 0:
            print("  (exit %d: %s)" % (out.returncode, out.stderr.strip()))
        stored = b.pg.count()
    finally:
        d.stop()
    return (stored / (t1 - t0), (c1 - c0) / n * 1e6,
            "%.0f" % ((t1 - t0) * 1000), "-")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--per-body", type=int, default=100)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--size", type=int, default=120)
    ap.add_argument("--db-connections", type=int, default=2)
    ap.add_argument("--daemon-args", default="")
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--only", default="",
                    help="only the paths whose name starts with this")
    a = ap.parse_args()
    a.loadgen = os.path.join(a.build_dir, "bench", "loadgen")
    a.httpgen = os.path.join(a.build_dir, "bench", "httpgen")
    os.environ["LOGSINKD"] = os.path.join(a.build_dir, "logsinkd")
    b = Bench(a)
    try:
        print("# %s load %s; %d records, %d per body, %d connections, "
              "%d-byte JSON lines" % (
                  time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  open("/proc/loadavg").read().split()[0], a.records,
                  a.per_body, a.connections, a.size))
        print("%-22s %12s %16s %10s %10s" % (
            "path", "records/s", "cpu_us/record", "p50_ms", "p99_ms"))
        rows = [("tcp ack=commit", b.tcp), ("http ndjson", b.http),
                ("http ndjson gzip", lambda: b.http(gzip=True)),
                ("http journal", lambda: journal(b)),
                ("otlp protobuf", lambda: b.otlp("pb")),
                ("otlp protobuf gzip", lambda: b.otlp("pb", gzip=True)),
                ("otlp json", lambda: b.otlp("json"))]
        if os.access(JOURNAL_UPLOAD, os.X_OK) and \
                os.access(JOURNAL_REMOTE, os.X_OK):
            # One request: its p50 column is the whole run in ms.
            rows.append(("journal-upload", lambda: journal_upload(b)))
        maxes = {}
        rows = [r for r in rows if r[0].startswith(a.only)]
        for name, f in rows:
            rate, cpu, p50, p99 = f()
            maxes[name] = rate
            print("%-22s %12.0f %16.2f %10s %10s" % (name, rate, cpu, p50,
                                                     p99))
        half = a.records // 2
        for name, f in (("tcp ack=commit", b.tcp), ("http ndjson", b.http),
                        ("http journal",
                         lambda rate, n: journal(b, rate, n)),
                        ("otlp protobuf",
                         lambda rate, n: b.otlp("pb", rate=rate, n=n)),
                        ("otlp json",
                         lambda rate, n: b.otlp("json", rate=rate, n=n))):
            if name not in maxes:
                continue
            r = maxes[name] / 2
            rate, cpu, p50, p99 = f(rate=r, n=half)
            print("%-22s %12.0f %16.2f %10s %10s   (paced at half the max)"
                  % (name + " @half", rate, cpu, p50, p99))
    finally:
        b.pg.destroy()


if __name__ == "__main__":
    main()
