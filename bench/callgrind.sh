#!/usr/bin/env bash
# bench/callgrind.sh: logsinkd's instructions per line, under valgrind
# --tool=callgrind (instruction counts do not depend on what else the
# machine runs, unlike wall-clock rates).  See docs/performance.md.
#
# For each format, logsinkd runs under callgrind twice, fed SMALL and then
# LARGE lines by loadgen (16 connections) into a real PostgreSQL; each run
# ends when all rows are visible, with SIGTERM.  Instructions per line =
# (Ir(LARGE) - Ir(SMALL)) / (LARGE - SMALL): start-up, connection set-up
# and shutdown cancel out.  The LARGE run's profile (self cost per
# function, with its share) is printed and kept in the work directory.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$REPO/build SMALL=20000 LARGE=220000 FORMATS=plain,rfc5424 TOP=25
DB="" DAEMON_ARGS=() KEEP=0

usage() {
	cat <<'EOF'
usage: bench/callgrind.sh [options]

  --build-dir DIR        logsinkd and bench/loadgen (default build/; use a
                         release build with debug info, RelWithDebInfo)
  --formats LIST         loadgen formats (default plain,rfc5424)
  --small N, --large N   lines of the two runs (default 20000, 220000)
  --db CONNINFO          use this database (its logs table is TRUNCATEd!);
                         default: a private cluster in a temporary directory
  --daemon-args "ARGS"   extra logsinkd settings
  --top K                functions listed per profile (default 25)
  --keep                 keep the work directory (callgrind.out.* files)
EOF
}

while (($#)); do
	case $1 in
	--build-dir) BUILD_DIR=$2; shift ;;
	--formats) FORMATS=$2; shift ;;
	--small) SMALL=$2; shift ;;
	--large) LARGE=$2; shift ;;
	--db) DB=$2; shift ;;
	--daemon-args) read -r -a DAEMON_ARGS <<<"$2"; shift ;;
	--top) TOP=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
for t in valgrind callgrind_annotate psql; do
	command -v "$t" >/dev/null || { echo "callgrind.sh: $t not found" >&2; exit 2; }
done
LOGSINKD=$BUILD_DIR/logsinkd LOADGEN=$BUILD_DIR/bench/loadgen
[[ -x $LOGSINKD && -x $LOADGEN ]] || { echo "callgrind.sh: build logsinkd and loadgen in $BUILD_DIR first" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/logsink-callgrind.XXXXXX")
chmod 1777 "$WORK" # run as root, callgrind runs as nobody and writes here
OWN_PG=0 DPID=""
cleanup() {
	[[ -n $DPID ]] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	((OWN_PG)) && bash "$REPO/scripts/pg-private.sh" stop "$WORK/pg" || true
	if ((KEEP)); then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
if [[ -z $DB ]]; then
	DB=$(bash "$REPO/scripts/pg-private.sh" start "$WORK/pg")
	OWN_PG=1
fi
q() { psql "$DB" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
"$LOGSINKD" --db "$DB" --init-db >/dev/null 2>&1
AS_USER=() # logsinkd refuses to run as root; callgrind writes as that user
(($(id -u) == 0)) && AS_USER=(runuser -u nobody --)

# Ir of one run of N lines of format F: prints the total.
run() { # FORMAT N
	local out=$WORK/callgrind.out.$1.$2 log=$WORK/logsinkd.$1.$2.log port i
	q -c "truncate logs"
	port=$((20000 + RANDOM % 10000))
	"${AS_USER[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$LOGSINKD" --db "$DB" --listen "127.0.0.1:$port" "${DAEMON_ARGS[@]}" >"$log" 2>&1 &
	DPID=$!
	for ((i = 0; i < 600; i++)); do
		grep -qs ' started$' "$log" && break
		sleep 0.1
	done
	"$LOADGEN" --connect "127.0.0.1:$port" --connections 16 --lines "$2" --format "$1" >/dev/null
	for ((i = 0; i < 1200; i++)); do
		(($(q -c "select count(*) from logs") >= $2)) && break
		sleep 0.5
	done
	kill -TERM "$DPID"
	wait "$DPID" || true # runuser reports the signal
	DPID=""
	awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

IFS=, read -r -a FMTS <<<"$FORMATS"
printf 'format\tIr(%s lines)\tIr(%s lines)\tIr per line\n' "$SMALL" "$LARGE"
for f in "${FMTS[@]}"; do
	a=$(run "$f" "$SMALL")
	b=$(run "$f" "$LARGE")
	printf '%s\t%s\t%s\t%.0f\n' "$f" "$a" "$b" "$(awk -v a="$a" -v b="$b" -v n=$((LARGE - SMALL)) 'BEGIN { print (b - a) / n }')"
	echo "--- $f: top functions by self cost, $LARGE lines (whole run)"
	callgrind_annotate --threshold=100 "$WORK/callgrind.out.$f.$LARGE" 2>/dev/null |
		awk -v top="$TOP" '/^-+$/ { sep++; next } sep >= 3 && NF && n < top { print; n++ }'
done
