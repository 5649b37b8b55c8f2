#!/usr/bin/env bash
# bench/forward.sh: the Fluent forward listener (proto=forward) next to the
# TCP path on one private PostgreSQL and one logsinkd: records/s and the
# daemon's CPU per record (utime + stime from /proc/PID/stat) for
# PackedForward messages with chunk acks and for loadgen's JSON lines with
# ack=commit, then the latency from send to answer (p50, p99) at half each
# path's maximum rate.  Numbers are printed, never asserted.  See
# bench/forward_bench.py; needs python3-msgpack (scripts/deps.sh --test).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$REPO/build
ARGS=()

usage() {
	cat <<'USAGE'
usage: bench/forward.sh [--build-dir DIR] [bench options]

  --build-dir DIR      where logsinkd and bench/loadgen are (default build/)
  --records N          records per full-rate run (default 1000000; the
                       half-rate runs send a quarter of it)
  --connections C      connections of each path (default 4)
  --entries E          records per PackedForward message (default 1000)
  --window W           forward messages in flight per connection (default 4)
  --latency-entries E  records per message in the half-rate run (default 100)
  --size B             about B bytes per record (default 120)
USAGE
}

while (($#)); do
	case $1 in
	--build-dir) BUILD_DIR=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	--records | --connections | --entries | --window | --latency-entries | --size)
		ARGS+=("$1" "$2"); shift ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
[[ -x $BUILD_DIR/logsinkd && -x $BUILD_DIR/bench/loadgen ]] ||
	cmake --build "$BUILD_DIR" --target logsinkd loadgen
LOGSINKD=$BUILD_DIR/logsinkd exec /usr/bin/python3 \
	"$REPO/bench/forward_bench.py" --build-dir "$BUILD_DIR" "${ARGS[@]}"
