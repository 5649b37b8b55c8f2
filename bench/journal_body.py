"""A Journal Export Format body for bench/httpgen --body (POST /upload):
N entries shaped like what systemd-journal-upload sends for a service's
line (its four metadata fields first, then the fields journald adds:
18 fields, about 570 bytes an entry).

    python3 bench/journal_body.py N > FILE
"""

import sys

BOOT = "6c7c6013a26343b29e964691ff25d04c"
SEQ = "739ad463348b4ceca5a9e69c95a3c93f"


def entry(i, t0=1764640000000000):
    t = t0 + i * 1000
    return (
        "__CURSOR=s=%s;i=%x;b=%s;m=%x;t=%x;x=%016x\n"
        "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n"
        "_TRANSPORT=stdout\nPRIORITY=6\nSYSLOG_FACILITY=3\n"
        "SYSLOG_IDENTIFIER=shop-api\n_PID=4242\n_UID=1000\n_GID=1000\n"
        "_COMM=shop-api\n_EXE=/usr/local/bin/shop-api\n"
        "_CMDLINE=/usr/local/bin/shop-api --listen :8080\n"
        "_SYSTEMD_UNIT=shop-api.service\n_HOSTNAME=web-17\n"
        "_MACHINE_ID=a91663387a90b89f185d4e860000001a\n"
        "MESSAGE=GET /api/cart/%d 200 1.7ms user=%d items=3\n\n"
        % (SEQ, i + 1, BOOT, 1000 + i, t, i * 2654435761 % (1 << 64),
           t, 1000 + i, BOOT, i, i % 997))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    sys.stdout.write("".join(entry(i) for i in range(n)))


if __name__ == "__main__":
    main()
