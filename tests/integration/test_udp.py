"""proto=udp listeners: syslog over UDP (RFC 5426).

Real senders (util-linux logger --udp, rsyslog omfwd protocol="udp"),
Python datagrams for the edge cases (trailing LF/NUL, empty, longer than
max-line-bytes, allow=), and a flood that overflows both the queue and
the kernel's receive buffer: every datagram sent is then stored or
counted as dropped, exactly (sent = stored + daemon drops + kernel drops).
"""

import json
import os
import signal
import shutil
import socket
import subprocess

import pytest

import harness
from harness import wait_for
from test_clients import (  # noqa: F401 (fixtures)
    RSYSLOG_CONF, background, local_hostnames, logger_cmd, need_tool,
    row_with, rsyslog, run_client, wait_rows)

TIMEOUT = harness.DEFAULT_TIMEOUT


def free_udp_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def udp_daemon(daemon, pg, *args, options=""):
    """A logsinkd with a TCP listener (d.port, for readiness), a UDP one
    (d.uport) and the metrics endpoint (d.mport)."""
    uport, mport = free_udp_port(), harness.free_port()
    d = daemon("--listen", "127.0.0.1:%d proto=udp%s" % (uport, options),
               "--metrics-listen", "127.0.0.1:%d" % mport, *args,
               db=pg.conninfo)
    d.uport, d.mport = uport, mport
    return d


def send(port, *datagrams):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for dg in datagrams:
            s.sendto(dg, ("127.0.0.1", port))


def udp_logger(logger_cmd, port, *args):
    """logger sending datagrams (the fixture's command says --tcp)."""
    return ["--udp" if a == "--tcp" else a for a in logger_cmd(port, *args)]


def udp_metric(d, name, **labels):
    return harness.metric(d, name, **labels)


@pytest.fixture
def udp_sink(pg, daemon):
    pg.truncate()
    return udp_daemon(daemon, pg)


def test_logger_udp_rfc5424(logger_cmd, pg, udp_sink):
    text = "over udp: link down on port 7 (udp-5424-a1)"
    pid, _ = run_client(udp_logger(logger_cmd, udp_sink.uport, "-t", "switch",
                                   "-i", "-p", "local3.warning", text),
                        what="logger")
    [r] = wait_rows(pg, 1)
    assert r["message"] == text, r
    assert (r["facility"], r["severity"]) == (19, 4), r
    assert (r["app"], r["procid"]) == ("switch", str(pid)), r
    assert r["host"] in local_hostnames(), r
    assert r["peer"] == "127.0.0.1", r
    assert udp_metric(udp_sink, "udp_datagrams_total") == 1


def test_logger_udp_rfc3164(logger_cmd, pg, udp_sink):
    text = "bsd over udp (udp-3164-b2)"
    run_client(udp_logger(logger_cmd, udp_sink.uport, "--rfc3164", "-t", "fw",
                          "-p", "auth.err", text), what="logger")
    [r] = wait_rows(pg, 1)
    assert r["message"] == text, r
    assert (r["facility"], r["severity"], r["app"]) == (4, 3, "fw"), r
    assert r["peer"] == "127.0.0.1", r


def test_datagram_edges(pg, udp_sink):
    """Trailing LF / CR LF / NUL trimmed, JSON detected, an empty datagram
    (or one of only a newline) ignored and counted."""
    obj = {"message": "json over udp (udp-json-c3)", "level": "error",
           "host": "ap-3"}
    send(udp_sink.uport, b"<14>plain with LF (udp-lf)\n",
         b"<14>plain with CRLF (udp-crlf)\r\n",
         b"<14>plain with NUL (udp-nul)\0", b"", b"\n",
         json.dumps(obj).encode())
    got = wait_rows(pg, 4)
    for tag in ("udp-lf", "udp-crlf", "udp-nul"):
        r = row_with(got, tag)
        assert r["message"].endswith("(%s)" % tag), r
        assert (r["facility"], r["severity"]) == (1, 6), r
    r = row_with(got, "udp-json-c3")
    assert (r["message"], r["severity"], r["host"]) == (
        obj["message"], 3, "ap-3"), r
    assert r["fields"] == obj, r
    wait_for(lambda: udp_metric(udp_sink, "udp_datagrams_total") == 6,
             TIMEOUT, "6 datagrams read")
    assert udp_metric(udp_sink, "udp_dropped_total", reason="empty") == 2


