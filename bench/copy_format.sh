#!/usr/bin/env bash
# bench/copy_format.sh: PostgreSQL's CPU for COPY FROM STDIN of the same
# rows in text and in binary format, into the real schema (as shipped, and
# without indexes).  See docs/performance.md ("COPY text or binary").
#
# A private cluster (bench settings: fsync=off etc.) gets the schema of
# logsinkd --init-db; logsinkd stores N lines per loadgen format; the rows
# are exported with \copy ... to FILE in text and in binary format.  Then,
# alternating text and binary (A B A B ...), each file is loaded into the
# TRUNCATEd table by one psql \copy; the backend's utime+stime
# (/proc/PID/stat) before and after gives its CPU per million rows.
#
# With --rows-per-copy "1000 5000 20000", it compares instead the text
# files split into COPYs of that many rows (one transaction each, one
# session, sizes alternating): PostgreSQL's cost per COPY (batch-lines).
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$REPO/build LINES=1M RUNS=5 FORMATS=plain,rfc5424 KEEP=0 CHUNKS=""

while (($#)); do
	case $1 in
	--build-dir) BUILD_DIR=$2; shift ;;
	--lines) LINES=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--formats) FORMATS=$2; shift ;;
	--keep) KEEP=1 ;;
	--rows-per-copy) CHUNKS=$2; shift ;;
	-h | --help)
		echo "usage: bench/copy_format.sh [--build-dir DIR] [--lines N] [--runs K] [--formats plain,rfc5424] [--rows-per-copy \"N ...\"] [--keep]"
		exit 0 ;;
	*) echo "copy_format.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
