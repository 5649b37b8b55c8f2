#!/usr/bin/env bash
# The long fault soak (issue 16, "an hour without growth"): the engine of
# tests/integration/test_soak.py (tests/integration/soak.py) run for an hour
# by default at half the maximum rate of the same clients (measured first,
# 20 s without faults, unless --rate is given), with the same fault mix
# repeated in seeded shuffled rounds.  Every --interval seconds it samples
# logsinkd's RSS and open fds, queue and spool bytes (/metrics), lines sent
# and acknowledged, and the ack latency (p50/p99/max of the lines
# acknowledged in the interval); it writes them to soak.csv and plots them
# over time to soak.png (gnuplot), and ends with one RESULT line: seed,
# faults by kind, lines sent/acked/stored, lost, lost_acked, duplicates,
# max RSS and fds and their bounds.  Exit 1 if a check failed.
#
#   sudo bash bench/soak.sh [--seconds N] [--rate LINES_PER_S_PER_CLIENT]
#        [--seed S] [--clients PER_LISTENER] [--interval S] [--out DIR]
#        [--build-dir DIR]
#
# Needs root (network namespace, nftables, a tmpfs mount), a build in
# build/ (cmake -S . -B build && cmake --build build), the test packages
# (scripts/deps.sh --test) and gnuplot (installed here if missing: the
# Debian package gnuplot-nox; scripts/deps.sh --bench installs it too).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=3600
rate=""
seed=""
clients=2
interval=5
out=""
build=build
while [[ $# -gt 0 ]]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--interval) interval=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--build-dir) build=$2; shift 2 ;;
	*)
		echo "usage: $0 [--seconds N] [--rate R] [--seed S] [--clients N]" \
			"[--interval S] [--out DIR] [--build-dir DIR]" >&2
		exit 2
		;;
	esac
done
[[ $(id -u) -eq 0 ]] || { echo "soak.sh: needs root" >&2; exit 2; }
[[ -x $build/logsinkd ]] || { echo "soak.sh: no $build/logsinkd" >&2; exit 2; }
if ! command -v gnuplot >/dev/null; then
	echo "soak.sh: installing gnuplot-nox"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends gnuplot-nox >/dev/null
fi
out=${out:-bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
args=(--seconds "$seconds" --clients "$clients" --interval "$interval"
	--csv "$out/soak.csv")
[[ -n $rate ]] && args+=(--rate "$rate")
[[ -n $seed ]] && args+=(--seed "$seed")

rc=0
LOGSINKD=$PWD/$build/logsinkd LOGSINK_BUILD=$PWD/$build \
	/usr/bin/python3 tests/integration/soak.py "${args[@]}" 2>&1 |
	tee "$out/soak.log" || rc=$?

gnuplot <<GP
set terminal pngcairo size 1200,1000 font ",9"
set output "$out/soak.png"
set datafile separator ","
set key autotitle columnhead top left
set multiplot layout 4,1 title "logsinkd fault soak: $(grep -o 'seed [0-9]*' "$out/soak.log" | tail -n 1)"
set xlabel "seconds"
set grid
set ylabel "RSS (KiB)"
set y2label "open fds"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
plot "$out/soak.csv" using 1:2 with lines title "RSS KiB", \
	"" using 1:3 axes x1y2 with lines title "fds"
unset y2label
unset y2tics
set ylabel "bytes"
plot "$out/soak.csv" using 1:4 with lines title "queue bytes", \
	"" using 1:5 with lines title "spool bytes"
set ylabel "ack latency (ms)"
set logscale y
plot "$out/soak.csv" using 1:9 with lines title "p99", \
	"" using 1:10 with lines title "max"
unset logscale y
set ylabel "lines/s"
ps = 0; pa = 0; ts = 0; ta = 0
plot "$out/soak.csv" using 1:(r = (\$1 > ts ? (\$6 - ps) / (\$1 - ts) : 0), ps = \$6, ts = \$1, r) with lines title "sent", \
	"" using 1:(r = (\$1 > ta ? (\$7 - pa) / (\$1 - ta) : 0), pa = \$7, ta = \$1, r) with lines title "acknowledged"
unset multiplot
GP
echo "soak.sh: $out/soak.csv $out/soak.png $out/soak.log"
exit "$rc"