def test_longer_than_max_line_bytes(pg, daemon):
    pg.truncate()
    d = udp_daemon(daemon, pg, "--max-line-bytes", "100")
    body = "x" * 99 + "\u00e9" + "y" * 200  # the cut falls inside the e-acute
    send(d.uport, body.encode(), b"short one (udp-short)")
    got = wait_rows(pg, 2)
    r = row_with(got, "xxx")
    assert r["message"] == "x" * 99, r  # cut before the split character
    row_with(got, "udp-short")
    assert udp_metric(d, "udp_truncated_total") == 1
    assert udp_metric(d, "lines_truncated_total") == 1


def test_allow_drops_counted(pg, daemon):
    pg.truncate()
    d = udp_daemon(daemon, pg, options=" allow=10.0.0.0/8,::1")
    send(d.uport, *[b"<13>not allowed %d" % i for i in range(5)])
    wait_for(lambda: udp_metric(d, "udp_dropped_total", reason="denied") == 5,
             TIMEOUT, "5 denied datagrams counted")
    assert udp_metric(d, "udp_datagrams_total") == 5
    assert pg.count() == 0
    wait_for(lambda: "sender not in allow=" in d.log(), TIMEOUT,
             "the denied datagrams logged")
    assert d.log().count("sender not in allow=") == 1  # rate-limited


def test_rsyslog_omfwd_udp(rsyslog, logger_cmd, pg, udp_sink, background,
                           tmp_path):
    rsyslogd, moddir = rsyslog
    work = tmp_path / "rsyslog-work"
    work.mkdir()
    in_port = harness.free_port()
    conf = tmp_path / "rsyslog.conf"
    text = RSYSLOG_CONF.format(work=work, in_port=in_port,
                               out_port=udp_sink.uport, framing="traditional",
                               template="")
    text = text.replace('protocol="tcp"', 'protocol="udp"').replace(
        '\n         TCP_Framing="traditional"', "")
    assert 'protocol="udp"' in text and "TCP_Framing" not in text
    conf.write_text(text)
    cmd = [rsyslogd, "-n", "-f", str(conf),
           "-i", str(tmp_path / "rsyslogd.pid")]
    if moddir:
        cmd += ["-M", moddir]
    rs = background.start("rsyslogd", cmd, str(conf))
    rs.wait_listening(in_port)
    texts = ["via rsyslog udp: first (rsu-1)", "via rsyslog udp: second (rsu-2)"]
    pids = []
    for t in texts:
        pid, _ = run_client(logger_cmd(in_port, "--octet-count", "-t", "rsapp",
                                       "-i", "-p", "local3.warning", t),
                            what="logger")
        pids.append(pid)
    got = wait_rows(pg, 2)
    for t, pid in zip(texts, pids):
        r = row_with(got, t)
        assert r["message"] == t, r
        assert (r["facility"], r["severity"]) == (19, 4), r
        assert (r["app"], r["procid"]) == ("rsapp", str(pid)), r
        assert r["peer"] == "127.0.0.1", r


@pytest.mark.parametrize("opt,word", [
    ("ack=commit", "ack="), ("tls=on", "tls=on"), ("framing=lf", "framing="),
])
def test_udp_options_refused(opt, word):
    p = harness.run_logsinkd("--check-config", "--listen",
                             "127.0.0.1:5514 proto=udp %s" % opt)
    assert p.returncode != 0
    assert "%s does not apply to proto=udp" % word in p.output, p.output


