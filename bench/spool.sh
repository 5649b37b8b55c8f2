#!/usr/bin/env bash
# The disk spool under load: how fast logsinkd takes lines with the database
# down (memory, then spool), the ack=spooled latency with the database down,
# and how fast the spool is replayed into a private PostgreSQL once it is
# back.  Prints one line per measurement.
#
#   bash bench/spool.sh [--lines N] [--ack-rate R]
#
# Needs a release build in build/ (cmake -S . -B build && cmake --build
# build) and the PostgreSQL server binaries (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

lines=2M
ack_rate=50k
while [[ $# -gt 0 ]]; do
	case $1 in
	--lines) lines=$2; shift 2 ;;
	--ack-rate) ack_rate=$2; shift 2 ;;
	*) echo "usage: $0 [--lines N] [--ack-rate R]" >&2; exit 2 ;;
	esac
done

work=$(mktemp -d /var/tmp/logsink-spool-bench.XXXXXX)
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
if [[ $(id -u) -eq 0 ]]; then
	user_args=(--user nobody)
	mkdir "$work/spool" && chown nobody "$work/spool"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# 1. The database is unreachable (port 1): everything goes to memory and
#    then to the spool.
port=$(free_port)
aport=$(free_port)
./build/logsinkd "${user_args[@]}" --listen "127.0.0.1:$port" \
	--listen "127.0.0.1:$aport ack=spooled" \
	--db "host=127.0.0.1 port=1 connect_timeout=1" \
	--spool-dir "$work/spool" --stats-interval 0 >"$work/down.log" 2>&1 &
daemon_pid=$!
wait_port "$port"
echo "== database down: $lines lines, 16 connections, as fast as possible"
./build/bench/loadgen --connect "127.0.0.1:$port" --lines "$lines"
echo "== database down: ack=spooled at $ack_rate lines/s, 4 connections"
./build/bench/loadgen --connect "127.0.0.1:$aport" --lines 200k \
	--rate "$ack_rate" --connections 4 --ack
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=""
grep -h "spool" "$work/down.log" | tail -2
echo "spool on disk: $(du -sh "$work/spool" | cut -f1)"

# 2. The database is back: replay everything.
conninfo=$(bash scripts/pg-private.sh start "$pgdir" | tail -1)
./build/logsinkd --db "$conninfo" --init-db >/dev/null
port=$(free_port)
start=$(date +%s.%N)
./build/logsinkd "${user_args[@]}" --listen "127.0.0.1:$port" \
	--db "$conninfo" --spool-dir "$work/spool" --stats-interval 0 \
	>"$work/up.log" 2>&1 &
daemon_pid=$!
while compgen -G "$work/spool/*.seg" >/dev/null; do sleep 0.1; done
end=$(date +%s.%N)
rows=$(psql "$conninfo" -Atc "select count(*) from logs")
distinct=$(psql "$conninfo" -Atc "select count(distinct message) from logs")
python3 -c "import sys; r,d,s,e=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); print('== replay: %d rows (%d distinct) in %.1f s: %.0f rows/s' % (r, d, e-s, r/(e-s)))" \
	"$rows" "$distinct" "$start" "$end"
