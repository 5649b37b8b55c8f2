#!/usr/bin/env bash
# The event loop against a slow spool disk: an ack=spooled client writes
# to the spool while an ack=commit client on another listener needs only
# the database.  With tests/shim/slowdisk.c preloaded, every fsync and
# fdatasync under the spool directory first sleeps SLOWDISK_MS.  Prints,
# per run (a normal disk, then the slow one), the loop lag (max and p99
# over the run, from logsink_loop_lag_* on /metrics), the shim's count of
# syncs on the main thread and on others, and both clients' ack latency
# (loadgen's ack_p50_ms/ack_p99_ms).
#
#   bash bench/slow_disk.sh [--ms 150] [--seconds 10] [--write-ms 0]
#                           [--rate 20000]
#
# --rate: lines/s of the ack=spooled client (4 connections); the
# ack=commit client sends 1000 lines/s on one connection.
# KEEP=1 keeps the work directory (logs, the shim's call log).
#
# Needs a build in build/ (cmake -S . -B build && cmake --build build:
# logsinkd, libslowdisk.so and bench/loadgen) and the PostgreSQL server
# binaries (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ms=150
seconds=10
write_ms=0
rate=20000
while [[ $# -gt 0 ]]; do
	case $1 in
	--ms) ms=$2; shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	--write-ms) write_ms=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	*) echo "usage: $0 [--ms N] [--seconds N] [--write-ms N] [--rate N]" >&2; exit 2 ;;
	esac
done
shim=$PWD/build/libslowdisk.so
[[ -f $shim ]] || { echo "$shim missing: build first" >&2; exit 1; }

work=$(mktemp -d /var/tmp/logsink-slowdisk-bench.XXXXXX)
chmod 0755 "$work"
daemon_pid=""
pgdir=$work/pg
cleanup() {
	[[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	bash scripts/pg-private.sh stop "$pgdir" >/dev/null 2>&1 || true
	if [[ -n ${KEEP:-} ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

user_args=()
[[ $(id -u) -eq 0 ]] && user_args=(--user nobody)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }

conninfo=$(bash scripts/pg-private.sh start "$pgdir" | tail -1)
./build/logsinkd --db "$conninfo" --init-db >/dev/null

# One run: $1 names it, $2 the shim's delay (0: no shim).
run() {
	local name=$1 delay=$2 spool=$work/spool-$1 pspool pcommit env=()
	pspool=$(free_port)
	pcommit=$(free_port)
	mport=$(free_port)
	mkdir "$spool"
	[[ $(id -u) -eq 0 ]] && chown nobody "$spool"
	: >"$work/$name.sync"
	chmod 0666 "$work/$name.sync"
	if [[ $delay -gt 0 ]]; then
		env=(LD_PRELOAD="$shim" SLOWDISK_DIR="$spool" SLOWDISK_MS="$delay"
			SLOWDISK_WRITE_MS="$write_ms" SLOWDISK_LOG="$work/$name.sync")
	fi
	env "${env[@]}" ./build/logsinkd "${user_args[@]}" \
		--listen "127.0.0.1:$pspool ack=spooled" \
		--listen "127.0.0.1:$pcommit ack=commit" \
		--metrics-listen "127.0.0.1:$mport" --db "$conninfo" \
		--spool-dir "$spool" --stats-interval 0 >"$work/$name.log" 2>&1 &
	daemon_pid=$!
	wait_port "$pspool"
	wait_port "$pcommit"
	./build/bench/loadgen --connect "127.0.0.1:$pspool" --connections 4 \
		--rate "$rate" --lines $((rate * seconds)) --ack --run-id s \
		--ack-timeout 20 >"$work/$name.spooled" 2>&1 &
	local spooled=$!
	./build/bench/loadgen --connect "127.0.0.1:$pcommit" --connections 1 \
		--rate 1000 --lines $((1000 * seconds)) --ack --run-id c \
		--ack-timeout 20 >"$work/$name.commit" 2>&1 || true
	wait "$spooled" || true
	echo "== $name disk (fsync/fdatasync delay ${delay} ms, write delay ${write_ms} ms), ${seconds} s"
	echo "loop lag: max $(metric logsink_loop_lag_max_seconds) s," \
		"window max $(metric logsink_loop_lag_window_max_seconds) s," \
		"window p99 $(metric logsink_loop_lag_window_p99_seconds) s," \
		"samples $(metric logsink_loop_lag_seconds_count)"
	echo "syncs on the main thread: $(grep -c ' main ' "$work/$name.sync" || true)," \
		"on another thread: $(grep -c ' thread ' "$work/$name.sync" || true)"
	echo "ack=spooled client: $(cat "$work/$name.spooled")"
	echo "ack=commit client:  $(cat "$work/$name.commit")"
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || true
	daemon_pid=""
}

[[ -z ${SLOW_ONLY:-} ]] && run normal 0
run slow "$ms"
