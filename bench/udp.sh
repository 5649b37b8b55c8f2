#!/usr/bin/env bash
# bench/udp.sh: proto=udp listeners under load.  For each offered load,
# a fresh logsinkd on a private PostgreSQL (scripts/pg-private.sh, the real
# schema) takes datagrams from bench/udpgen for --seconds; the run ends
# when every datagram sent is accounted for (read, or counted as dropped
# by the kernel) and the queue is empty.  Prints per load: datagrams sent
# and the rate achieved, rows stored, drops (the daemon's, queue full; the
# kernel's, receive buffer full), the drop rate, stored rows per second
# (rows / (the last row's commit time - the first row's received_at),
# from the database with track_commit_timestamp) and logsinkd CPU per
# datagram (its user + system time over the run / datagrams sent).
#
#   bash bench/udp.sh [--seconds S] [--rates LIST] [--size BYTES]
#                     [--daemon-args "ARGS"]
#
# --rates: comma-separated datagrams/s (k/M suffixes; 0: as fast as the
# sender goes); default 50k,100k,200k,0, then twice the best stored rate
# measured.  Checks, and reports, sent = stored + drops (a mismatch or a
# duplicate row exits 1).  Numbers are never asserted.  Needs a build in
# build/ (cmake -S . -B build && cmake --build build) and the PostgreSQL
# server binaries (scripts/deps.sh).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

seconds=4
rates=50k,100k,200k,0
size=120
daemon_args=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--rates) rates=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--daemon-args) read -r -a daemon_args <<<"$2"; shift 2 ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "usage: $0 [--seconds S] [--rates LIST] [--size BYTES] [--daemon-args ARGS]" >&2; exit 2 ;;
	esac
done
[[ -x build/logsinkd && -x build/bench/udpgen ]] ||
	{ echo "udp.sh: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }

work=$(mktemp -d /var/tmp/logsink-udp-bench.XXXXXX)
chmod 0755 "$work"
daemon_pid=""
pgdir=$work/pg
cleanup() {
	[[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	bash scripts/pg-private.sh stop "$pgdir" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

user_args=()
[[ $(id -u) -eq 0 ]] && user_args=(--user nobody)
free_port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, int(sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# metric NAME_WITH_LABELS: its value on the daemon's /metrics page.
metric() {
	python3 - "$mport" "$1" <<'EOF'
import sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
for line in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port).read().decode().splitlines():
    if line.startswith(name + " "):
        print(int(float(line.split()[-1])))
        break
else:
    print(0)
EOF
}
to_count() {
	local s=$1
	case $s in
	*[kK]) echo $((${s%?} * 1000)) ;;
	*M) echo $((${s%?} * 1000000)) ;;
	*) echo "$s" ;;
	esac
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

conninfo=$(bash scripts/pg-private.sh start "$pgdir" | tail -1)
# Commit times of the rows (as run.sh): the stored rate comes from the
# database, not from when this script noticed.
# The server settings of run.sh (bench/README.md): PostgreSQL's durability
# costs are not what is measured here.
for setting in track_commit_timestamp=on fsync=off synchronous_commit=off \
	full_page_writes=off wal_level=minimal max_wal_senders=0 autovacuum=off; do
	psql "$conninfo" -qAtc "alter system set ${setting%%=*} = '${setting#*=}'" >/dev/null
done
bash scripts/pg-private.sh stop "$pgdir"
bash scripts/pg-private.sh start "$pgdir" >/dev/null
./build/logsinkd --db "$conninfo" --init-db >/dev/null
status=0
best=0

# run_case RATE: one measurement; prints its line; sets $stored_rate.
run_case() {
	local rate=$1 count port uport sent out rows distinct window qfull kdrops tick0 tick1 hz
	if ((rate > 0)); then count=$((rate * seconds)); else count=$((300000 * seconds)); fi
	psql "$conninfo" -qAtc "truncate logs" >/dev/null
	port=$(free_port 1) uport=$(free_port 2) mport=$(free_port 1)
	./build/logsinkd "${user_args[@]}" --db "$conninfo" --listen "127.0.0.1:$port" \
		--listen "127.0.0.1:$uport proto=udp" --metrics-listen "127.0.0.1:$mport" \
		--stats-interval 0 "${daemon_args[@]}" >"$work/logsinkd-$rate.log" 2>&1 &
	daemon_pid=$!
	wait_port "$port"
	tick0=$(cpu_ticks "$daemon_pid")
	out=$(./build/bench/udpgen --target "127.0.0.1:$uport" --count "$count" \
		--rate "$rate" --size "$size" --tag "r$rate")
	sent=$(awk '{print $2}' <<<"$out")
	for _ in $(seq 600); do
		(($(metric logsink_udp_datagrams_total) + $(metric logsink_udp_kernel_drops_total) >= sent)) &&
			(($(metric logsink_queue_lines) == 0)) && break
		sleep 0.1
	done
	tick1=$(cpu_ticks "$daemon_pid")
	qfull=$(metric 'logsink_udp_dropped_total{reason="queue_full"}')
	kdrops=$(metric logsink_udp_kernel_drops_total)
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || true
	daemon_pid=""
	rows=$(psql "$conninfo" -Atc "select count(*) from logs")
	distinct=$(psql "$conninfo" -Atc "select count(distinct message) from logs")
	window=$(psql "$conninfo" -Atc "select coalesce(extract(epoch from max(pg_xact_commit_timestamp(xmin)) - min(received_at)), 1) from logs")
	hz=$(getconf CLK_TCK)
	read -r stored_rate line < <(python3 - "$rate" "$out" "$sent" "$rows" "$qfull" "$kdrops" "$window" "$tick0" "$tick1" "$hz" <<'EOF'
import sys
rate, out = sys.argv[1], sys.argv[2]
sent, rows, qfull, kd = (int(x) for x in sys.argv[3:7])
window = float(sys.argv[7])
ticks = (int(sys.argv[9]) - int(sys.argv[8])) / int(sys.argv[10])
achieved = float(out.split(": ")[1].split()[0])
drops = qfull + kd
sr = rows / window if window > 0 else 0
print("%d offered=%-6s achieved=%8.0f/s sent=%8d stored=%8d queue_full=%7d kernel=%7d drop=%5.1f%% stored/s=%7.0f cpu/datagram=%.2fus"
      % (sr, rate if rate != "0" else "max", achieved, sent, rows, qfull, kd,
         100.0 * drops / sent, sr, 1e6 * ticks / max(sent, 1)))
EOF
	)
	echo "$line"
	if ((rows + qfull + kdrops != sent)); then
		echo "udp.sh: MISMATCH: sent $sent != stored $rows + drops $((qfull + kdrops))" >&2
		status=1
	fi
	if ((distinct != rows)); then
		echo "udp.sh: $((rows - distinct)) duplicate rows" >&2
		status=1
	fi
	((stored_rate > best)) && best=$stored_rate
	return 0
}

echo "== proto=udp, ${size}-byte RFC 3164 datagrams, ${seconds} s per load, $(nproc) CPUs"
IFS=, read -r -a list <<<"$rates"
for r in "${list[@]}"; do
	run_case "$(to_count "$r")"
done
if ((best > 0)); then
	echo "== twice the best stored rate ($best/s):"
	run_case $((best * 2))
fi
exit $status