LOGSINKD=$BUILD_DIR/logsinkd LOADGEN=$BUILD_DIR/bench/loadgen
[[ -x $LOGSINKD && -x $LOADGEN ]] || { echo "copy_format.sh: build logsinkd and loadgen in $BUILD_DIR first" >&2; exit 2; }
COLS="received_at, peer, host, app, procid, msgid, facility, severity, event_time, message, fields"
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/logsink-copyfmt.XXXXXX")
chmod 755 "$WORK"
DPID=""
cleanup() {
	[[ -n $DPID ]] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	bash "$REPO/scripts/pg-private.sh" stop "$WORK/pg" || true
	if ((KEEP)); then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
DB=$(bash "$REPO/scripts/pg-private.sh" start "$WORK/pg")
q() { psql "$DB" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
for s in "fsync=off" "synchronous_commit=off" "full_page_writes=off" "shared_buffers='1GB'" \
	"max_wal_size='8GB'" "checkpoint_timeout='30min'" "wal_level=minimal" "max_wal_senders=0" "autovacuum=off"; do
	q -c "alter system set ${s%%=*} = ${s#*=}"
done
bash "$REPO/scripts/pg-private.sh" stop "$WORK/pg"
bash "$REPO/scripts/pg-private.sh" start "$WORK/pg" >/dev/null
"$LOGSINKD" --db "$DB" --init-db >/dev/null 2>&1
q -c "create database noidx"
DB_NOIDX=${DB/dbname=postgres/dbname=noidx}
"$LOGSINKD" --db "$DB_NOIDX" --init-db >/dev/null 2>&1
psql "$DB_NOIDX" -X -q -c "DROP INDEX logs_time_brin, logs_host_time, logs_app_time, logs_severity_time, logs_fields_gin"
AS_USER=()
(($(id -u) == 0)) && AS_USER=(runuser -u nobody --)

IFS=, read -r -a FMTS <<<"$FORMATS"
for f in "${FMTS[@]}"; do
	q -c "truncate logs"
	port=$((20000 + RANDOM % 10000))
	"${AS_USER[@]}" "$LOGSINKD" --db "$DB" --listen "127.0.0.1:$port" >"$WORK/logsinkd.log" 2>&1 &
	DPID=$!
	for ((i = 0; i < 100; i++)); do grep -q ' started$' "$WORK/logsinkd.log" && break; sleep 0.1; done
	sent=$("$LOADGEN" --connect "127.0.0.1:$port" --lines "$LINES" --format "$f" | sed -n 's/^sent=\([0-9]*\).*/\1/p')
	until (($(q -c "select count(*) from logs") >= sent)); do sleep 0.5; done
	kill -TERM "$DPID"
	wait "$DPID" || true # runuser reports the signal
	DPID=""
	q -c "\\copy (select $COLS from logs) to '$WORK/$f.text'"
	q -c "\\copy (select $COLS from logs) to '$WORK/$f.binary' with (format binary)"
done
q -c "truncate logs"

# CPU seconds of the backend that runs one \copy of FILE in FORMAT into DB.
copy_cpu() { # DB FILE FORMAT
	local out
	out=$(psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 <<EOF
truncate logs;
checkpoint;
select pg_backend_pid() as pid \gset
\setenv PID :pid
\\! awk '{ sub(/^.*\\) /, ""); print \$12 + \$13 }' /proc/\$PID/stat
\\copy logs ($COLS) from '$2' with (format $3)
\\! awk '{ sub(/^.*\\) /, ""); print \$12 + \$13 }' /proc/\$PID/stat
EOF
	)
	awk -v t="$CLK_TCK" 'NR == 1 { a = $1 } NR == 2 { printf "%.2f", ($1 - a) / t }' <<<"$out"
}

# CPU seconds of the backend that loads the files DIR/chunk.* (text), one
# \copy (transaction) each, in one session.
chunks_cpu() { # DB DIR
	local f
	{
		echo "truncate logs;"
		echo "checkpoint;"
		echo "select pg_backend_pid() as pid \\gset"
		echo "\\setenv PID :pid"
		echo "\\! awk '{ sub(/^.*\\) /, \"\"); print \$12 + \$13 }' /proc/\$PID/stat"
		for f in "$2"/chunk.*; do echo "\\copy logs ($COLS) from '$f'"; done
		echo "\\! awk '{ sub(/^.*\\) /, \"\"); print \$12 + \$13 }' /proc/\$PID/stat"
	} >"$2.sql"
	psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 -f "$2.sql" |
		awk -v t="$CLK_TCK" 'NR == 1 { a = $1 } NR == 2 { printf "%.2f", ($1 - a) / t }'
}

median() { tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

if [[ -n $CHUNKS ]]; then
	echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg); $LINES rows, $RUNS runs each, COPY sizes alternating"
	printf 'rows\trows per COPY\ts/M rows (runs)\n'
	for f in "${FMTS[@]}"; do
		rows=$(awk 'END { print NR }' "$WORK/$f.text")
		for n in $CHUNKS; do
			mkdir -p "$WORK/$f.$n"
			split -l "$n" -d -a 5 "$WORK/$f.text" "$WORK/$f.$n/chunk."
		done
		declare -A res=()
		for ((r = 0; r < RUNS; r++)); do
			for n in $CHUNKS; do
				res[$n]+=" $(awk -v s="$(chunks_cpu "$DB" "$WORK/$f.$n")" -v n="$rows" 'BEGIN { printf "%.2f", s / (n / 1e6) }')"
			done
		done
		for n in $CHUNKS; do
			printf '%s\t%s\t%s (%s)\n' "$f" "$n" "$(echo ${res[$n]} | median)" "${res[$n]# }"
		done
		unset res
	done
	echo "# load at end $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg); $LINES rows per file, $RUNS runs each, text and binary alternating"
printf 'rows\tschema\ttext file MB\tbinary file MB\ttext s/M rows (runs)\tbinary s/M rows (runs)\tbinary/text\n'
for f in "${FMTS[@]}"; do
	rows=$(awk 'END { print NR }' "$WORK/$f.text")
	for schema in indexes noidx; do
		db=$DB
		[[ $schema == noidx ]] && db=$DB_NOIDX
		t=() b=()
		for ((r = 0; r < RUNS; r++)); do
			t+=("$(awk -v s="$(copy_cpu "$db" "$WORK/$f.text" text)" -v n="$rows" 'BEGIN { printf "%.2f", s / (n / 1e6) }')")
			b+=("$(awk -v s="$(copy_cpu "$db" "$WORK/$f.binary" binary)" -v n="$rows" 'BEGIN { printf "%.2f", s / (n / 1e6) }')")
		done
		mt=$(echo "${t[*]}" | median) mb=$(echo "${b[*]}" | median)
		printf '%s\t%s\t%.0f\t%.0f\t%s (%s)\t%s (%s)\t%.2f\n' "$f" "$schema" \
			"$(($(stat -c %s "$WORK/$f.text") / 1000000))" "$(($(stat -c %s "$WORK/$f.binary") / 1000000))" \
			"$mt" "${t[*]}" "$mb" "${b[*]}" "$(awk -v a="$mt" -v b="$mb" 'BEGIN { print b / a }')"
	done
done
echo "# load at end $(cut -d' ' -f1-3 /proc/loadavg)"
