"""Fluent forward (proto=forward) next to the TCP path, on one private
PostgreSQL and one logsinkd: records/s and daemon CPU per record, then the
latency from send to answer at half each path's maximum rate.

Run by bench/forward.sh (see there).  The TCP path is bench/loadgen
(--format json --ack: JSON lines with level, host, msg; "ok N" after
commit); the forward path sends PackedForward messages of --entries
records {level, host, msg} with an EventTime and a chunk, --window
messages in flight per connection, each answered {"ack": chunk} after
commit.  Both make rows with the same columns (host, severity, message,
event_time).  Numbers are printed, never asserted.
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
import msgpack  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime + stime of pid, in seconds (/proc/PID/stat fields 14, 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100.0))] if v else float("nan")


def packed_blob(n, size):
    et = msgpack.ExtType(0, int(time.time()).to_bytes(4, "big") +
                         (123456789).to_bytes(4, "big"))
    pad = "x" * max(0, size - 60)
    return b"".join(msgpack.packb(
        [et, {"level": "info", "host": "benchhost",
              "msg": "id=fwd-%07d %s" % (i, pad)}], use_bin_type=True)
        for i in range(n))


class Conn(threading.Thread):
    """One forward connection: sends messages of the blob, at most window
    unanswered (or paced at interval s per message); records latencies."""

    def __init__(self, port, blob, messages, window, interval=0.0):
        super().__init__(daemon=True)
        self.s = socket.create_connection(("127.0.0.1", port))
        self.blob, self.messages, self.window = blob, messages, window
        self.interval = interval
        self.sent_at = {}
        self.lat = []
        self.cv = threading.Condition()
        self.acked = 0
        self.error = None

    def reader(self):
        u = msgpack.Unpacker(raw=False)
        try:
            while self.acked < self.messages:
                data = self.s.recv(65536)
                if not data:
                    raise RuntimeError("connection closed")
                u.feed(data)
                now = time.monotonic()
                for a in u:
                    with self.cv:
                        self.lat.append(now - self.sent_at.pop(a["ack"]))
                        self.acked += 1
                        self.cv.notify()
        except Exception as e:  # reported by run()
            self.error = e
            with self.cv:
                self.acked = self.messages
                self.cv.notify()

    def run(self):
        r = threading.Thread(target=self.reader, daemon=True)
        r.start()
        t0 = time.monotonic()
        for k in range(self.messages):
            if self.interval:
                delay = t0 + k * self.interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            with self.cv:
                while k - self.acked >= self.window:
                    self.cv.wait()
            chunk = "c%d" % k
            msg = msgpack.packb(["bench.fwd", self.blob, {"chunk": chunk}],
                                use_bin_type=True)
            with self.cv:
                self.sent_at[chunk] = time.monotonic()
            self.s.sendall(msg)
        r.join()
        self.s.close()


def run_forward(d, port, records, conns, entries, window, size,
                rate=None):
    blob = packed_blob(entries, size)
    per = records // (conns * entries)
    interval = conns * entries / rate if rate else 0.0
    cs = [Conn(port, blob, per, window, interval) for _ in range(conns)]
    c0, t0 = cpu_s(d.pid), time.monotonic()
    for c in cs:
        c.start()
    for c in cs:
        c.join()
    t, cpu = time.monotonic() - t0, cpu_s(d.pid) - c0
    for c in cs:
        if c.error:
            raise SystemExit("forward: %s" % c.error)
    lat = [x for c in cs for x in c.lat]
    n = per * conns * entries
    return {"records": n, "seconds": t, "rate": n / t,
            "cpu_us": cpu * 1e6 / n, "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3}


def run_tcp(d, port, loadgen, records, conns, size, rate=None):
    cmd = [loadgen, "--connect", "127.0.0.1:%d" % port, "--connections",
           str(conns), "--lines", str(records), "--format", "json",
           "--size", str(size), "--ack"]
    if rate:
        cmd += ["--rate", str(int(rate))]
    c0 = cpu_s(d.pid)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True,
                         timeout=3600).stdout.decode()
    cpu = cpu_s(d.pid) - c0
    kv = dict(x.split("=", 1) for x in out.split() if "=" in x)
    n = int(kv["sent"])
    return {"records": n, "seconds": float(kv["seconds"]),
            "rate": float(kv["lines_per_s"]), "cpu_us": cpu * 1e6 / n,
            "p50_ms": float(kv.get("ack_p50_ms", "nan")),
            "p99_ms": float(kv.get("ack_p99_ms", "nan"))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--latency-entries", type=int, default=100)
    ap.add_argument("--size", type=int, default=120)
    a = ap.parse_args()
    os.environ.setdefault("LOGSINKD", os.path.join(a.build_dir, "logsinkd"))
    loadgen = os.path.join(a.build_dir, "bench", "loadgen")
    pg = harness.PgCluster()
    d = None
    try:
        pg.init().start()
        harness.init_db(pg.conninfo)
        tport, fport = harness.free_port(), harness.free_port()
        args = ["--listen", "127.0.0.1:%d ack=commit" % tport, "--listen",
                "127.0.0.1:%d proto=forward" % fport, "--db", pg.conninfo,
                "--stats-interval", "0"]
        d = harness.Daemon(args, "/tmp",
                           "bench-forward",
                           [("127.0.0.1", tport), ("127.0.0.1", fport)])
        d.start()
        res = {}
        pg.truncate()
        res["tcp"] = run_tcp(d, tport, loadgen, a.records, a.connections,
                             a.size)
        pg.truncate()
        res["forward"] = run_forward(d, fport, a.records, a.connections,
                                     a.entries, a.window, a.size)
        pg.truncate()
        res["tcp_half"] = run_tcp(d, tport, loadgen, a.records // 4,
                                  a.connections, a.size,
                                  rate=res["tcp"]["rate"] / 2)
        pg.truncate()
        res["forward_half"] = run_forward(
            d, fport, a.records // 4, a.connections, a.latency_entries,
            1 << 20, a.size, rate=res["forward"]["rate"] / 2)
        print("%-14s %9s %8s %10s %12s %9s %9s" % (
            "path", "records", "seconds", "records/s", "cpu_us/rec",
            "p50_ms", "p99_ms"))
        for k in ("tcp", "forward", "tcp_half", "forward_half"):
            r = res[k]
            print("%-14s %9d %8.2f %10.0f %12.2f %9.1f %9.1f" % (
                k, r["records"], r["seconds"], r["rate"], r["cpu_us"],
                r["p50_ms"], r["p99_ms"]))
        print("(*_half: paced at half the maximum rate above; p50/p99: "
              "send -> ack; forward: PackedForward of %d records per "
              "message at full rate, %d at half rate)"
              % (a.entries, a.latency_entries))
    finally:
        if d is not None:
            d.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
