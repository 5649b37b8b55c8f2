#!/usr/bin/env bash
# bench/fairness.sh: one flooder and ten well-behaved clients (issue 16,
# item 3).  Per variant, a fresh logsinkd on a private PostgreSQL
# (scripts/pg-private.sh, the real schema): bench/loadgen floods a plain
# listener as fast as it can over --flood-connections connections, and
# after a warm-up a second loadgen runs --clients connections at --rate
# lines/s each on an ack=commit listener for --seconds, reading acks.
# Prints per variant: the clients' ack latency p50/p99/max (loadgen's,
# send to the "ok N" covering the line), the lines/s they achieved, the
# flooder's stored lines/s over the same window (from the database:
# received_at between the clients' first and last line), the clients'
# share of what was stored, and the daemon's pause counts while the
# clients ran (from 1 s after they started to 3 s before their end; in
# the warm-up only the flooder's connections are open and share the
# whole queue among them): client pauses for their fair share and for a
# full queue (logsink_clients_paused_total, "-" on a binary without it)
# and queue-full episodes (logsink_backpressure_events_total).
#
#   bash bench/fairness.sh [--seconds S] [--clients N] [--rate R]
#       [--flood-connections F] [--queue-bytes SIZE]
#       [--variants "NAME=ARGS;NAME=@/path/to/logsinkd ARGS;..."]
#       [--build-dir DIR] [--keep]
#
# --variants as in bench/run.sh: extra logsinkd settings per variant, or
# @PATH for another binary (e.g. the previous commit's build, "before");
# default "after=" (this build, default settings).  Numbers are never
# asserted (tests/integration/test_fairness.py checks the structure).
# --keep leaves the work directory (the daemons' logs) in /var/tmp.
# Needs logsinkd and bench/loadgen in the build directory and the
# PostgreSQL server binaries (scripts/deps.sh).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

seconds=20 clients=10 rate=100 flood_conns=4 queue=16MiB
variants="after=" build=build warmup=3 keep=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--flood-connections) flood_conns=$2; shift 2 ;;
	--queue-bytes) queue=$2; shift 2 ;;
	--variants) variants=$2; shift 2 ;;
	--build-dir) build=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,25p' "$0"; exit 0 ;;
	*) echo "fairness.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
loadgen=$build/bench/loadgen
[[ -x $build/logsinkd && -x $loadgen ]] ||
	{ echo "fairness.sh: build logsinkd and bench/loadgen in $build first" >&2; exit 2; }