def test_flood_counted_exactly(fresh_pg, daemon):
    """The queue at its minimum with the database stopped, a 4 KiB receive
    buffer and the daemon stopped (SIGSTOP) for part of the flood: each
    datagram sent is stored, or counted as a daemon drop (queue_full), or
    as a kernel drop; none twice."""
    pg = fresh_pg
    d = udp_daemon(daemon, pg, "--queue-bytes", "64KiB", "--max-line-bytes",
                   "2048", "--udp-rcvbuf", "4096", "--batch-lines", "100")
    pg.stop("fast")
    n1, n2 = 3000, 3000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(n1):
            s.sendto(b"<14>udp flood seq=%06d" % i, ("127.0.0.1", d.uport))
        d.signal(signal.SIGSTOP)
        try:
            for i in range(n1, n1 + n2):
                s.sendto(b"<14>udp flood seq=%06d" % i,
                         ("127.0.0.1", d.uport))
        finally:
            d.signal(signal.SIGCONT)
    sent = n1 + n2

    def accounted():
        m = harness.scrape_metrics(d)
        return (m["logsink_udp_datagrams_total"]
                + m["logsink_udp_kernel_drops_total"]) == sent
    wait_for(accounted, TIMEOUT, "every datagram read or counted by the "
             "kernel")
    pg.start()
    wait_for(lambda: udp_metric(d, "queue_lines") == 0, TIMEOUT,
             "the queue written")
    m = harness.scrape_metrics(d)
    got = [r[0] for r in pg.query("select message from public.logs")]
    assert len(got) == len(set(got)), "duplicates stored"
    assert all(g.startswith("udp flood seq=") for g in got)
    queue_full = m['logsink_udp_dropped_total{reason="queue_full"}']
    kernel = m["logsink_udp_kernel_drops_total"]
    assert queue_full > 0 and kernel > 0, m
    assert len(got) == m["logsink_lines_committed_total"] \
        == m["logsink_lines_received_total"]
    assert len(got) + queue_full + kernel == sent, (len(got), queue_full,
                                                     kernel)
    log = d.log()
    assert "read and dropped, the queue full" in log
    assert "dropped by the kernel, the receive buffer full" in log


def test_socket_activation_datagram(pg, tmp_path):
    """systemd-socket-activate --datagram (ListenDatagram=) passes a bound
    UDP socket; the first datagram, which started the daemon, is stored,
    with the options of the proto=udp listen entry of that port."""
    tool = need_tool(shutil.which("systemd-socket-activate"),
                     "systemd-socket-activate", "systemd")
    pg.truncate()
    port = free_udp_port()
    log_path = os.path.join(str(tmp_path), "activated.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            # An IPv6 socket bound to the IPv4-mapped loopback: IPv4
            # senders arrive as ::ffff:127.0.0.1, as on the dual-stack
            # socket of logsinkd-udp.socket's bare port; stored as IPv4.
            [tool, "--datagram", "-l", "[::ffff:127.0.0.1]:%d" % port,
             harness.logsinkd_path(), "--db", pg.conninfo,
             "--listen", "127.0.0.1:%d proto=udp format=raw" % port]
            + harness.root_user_args([]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Listening on" in open(log_path).read(), TIMEOUT,
                 "systemd-socket-activate to bind")
        send(port, b"<13>Nov 21 10:00:00 host app: activated (udp-sa)")
        wait_for(lambda: pg.count() == 1, TIMEOUT, "the datagram stored")
        assert pg.query("select message, app, host(peer) from logs") == [
            ("<13>Nov 21 10:00:00 host app: activated (udp-sa)", None,
             "127.0.0.1")]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = open(log_path).read()
    assert "listening on udp [::ffff:127.0.0.1]:%d (socket from systemd) " \
        "format=raw" % port in log, log


@pytest.mark.skipif(not harness.ipv6_loopback_available(),
                    reason="no IPv6 loopback")
def test_ipv6_listener(pg, daemon):
    pg.truncate()
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        uport = s.getsockname()[1]
    daemon("--listen", "[::1]:%d proto=udp allow=::1" % uport,
           db=pg.conninfo)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.sendto(b"<13>over udp6 (udp-v6)", ("::1", uport))
    [r] = wait_rows(pg, 1)
    assert (r["message"], r["peer"]) == ("over udp6 (udp-v6)", "::1"), r
