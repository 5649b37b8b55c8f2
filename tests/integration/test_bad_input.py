"""Oversized lines, invalid UTF-8 and NUL bytes."""

import collections
import socket

import pytest

from harness import connect, sanitize, send_bytes, wait_for

TIMEOUT = 120
MIB = 1 << 20


# Every test starts from an empty logs table (conftest.empty_table).
pytestmark = pytest.mark.usefixtures("empty_table")


def rows(pg):
    return collections.Counter(pg.messages())


def test_sanitize_reference():
    """The expected-value helper itself (no daemon involved)."""
    assert sanitize(b"bad \xff\xfe end") == "bad \ufffd\ufffd end"
    assert sanitize(b"a \xe2\x82 b") == "a \ufffd\ufffd b"
    assert sanitize(b"\xc0\xaf") == "\ufffd\ufffd"
    assert sanitize(b"\xed\xa0\x80") == "\ufffd" * 3
    assert sanitize(b"\xf4\x90\x80\x80") == "\ufffd" * 4
    assert sanitize(b"nul\x00byte") == "nul\ufffdbyte"
    assert sanitize("h\u00e9 \u20ac \U0001d11e".encode()) \
        == "h\u00e9 \u20ac \U0001d11e"
    assert sanitize(b"x\r") == "x" and sanitize(b"x\ry") == "x\ry"


def test_oversized_line_truncated_connection_continues(pg, daemon):
    d = daemon(db=pg.conninfo)
    after = ["after-big-%03d" % i for i in range(100)]
    with connect(d.port) as s:
        s.sendall(b"before-big\n")
        s.sendall(b"x" * MIB + b"\n")
        s.sendall("".join(l + "\n" for l in after).encode())
        s.shutdown(socket.SHUT_WR)
    wait_for(lambda: pg.count() >= 102, TIMEOUT, "102 rows")
    assert d.stop() == 0

    got = rows(pg)
    big = [m for m in got if m.startswith("x")]
    assert [len(m) for m in big] == [65536], (
        "rows starting with 'x' have lengths %r" % [len(m) for m in big])
    assert big[0] == "x" * 65536 and got[big[0]] == 1
    assert pg.scalar("select octet_length(message) from logs "
                     "where message like 'x%'") == 65536
    expected = {"before-big": 1, "x" * 65536: 1}
    expected.update((l, 1) for l in after)
    assert got == expected, "unexpected rows: %r" % [
        (m[:40], n) for m, n in got.items() if expected.get(m) != n][:10]


def test_truncation_at_utf8_boundary(pg, daemon):
    d = daemon(db=pg.conninfo)
    euro = "\u20ac".encode()  # 3 bytes
    lines = [
        # 65535 + 3 > 65536: the euro sign must not be split.
        b"y" * 65535 + euro * 10,
        # 65533 + 3 == 65536: fits exactly.
        b"z" * 65533 + euro + b"tail",
        # exactly max-line-bytes: stored whole.
        b"w" * 65536,
        b"still-here",
    ]
    send_bytes(d.port, b"\n".join(lines) + b"\n")
    wait_for(lambda: pg.count() >= 4, TIMEOUT, "4 rows")
    assert d.stop() == 0
    got = rows(pg)
    expected = {"y" * 65535: 1, "z" * 65533 + "\u20ac": 1, "w" * 65536: 1,
                "still-here": 1}
    assert got == expected, [(m[:10], len(m.encode()), n)
                             for m, n in got.items()]


def test_larger_max_line_bytes_keeps_1mib_line(pg, daemon):
    d = daemon("--max-line-bytes", 2097152, db=pg.conninfo)
    line = ("0123456789abcdef" * (MIB // 16)).encode()
    assert len(line) == MIB
    send_bytes(d.port, line + b"\nsmall after\n")
    wait_for(lambda: pg.count() >= 2, TIMEOUT, "2 rows")
    assert d.stop() == 0
    assert pg.scalar("select octet_length(message) from logs "
                     "where message like '0123%'") == MIB
    assert rows(pg) == {line.decode(): 1, "small after": 1}


BAD_LINES = [
    b"bad \xff\xfe end",
    b"truncated3 \xe2\x82 end",           # first two bytes of U+20AC
    b"truncated-at-eol \xe2\x82",
    b"overlong \xc0\xaf end",             # overlong '/'
    b"surrogate \xed\xa0\x80 end",        # U+D800
    b"beyond-max \xf4\x90\x80\x80 end",   # > U+10FFFF
    b"lone continuation \x80\xbf end",
    b"nul\x00byte",
    b"\x00\x00 leading nuls",
]
GOOD_LINES = [
    "plain ascii line",
    "utf8 ok: h\u00e9llo \u20acuro \U0001d11e \u65e5\u672c\u8a9e",
    "tab\tand \x01\x1f\x7f controls",
    "trailing spaces   ",
]


def test_invalid_utf8_and_nul_replaced(pg, daemon):
    d = daemon(db=pg.conninfo)
    data = []
    for i, bad in enumerate(BAD_LINES):
        data.append(bad)
        data.append(("%s #%d" % (GOOD_LINES[i % len(GOOD_LINES)], i))
                    .encode())
    send_bytes(d.port, b"\n".join(data) + b"\n")
    expected = collections.Counter(sanitize(l) for l in data)
    assert sum(expected.values()) == len(data)
    wait_for(lambda: pg.count() >= len(data), TIMEOUT,
             "%d rows" % len(data))
    assert d.stop() == 0
    got = rows(pg)
    assert got == expected, (
        "missing %r\nunexpected %r"
        % (sorted(set(expected) - set(got)), sorted(set(got) - set(expected))))


def test_all_byte_values(pg, daemon):
    d = daemon(db=pg.conninfo)
    line = bytes(b for b in range(256) if b != 0x0A)
    send_bytes(d.port, b"before\n" + line + b"\nafter\n")
    want = sanitize(line)
    # 0x00 and the 128 bytes 0x80-0xFF become U+FFFD, the rest stay.
    assert want.count("\ufffd") == 129 and len(want) == 255
    wait_for(lambda: pg.count() >= 3, TIMEOUT, "3 rows")
    assert d.stop() == 0
    got = rows(pg)
    assert got == {"before": 1, want: 1, "after": 1}, [
        ascii(m) for m in got if m not in ("before", "after")]