work=$(mktemp -d /var/tmp/logsink-fair-bench.XXXXXX)
chmod 0755 "$work"
daemon_pid="" flood_pid=""
pgdir=$work/pg
cleanup() {
	[[ -n $flood_pid ]] && kill "$flood_pid" 2>/dev/null && wait "$flood_pid" 2>/dev/null
	[[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	bash scripts/pg-private.sh stop "$pgdir" >/dev/null 2>&1 || true
	if ((keep)); then echo "fairness.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

user_args=()
[[ $(id -u) -eq 0 ]] && user_args=(--user nobody)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# pauses: "FAIR FULL BP" from one read of the daemon's /metrics page:
# logsink_clients_paused_total{reason="fair-share"} and {"queue-full"},
# logsink_backpressure_events_total; "-" for a sample it lacks.
pauses() {
	python3 - "$mport" <<'EOF'
import sys, urllib.request
try:
    page = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1],
                                  timeout=10).read().decode()
except OSError:
    page = ""
values = dict(l.rsplit(" ", 1) for l in page.splitlines()
              if l and not l.startswith("#"))
print(" ".join(values.get(k, "-") for k in (
    'logsink_clients_paused_total{reason="fair-share"}',
    'logsink_clients_paused_total{reason="queue-full"}',
    "logsink_backpressure_events_total")))
EOF
}
# delta BEFORE AFTER: AFTER - BEFORE, or "-" when either is "-".
delta() { [[ $1 == - || $2 == - ]] && echo - || echo $((${2%.*} - ${1%.*})); }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

conninfo=$(bash scripts/pg-private.sh start "$pgdir" | tail -1)
"$build/logsinkd" --db "$conninfo" --init-db >/dev/null
lines=$((clients * rate * seconds))
printf "%-10s %9s %9s %9s %9s %10s %10s %7s %6s %6s %6s\n" variant p50_ms \
	p99_ms max_ms acked clients/s flood/s share fair full bp
IFS=';' read -r -a vlist <<<"$variants"
for v in "${vlist[@]}"; do
	name=${v%%=*} args=${v#*=} bin=$build/logsinkd
	if [[ $args == @* ]]; then
		bin=${args%% *} bin=${bin#@}
		[[ $args == *" "* ]] && args=${args#* } || args=""
	fi
	read -r -a extra <<<"$args"
	psql "$conninfo" -qc "truncate logs" >/dev/null
	aport=$(free_port) fport=$(free_port) mport=$(free_port)
	"$bin" "${user_args[@]}" --db "$conninfo" --queue-bytes "$queue" \
		--listen "127.0.0.1:$aport ack=commit" --listen "127.0.0.1:$fport" \
		--metrics-listen "127.0.0.1:$mport" --stats-interval 0 \
		"${extra[@]}" >"$work/$name.log" 2>&1 &
	daemon_pid=$!
	wait_port "$aport" && wait_port "$fport" && wait_port "$mport" ||
		{ echo "fairness.sh: $name: logsinkd did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
	"$loadgen" --connect "127.0.0.1:$fport" --connections "$flood_conns" \
		--lines 2G --run-id flood >/dev/null 2>&1 &
	flood_pid=$!
	sleep "$warmup" # the flood builds up the queue first (a warm-up)
	"$loadgen" --connect "127.0.0.1:$aport" --connections "$clients" \
		--rate $((clients * rate)) --lines "$lines" --ack --run-id ten \
		--ack-timeout 120 >"$work/$name.ten.out" 2>"$work/$name.ten.err" &
	ten_pid=$!
	# The pause counts over the clients' run, from 1 s after they
	# started to 3 s before their end.
	t0=$(date +%s)
	sleep 1
	read -r fair0 full0 bp0 < <(pauses)
	while (($(date +%s) < t0 + seconds - 3)); do sleep 0.2; done
	read -r fair1 full1 bp1 < <(pauses)
	fair=$(delta "$fair0" "$fair1") full=$(delta "$full0" "$full1")
	bp=$(delta "$bp0" "$bp1")
	wait "$ten_pid" ||
		{ echo "fairness.sh: $name: the clients failed:" >&2; cat "$work/$name.ten.err" >&2; }
	out=$(cat "$work/$name.ten.out")
	kill "$flood_pid" 2>/dev/null || true
	wait "$flood_pid" 2>/dev/null || true
	flood_pid=""
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || true
	daemon_pid=""
	read -r ten flood < <(psql "$conninfo" -AtF' ' -c "
		with w as (select min(received_at) t0, max(received_at) t1
			from logs where message like '%id=ten-%')
		select count(*) filter (where message like '%id=ten-%'),
		       count(*) filter (where message like '%id=flood-%'
				and received_at between w.t0 and w.t1)
		from logs, w")
	window=$(psql "$conninfo" -At -c "select extract(epoch from
		max(received_at) - min(received_at)) from logs
		where message like '%id=ten-%'")
	python3 - "$name" "$(field ack_p50_ms "$out")" "$(field ack_p99_ms "$out")" \
		"$(field ack_max_ms "$out")" "$(field acked "$out")" "$ten" "$flood" \
		"$window" "$fair" "$full" "$bp" <<'EOF'
import sys
name, p50, p99, mx, acked, ten, flood, window, fair, full, bp = sys.argv[1:]
w = float(window or 0) or 1.0
ten, flood = int(ten), int(flood)
print("%-10s %9s %9s %9s %9s %10.0f %10.0f %6.1f%% %6s %6s %6s" % (
    name, p50 or "-", p99 or "-", mx or "-", acked or "-", ten / w,
    flood / w, 100.0 * ten / max(1, ten + flood), fair, full, bp))
EOF
done
