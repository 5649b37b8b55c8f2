#!/usr/bin/env bash
# bench/http.sh: logsinkd's HTTP ingest (POST /ingest, NDJSON, plain and
# gzip; POST /v1/logs, OTLP protobuf and JSON; with bench/httpgen) next to the TCP path (bench/loadgen --ack on an
# ack=commit listener, JSON lines of the same shape and size) on a private
# PostgreSQL: records/s, the daemon's CPU per record (utime+stime from
# /proc/PID/stat) and, paced at half of each path's maximum, the latency
# from send to answer (p50, p99).  Both paths answer only after commit.
# The journal rows: POST /upload of Journal Export Format bodies
# (bench/journal_body.py, 18 fields and about 570 bytes an entry, as
# systemd-journal-upload sends them) with httpgen, and the real
# systemd-journal-upload --follow=no of a journal file (one request).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$REPO/build
ARGS=()

usage() {
	cat <<'USAGE'
usage: bench/http.sh [--build-dir DIR] [--records N] [--per-body N]
                     [--connections C] [--size B] [--db-connections N]
                     [--daemon-args "ARGS"] [--only PREFIX]

  --build-dir DIR   logsinkd and bench/{loadgen,httpgen} (default build/)
  --records N       records per run (default 200000)
  --per-body N      records per HTTP request (default 100)
  --connections C   connections of both generators (default 4)
  --size B          JSON line size (default 120)
  --only PREFIX     only the paths whose name starts with PREFIX (e.g. otlp)
USAGE
}

while (($#)); do
	case $1 in
	--build-dir) BUILD_DIR=$2; shift ;;
	--records | --per-body | --connections | --size | --db-connections | \
		--daemon-args | --only)
		ARGS+=("$1" "$2"); shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
cmake --build "$BUILD_DIR" --target logsinkd loadgen httpgen >/dev/null
exec /usr/bin/python3 "$REPO/bench/http_bench.py" --build-dir "$BUILD_DIR" \
	"${ARGS[@]}"
