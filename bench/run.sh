#!/usr/bin/env bash
# bench/run.sh: logsinkd end to end against a direct-COPY ceiling, on one
# private PostgreSQL cluster with the real schema.  See bench/README.md
# ("End-to-end benchmark: run.sh") and `bench/run.sh --help`.
#
# Per case and run: logsinkd is started fresh on an empty (TRUNCATEd)
# table, loadgen sends N lines, and the run ends when all N rows are
# visible.  Throughput = rows / (commit time of the last row - receive time
# of the first row); both come from the database (received_at and
# track_commit_timestamp), so the script never polls count(*) during the
# measured window.  The ceiling: the rows of the case's first run, exported
# with \copy into P files (binary COPY format, as logsinkd sends, unless
# --ceiling-format text) and COPY'd back by P parallel psql streams into
# the same (TRUNCATEd) table.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL_CASES=(plain16 rfc5424_16 conn1000 idle10k ack)
COLS="received_at, peer, host, app, procid, msgid, facility, severity, event_time, message, fields, tls_subject"

usage() {
	cat <<'EOF'
usage: bench/run.sh [options]

Measures logsinkd end to end (lines/s, CPU, RSS, lost/duplicated lines)
and the COPY ceiling of the same rows, on a private PostgreSQL.

  --lines N              lines per run (k/M/G suffixes; default 2M)
  --runs K               runs per case, medians reported (default 3)
  --cases LIST           comma-separated: plain16,rfc5424_16,conn1000,
                         idle10k,ack (default: all)
  --ceiling-streams P    parallel COPY streams for the ceiling (default 2)
  --ceiling-format F     binary (default: the format logsinkd writes) or text
  --smoke                CI mode: 20k lines, 1 run, plain16 and rfc5424_16,
                         shared_buffers=128MB; fails (exit 1) on any error
                         or lost line.  Explicit options override these.
  --json FILE            also write the results as JSON
  --build-dir DIR        where logsinkd and bench/loadgen are (default:
                         build/ of this checkout; built if missing)
  --build                (re)build them first (cmake --build)
  --daemon-args "ARGS"   extra logsinkd settings, e.g. "--db-connections 4"
  --daemon-user NAME     as root: the user logsinkd switches to (--user), if it
                         supports that (default: nobody, else postgres)
  --loadgen-args "ARGS"  extra loadgen options, e.g. "--size 300"
  --variants "N=ARGS;..." compare logsinkd settings: every case runs once per
                         variant N (extra daemon ARGS, may be empty) in each
                         run, interleaved (A B A B ...); rows are labelled
                         CASE:N; one ceiling per case and run serves all.
                         ARGS starting with @PATH run the logsinkd at PATH
                         (e.g. a build with other buffer sizes)
  --ack-rate R           the ack case's loadgen --rate (default: half the
                         plain16 median of this run, else 50000)
  --pg-setting K=V       extra/overriding server setting (repeatable)
  --settle S             give up waiting for rows after S s without
                         progress (default 20; smoke 10)
  --keep                 keep the temporary directory (logs, data)
  --without-indexes      drop the table's indexes after --init-db (measures
                         what index upkeep costs COPY and logsinkd)
  -h, --help

Numbers are never asserted.  Exit status: 0 when every case was measured;
1 when a case could not be measured (or, with --smoke, a line was lost);
2 on usage errors.  Environment: PG_BINDIR (PostgreSQL server binaries),
TMPDIR (where the cluster and the ceiling files go; must be reachable by
the postgres user when run as root).
EOF
}

die() {
	echo "run.sh: $*" >&2
	exit 2
}
log() { echo "run.sh: $*" >&2; }

# Counts with k/M/G suffixes (powers of ten, as loadgen).
parse_count() {
	local s=$1 m=1
	case $s in
	*[kK]) m=1000 s=${s%?} ;;
	*M) m=1000000 s=${s%?} ;;
	*G) m=1000000000 s=${s%?} ;;
	esac
	[[ $s =~ ^[0-9]+$ ]] || die "not a count: $1"
	echo $((s * m))
}

# ---------------------------------------------------------------- options
LINES=2000000 RUNS=3 CASES="" STREAMS=2 SMOKE=0 JSON="" BUILD_DIR="$REPO/build"
FORCE_BUILD=0 KEEP=0 NO_INDEXES=0 SETTLE="" DAEMON_USER="" DAEMON_ARGS=() LOADGEN_ARGS=() PG_EXTRA=()
VARIANTS_SPEC="" FIXED_ACK_RATE="" CEIL_FORMAT=binary
lines_set=0 runs_set=0
while (($#)); do
	case $1 in
	--lines) LINES=$(parse_count "${2:?--lines needs a value}") lines_set=1; shift ;;
	--runs) RUNS=${2:?--runs needs a value} runs_set=1; shift ;;
	--cases) CASES=${2:?--cases needs a value}; shift ;;
	--ceiling-streams) STREAMS=${2:?--ceiling-streams needs a value}; shift ;;
	--ceiling-format) CEIL_FORMAT=${2:?--ceiling-format needs text or binary}; shift ;;
	--smoke) SMOKE=1 ;;
	--json) JSON=${2:?--json needs a file}; shift ;;
	--build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift ;;
	--build) FORCE_BUILD=1 ;;
	--daemon-args) read -r -a DAEMON_ARGS <<<"${2?}"; shift ;;
	--daemon-user) DAEMON_USER=${2:?--daemon-user needs a user}; shift ;;
	--loadgen-args) read -r -a LOADGEN_ARGS <<<"${2?}"; shift ;;
	--variants) VARIANTS_SPEC=${2:?--variants needs N=ARGS;...}; shift ;;
	--ack-rate) FIXED_ACK_RATE=${2:?--ack-rate needs lines/s}; shift ;;
	--pg-setting) [[ ${2:-} == *=* ]] || die "--pg-setting needs NAME=VALUE"; PG_EXTRA+=("$2"); shift ;;
	--settle) SETTLE=${2:?--settle needs seconds}; shift ;;
	--keep) KEEP=1 ;;
	--without-indexes) NO_INDEXES=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" ;;
	esac
	shift
done
if ((SMOKE)); then
	((lines_set)) || LINES=20000
	((runs_set)) || RUNS=1
	[[ -n $CASES ]] || CASES=plain16,rfc5424_16
	[[ -n $SETTLE ]] || SETTLE=10
fi
[[ -n $CASES ]] || CASES=$(IFS=,; echo "${ALL_CASES[*]}")
[[ -n $SETTLE ]] || SETTLE=20
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive integer"
[[ $STREAMS =~ ^[1-9][0-9]*$ ]] || die "--ceiling-streams: a positive integer"
[[ $CEIL_FORMAT == text || $CEIL_FORMAT == binary ]] || die "--ceiling-format: text or binary"
[[ $SETTLE =~ ^[1-9][0-9]*$ ]] || die "--settle: a positive integer"
((LINES > 0)) || die "--lines must be positive"
IFS=, read -r -a SEL_CASES <<<"$CASES"
for c in "${SEL_CASES[@]}"; do
	[[ " ${ALL_CASES[*]} " == *" $c "* ]] || die "unknown case '$c' (known: ${ALL_CASES[*]})"
done

# Server settings: the same for the ceiling and for logsinkd.
PG_SETTINGS=(fsync=off synchronous_commit=off full_page_writes=off
	shared_buffers=1GB max_wal_size=8GB checkpoint_timeout=30min
	wal_level=minimal max_wal_senders=0 autovacuum=off
	track_commit_timestamp=on)
((SMOKE)) && PG_SETTINGS+=(shared_buffers=128MB max_wal_size=1GB)
PG_SETTINGS+=("${PG_EXTRA[@]}")
# Later duplicates win; keep only the effective value of each name.
declare -A _seen=()
_eff=()
for ((i = ${#PG_SETTINGS[@]} - 1; i >= 0; i--)); do
	k=${PG_SETTINGS[i]%%=*}
	[[ -n ${_seen[$k]:-} ]] && continue
	_seen[$k]=1
	_eff=("${PG_SETTINGS[i]}" "${_eff[@]}")
done
PG_SETTINGS=("${_eff[@]}")

# ------------------------------------------------------------ tools
LOGSINKD=$BUILD_DIR/logsinkd
LOADGEN=$BUILD_DIR/bench/loadgen
if ((FORCE_BUILD)) || [[ ! -x $LOGSINKD || ! -x $LOADGEN ]]; then
	log "building logsinkd and loadgen in $BUILD_DIR"
	cmake -S "$REPO" -B "$BUILD_DIR" >/dev/null
	cmake --build "$BUILD_DIR" --target logsinkd loadgen -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
[[ -x $LOGSINKD && -x $LOADGEN ]] || die "logsinkd or loadgen missing in $BUILD_DIR"

PG_BIN=${PG_BINDIR:-}
if [[ -z $PG_BIN ]]; then
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	[[ -x $PG_BIN/initdb ]] || PG_BIN=$(pg_config --bindir 2>/dev/null || true)
	[[ -x $PG_BIN/initdb ]] || PG_BIN=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || die "PostgreSQL server binaries not found (install postgresql or set PG_BINDIR)"
PSQL=$PG_BIN/psql
[[ -x $PSQL ]] || PSQL=$(command -v psql) || die "psql not found"
for t in awk getconf split timeout; do
	command -v "$t" >/dev/null || die "$t not found"
done
CLK_TCK=$(getconf CLK_TCK)

AS_PG=()
PG_USER=$(id -un)
if (($(id -u) == 0)); then
	id postgres >/dev/null 2>&1 || die "as root, PostgreSQL runs as the 'postgres' user, which does not exist"
	AS_PG=(runuser -u postgres --)
	PG_USER=postgres
fi

# Descriptors: idle10k needs ~10,030 in logsinkd and in loadgen.
NEED_FDS=4096
[[ ",$CASES," == *,idle10k,* ]] && NEED_FDS=12000
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < NEED_FDS)); then
	ulimit -Hn "$NEED_FDS" 2>/dev/null || true
	hard=$(ulimit -Hn)
fi
soft=$NEED_FDS
[[ $hard != unlimited ]] && ((hard < soft)) && soft=$hard
(($(ulimit -Sn) >= soft)) || ulimit -Sn "$soft"
NOFILE=$(ulimit -Sn)

# ------------------------------------------------------------ state, cleanup
WORK="" PG_DIR="" PG_STARTED=0 DPID="" LG_PID="" CEIL_PIDS=() DB=""
FAILURES=() CASE_FAILED=0
now() {
	if [[ -n ${EPOCHREALTIME:-} ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi
}
now_us() { # sets NOW_US (microseconds) without a fork where bash allows
	if [[ -n ${EPOCHREALTIME:-} ]]; then NOW_US=${EPOCHREALTIME/[.,]/}; else NOW_US=$(date +%s%6N); fi
}

stop_daemon() { # [MAX_WAIT_S]: SIGTERM, then SIGKILL after MAX_WAIT_S (35)
	local pid=$DPID i rc=0 max=$((${1:-35} * 20))
	[[ -n $pid ]] || return 0
	DPID=""
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < max; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "logsinkd (pid $pid) did not exit ${1:-35} s after SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	[[ -n $LG_PID ]] && kill -TERM "$LG_PID" 2>/dev/null || true
	for p in "${CEIL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	stop_daemon 5 || true
	if ((PG_STARTED)); then
		"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [[ -n $WORK ]]; then
		if ((KEEP)); then log "kept $WORK"; else rm -rf "$WORK"; fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted, cleaning up"; exit 130' INT
trap 'log "terminated, cleaning up"; exit 143' TERM

# ------------------------------------------------------------ PostgreSQL
WORK=$(mktemp -d "${TMPDIR:-/tmp}/logsink-bench.XXXXXX")
chmod 711 "$WORK"
PG_DIR=$WORK/pg
mkdir -p "$PG_DIR"
if ((${#AS_PG[@]})); then
	chown postgres: "$PG_DIR"
	"${AS_PG[@]}" test -w "$PG_DIR" ||
		die "the postgres user cannot reach $PG_DIR; set TMPDIR to a directory it can reach (e.g. /var/tmp)"
fi
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U "$PG_USER" -E UTF8 --locale=C -N \
	>"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
pg_opts="-c listen_addresses='' -c unix_socket_directories='$PG_DIR'"
for s in "${PG_SETTINGS[@]}"; do pg_opts+=" -c $s"; done
if ! "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgresql.log" -w -t 60 \
	-o "$pg_opts" start >/dev/null; then
	tail -n 20 "$PG_DIR/postgresql.log" >&2 || true
	die "PostgreSQL did not start"
fi
PG_STARTED=1
DB="host=$PG_DIR dbname=postgres user=$PG_USER"
q() { "$PSQL" "$DB" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
PG_VERSION=$(q -c "show server_version")
"$LOGSINKD" --db "$DB" --init-db >"$WORK/init-db.log" 2>&1 || { cat "$WORK/init-db.log" >&2; die "logsinkd --init-db failed"; }
if ((NO_INDEXES)); then
	# The indexes docs/querying.md ("Index cost") lists; dropping the
	# parent's index drops every partition's copy.
	psql -X -q -v ON_ERROR_STOP=1 "$DB" -c "DROP INDEX logs_time_brin, logs_host_time, logs_app_time, logs_severity_time, logs_fields_gin" >/dev/null ||
		die "dropping the indexes failed"
	log "indexes dropped (--without-indexes): the table has none"
fi

# The daemon's effective settings (also validates --daemon-args).
HELP_TEXT=$("$LOGSINKD" --help 2>&1 || true)
HAS_ACK=0
grep -Eqi '(^|[^[:alnum:]])acks?([^[:alnum:]]|$)' <<<"$HELP_TEXT" && HAS_ACK=1
DAEMON_BASE=(--stats-interval 100ms)
# As root, a logsinkd that knows --user refuses to run without it: give it
# an unprivileged user (--daemon-user, default nobody, else postgres).
if (($(id -u) == 0)) && grep -q -- '--user' <<<"$HELP_TEXT" && [[ " ${DAEMON_ARGS[*]} " != *" --user"* ]]; then
	if [[ -z $DAEMON_USER ]]; then
		DAEMON_USER=postgres
		id nobody >/dev/null 2>&1 && DAEMON_USER=nobody
	fi
	DAEMON_BASE+=(--user "$DAEMON_USER")
fi
"$LOGSINKD" --db "$DB" "${DAEMON_BASE[@]}" "${DAEMON_ARGS[@]}" --check-config >"$WORK/check-config.txt" 2>&1 ||
	{ cat "$WORK/check-config.txt" >&2; die "logsinkd rejects --daemon-args"; }
DB_CONNS=$(awk -F' = ' '$1 == "db-connections" { print $2 }' "$WORK/check-config.txt")
# --variants: names, extra arguments, and db-connections of each.
VNAMES=() VARGS=() VBINS=() VCONNS=() VAR_DARGS=() CASE_DB_CONNS=$DB_CONNS VAR_BIN=""
if [[ -n $VARIANTS_SPEC ]]; then
	IFS=';' read -r -a _vs <<<"$VARIANTS_SPEC"
	for v in "${_vs[@]}"; do
		[[ $v == *=* && ${v%%=*} =~ ^[A-Za-z0-9.]+$ ]] || die "--variants: '$v' is not NAME=ARGS (NAME: letters, digits, '.')"
		VNAMES+=("${v%%=*}")
		read -r -a _a <<<"${v#*=}"
		_bin=$LOGSINKD
		if [[ ${_a[0]:-} == @* ]]; then
			_bin=${_a[0]#@}
			[[ -x $_bin ]] || die "--variants: $_bin is not executable"
			_a=("${_a[@]:1}")
		fi
		VBINS+=("$_bin")
		VARGS+=("${_a[*]}")
		"$_bin" --db "$DB" "${DAEMON_BASE[@]}" "${DAEMON_ARGS[@]}" "${_a[@]}" --check-config >"$WORK/check-config.v.txt" 2>&1 ||
			{ cat "$WORK/check-config.v.txt" >&2; die "logsinkd rejects variant '$v'"; }
		VCONNS+=("$(awk -F' = ' '$1 == "db-connections" { print $2 }' "$WORK/check-config.v.txt")")
	done
fi
DAEMON_SETTINGS=$(awk -F' = ' '$1 ~ /^(db-connections|batch-lines|batch-bytes|flush-interval-ms|queue-bytes)$/ { printf "%s%s=%s", sep, $1, $2; sep=" " }' "$WORK/check-config.txt")

# ------------------------------------------------------------ helpers
# utime+stime of a process in clock ticks (fields 14, 15 of /proc/PID/stat).
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }
	awk '{ print $12 + $13 }' <<<"$s"
}
vm_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# CPU ticks of the whole cluster: the postmaster (with its reaped children:
# cutime, cstime) plus its live children (backends, walwriter, ...).
pg_cpu_ticks() {
	local pm
	pm=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null) || { echo 0; return; }
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '{ pid = $1; sub(/^.*\) /, ""); if ($2 == pm) s += $12 + $13; else if (pid == pm) s += $12 + $13 + $14 + $15 }
		END { print s + 0 }'
}

# Machine-wide ticks from /proc/stat: "busy total" (busy = all but idle, iowait).
sys_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

# Seconds of CPU used by children reaped between two `times` outputs.
times_diff() {
	awk 'function sec(x,    m) { m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x); return m * 60 + x }
		FNR == 2 { t[++f] = sec($1) + sec($2) } END { printf "%.3f", t[2] - t[1] }' "$1" "$2"
}

# Share (%) of the machine's CPU used by processes other than ours: busy
# ticks minus ours (ticks plus seconds of reaped children) over all ticks.
other_pct() { # SB0 ST0 SB1 ST1 OUR_TICKS OUR_SECONDS
	awk -v b="$(($3 - $1))" -v t="$(($4 - $2))" -v o="$5" -v s="$6" -v hz="$CLK_TCK" 'BEGIN { o += s * hz; x = (t > 0 ? 100 * (b - o) / t : 0); printf "%.0f", (x < 0 ? 0 : x) }'
}

# Sets PORT to a TCP port below the ephemeral range (where loadgen's and
# everyone's client sockets live) that no socket uses (/proc/net/tcp*).
# Not run in $(...): a subshell would repeat the same $RANDOM sequence.
pick_port() {
	local used p i lo=32768 hi
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	((lo > 12000)) || lo=65536 # odd ephemeral range: use the ports above 10000
	used=$(awk 'NR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null || true)
	for ((i = 0; i < 200; i++)); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! grep -qix "$(printf %04X "$p")" <<<"$used"; then
			PORT=$p
			return 0
		fi
	done
	return 1
}

last_stat() { # FIELD LOGFILE: FIELD of the last stats: line, or empty
	{ tail -n 40 "$2" | grep ' stats: ' | tail -n 1 | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; } 2>/dev/null || true
}

fail_run() { # MESSAGE
	log "FAIL: $1"
	FAILURES+=("$1")
	CASE_FAILED=1
}

# Starts logsinkd on a fresh port; waits until it listens and all its
# database connections are up.  Sets DPID, PORT, DLOG.
start_daemon() {
	local attempt i n
	for attempt in 1 2 3; do
		pick_port || { fail_run "no free port"; return 1; }
		: >"$DLOG"
		"${VAR_BIN:-$LOGSINKD}" --db "$DB" --listen "127.0.0.1:$PORT$LISTEN_OPTS" "${DAEMON_BASE[@]}" "${CASE_DARGS[@]}" "${DAEMON_ARGS[@]}" "${VAR_DARGS[@]}" >>"$DLOG" 2>&1 &
		DPID=$!
		for ((i = 0; i < 300; i++)); do
			if ! kill -0 "$DPID" 2>/dev/null; then
				wait "$DPID" 2>/dev/null || true
				DPID=""
				break
			fi
			if grep -q ' started$' "$DLOG"; then
				n=$(q -c "select count(*) from pg_stat_activity where application_name = 'logsinkd'" 2>/dev/null || echo 0)
				((n >= CASE_DB_CONNS)) && return 0
			fi
			sleep 0.05
		done
		if [[ -n $DPID ]]; then
			stop_daemon 5 || true
			fail_run "$CASE run $RUN: logsinkd did not become ready in 15 s (log: $(tail -n 3 "$DLOG" | tr '\n' ' '))"
			return 1
		fi
		grep -qi 'address already in use' "$DLOG" || break
		log "port $PORT is taken ($(grep -i 'address already in use' "$DLOG" | head -n 1)); trying another"
	done
	fail_run "$CASE run $RUN: logsinkd did not start: $(tail -n 3 "$DLOG" | tr '\n' ' ')"
	return 1
}

truncate_and_checkpoint() { q -c "truncate logs" -c "checkpoint"; }

# Sets daemon_run's locals c1, hwm (logsinkd) and pg1 (PostgreSQL).  Called
# when the daemon reports everything committed, before the confirming
# count(*), which would otherwise add to the PostgreSQL CPU.
snapshot_end() {
	pg1=$(pg_cpu_ticks)
	read -r sb1 st1 < <(sys_ticks)
	if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
		c1=$(cpu_ticks "$DPID")
		hwm=$(vm_kib "$DPID" VmHWM)
	fi
}

# One end-to-end run of logsinkd.  Appends a line to $RESULTS.
daemon_run() { # CASE RUN CONNS IDLE FORMAT ACK
	local conns=$3 idle=$4 format=$5 ack=$6 run_id lg_rc=0 lg_out sent
	local c0 c1=0 pg0 pg1=0 sb0 st0 sb1=0 st1=0 oth rss0 hwm=0 done_ok=0 last_c=-1 c queued t_prog t cnt=-1 last_cnt=-1
	local stats total distinct t_first t_last secs rate lost dup d_rc=0 err="" conns_max lg_args=()
	run_id="${1//[^A-Za-z0-9.]/.}.r$2"
	DLOG=$WORK/logsinkd.$1.$2.log
	truncate_and_checkpoint
	if ! start_daemon; then
		printf 'daemon\t%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t-\t-\t%s\t0\t0\t0\n' "$1" "$2" "logsinkd did not start" >>"$RESULTS"
		return 1
	fi
	c0=$(cpu_ticks "$DPID")
	rss0=$(vm_kib "$DPID" VmRSS)
	pg0=$(pg_cpu_ticks)
	read -r sb0 st0 < <(sys_ticks)

	lg_args=(--connect "127.0.0.1:$PORT" --connections "$conns" --lines "$LINES" --format "$format" --run-id "$run_id")
	((idle > 0)) && lg_args+=(--idle "$idle")
	((ack)) && lg_args+=(--ack --rate "$ACK_RATE")
	timeout $((120 + LINES / 2000)) "$LOADGEN" "${lg_args[@]}" "${LOADGEN_ARGS[@]}" \
		>"$WORK/loadgen.$1.$2.out" 2>"$WORK/loadgen.$1.$2.err" &
	LG_PID=$!
	times >"$WORK/times.0" # children CPU so far; loadgen is reaped (via timeout) in the wait
	wait "$LG_PID" || lg_rc=$?
	times >"$WORK/times.1"
	LG_PID=""
	lg_out=$(tail -n 1 "$WORK/loadgen.$1.$2.out" 2>/dev/null || true)
	sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$lg_out")
	if ((lg_rc != 0)); then
		err="loadgen exit $lg_rc: $(tail -n 2 "$WORK/loadgen.$1.$2.err" | tr '\n' ' ')"
		# On failure loadgen says how many lines it wrote on stderr.
		[[ -n $sent ]] || sent=$(sed -n 's/.* after \([0-9]*\) lines written.*/\1/p' "$WORK/loadgen.$1.$2.err" | tail -n 1)
		[[ -n $sent ]] || sent=$LINES
	fi

	# Wait until every sent line is visible.  The daemon's stats line
	# (every 100 ms) is the cheap signal; count(*) only confirms.
	local line re_c=' committed=([0-9]+)' re_q=' queued=([0-9]+)'
	now_us
	t_prog=$NOW_US
	while :; do
		if ! kill -0 "$DPID" 2>/dev/null; then
			err+="${err:+; }logsinkd died during the run"
			break
		fi
		line=$(tail -n 40 "$DLOG" | grep ' stats: ' | tail -n 1 || true)
		c="" queued=0
		[[ $line =~ $re_c ]] && c=${BASH_REMATCH[1]}
		[[ $line =~ $re_q ]] && queued=${BASH_REMATCH[1]}
		now_us
		t=$NOW_US
		if [[ -n $c && $c != "$last_c" ]]; then last_c=$c t_prog=$t; fi
		if [[ -z $c ]] || ((c >= sent && queued == 0 || t - t_prog > 2000000)); then
			snapshot_end
			cnt=$(q -c "select count(*) from logs")
			if ((cnt >= sent)); then
				done_ok=1
				break
			fi
			if [[ $cnt != "$last_cnt" ]]; then last_cnt=$cnt t_prog=$t; fi
			sleep 0.4
		fi
		if ((t - t_prog > SETTLE * 1000000)); then
			err+="${err:+; }rows stopped arriving at ${cnt} of $sent (no progress for ${SETTLE} s; daemon: $(last_stat committed "$DLOG") committed, $(last_stat queued "$DLOG") queued)"
			break
		fi
		sleep 0.1
	done
	((done_ok)) || snapshot_end
	conns_max=$(awk '/ stats: / { for (i = 1; i <= NF; i++) if ($i ~ /^conns_open=/) { split($i, a, "="); if (a[2] + 0 > m) m = a[2] + 0 } } END { print m + 0 }' "$DLOG")
	if [[ -n $err ]] || ((!done_ok)); then stop_daemon 5 || d_rc=$?; else stop_daemon || d_rc=$?; fi
	((d_rc == 0)) || err+="${err:+; }logsinkd exit status $d_rc after SIGTERM"

	# A valid id is this run's full token <run-id>-<conn>-<seq> (seq zero-padded to
	# the digits of lines/connections + 1, as loadgen does), followed by a
	# space or the end: a line cut short (e.g. by the daemon closing a
	# connection) is not one.  Rows without a valid id are "bad".
	local maxper=$((LINES / conns + 1)) bad
	stats=$(q -F ' ' -c "select count(*), count(distinct id), count(*) - count(id),
		coalesce(extract(epoch from min(received_at)), 0),
		coalesce(extract(epoch from max(pg_xact_commit_timestamp(x))), 0)
		from (select substring(message from 'id=(${run_id//./\\.}-[0-9]+-[0-9]{${#maxper}})(\s|$)') as id,
			received_at, xmin as x from logs) s")
	read -r total distinct bad t_first t_last <<<"$stats"
	secs=$(awk -v a="$t_first" -v b="$t_last" 'BEGIN { printf "%.3f", b - a }')
	rate=$(awk -v n="$distinct" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
	lost=$((sent - distinct))
	((lost < 0)) && lost=0
	dup=$((total - bad - distinct))
	((done_ok)) || [[ -n $err ]] || err="rows incomplete"
	local cpu_m pg_m lg_cpu_m
	local lg_s_cpu
	lg_s_cpu=$(times_diff "$WORK/times.0" "$WORK/times.1")
	lg_cpu_m=$(awk -v s="$lg_s_cpu" -v n="$distinct" 'BEGIN { printf "%.3f", (n > 0 ? s / (n / 1e6) : 0) }')
	oth=$(other_pct "$sb0" "$st0" "$sb1" "$st1" $((c1 - c0 + pg1 - pg0)) "$lg_s_cpu")
	cpu_m=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" -v n="$distinct" 'BEGIN { printf "%.3f", (n > 0 && b > 0 ? (b - a) / t / (n / 1e6) : 0) }')
	pg_m=$(awk -v a="$pg0" -v b="$pg1" -v t="$CLK_TCK" -v n="$distinct" 'BEGIN { printf "%.3f", (n > 0 ? (b - a) / t / (n / 1e6) : 0) }')
	local lg_s lg_rate ack50 ack99
	lg_s=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$lg_out")
	lg_rate=$(sed -n 's/.* lines_per_s=\([0-9.]*\).*/\1/p' <<<"$lg_out")
	ack50=$(sed -n 's/.* ack_p50_ms=\([0-9.]*\).*/\1/p' <<<"$lg_out")
	ack99=$(sed -n 's/.* ack_p99_ms=\([0-9.]*\).*/\1/p' <<<"$lg_out")
	printf 'daemon\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$1" "$2" "$sent" "$total" "$distinct" "$lost" "$dup" "$secs" "$rate" "$cpu_m" "$pg_m" \
		"$((hwm / 1024))" "$((rss0 / 1024))" "$conns_max" "${lg_s:-0}" "${lg_rate:-0}" "${ack50:--}" "${ack99:--}" "${err:--}" "$lg_cpu_m" "$oth" "$bad" >>"$RESULTS"
	log "$1 run $2: ${rate} lines/s (${distinct}/${sent} rows in ${secs} s), daemon CPU ${cpu_m} s/M, PostgreSQL ${pg_m} s/M, loadgen ${lg_cpu_m} s/M, other processes ${oth}% of the CPU, peak RSS $((hwm / 1024)) MiB, lost $lost, dup $dup, rows without a valid id $bad${err:+, ERROR: $err}"
	if [[ -n $err ]]; then
		fail_run "$1 run $2: $err"
		tail -n 5 "$DLOG" | sed 's/^/    logsinkd: /' >&2 || true
	fi
	return 0
}

# Exports the rows of the current table as the ceiling's input, P files
# in the COPY format of --ceiling-format.
export_rows() {
	local k
	rm -f "$WORK"/ceiling.part.*
	CEIL_ROWS=$(q -c "select count(*) from logs")
	for ((k = 0; k < STREAMS; k++)); do
		q -c "\\copy (select $COLS from (select *, row_number() over () as rn from logs) s where rn % $STREAMS = $k) to '$WORK/ceiling.part.$(printf %03d "$k")' with (format $CEIL_FORMAT)"
	done
}

ceiling_run() { # CASE RUN
	local t0 t1 rc=0 p n secs rate err="" pg0 pg1 pg_m sb0 st0 sb1 st1 cl_s cl_m oth
	truncate_and_checkpoint
	CEIL_PIDS=()
	pg0=$(pg_cpu_ticks)
	t0=$(now)
	read -r sb0 st0 < <(sys_ticks)
	times >"$WORK/times.0"
	for p in "$WORK"/ceiling.part.*; do
		"$PSQL" "$DB" -X -q -v ON_ERROR_STOP=1 -c "\\copy logs ($COLS) from '$p' with (format $CEIL_FORMAT)" >>"$WORK/ceiling.log" 2>&1 &
		CEIL_PIDS+=($!)
	done
	for p in "${CEIL_PIDS[@]}"; do wait "$p" || rc=$?; done
	times >"$WORK/times.1"
	t1=$(now)
	pg1=$(pg_cpu_ticks)
	read -r sb1 st1 < <(sys_ticks)
	CEIL_PIDS=()
	n=$(q -c "select count(*) from logs")
	((rc == 0)) || err="a COPY stream failed (exit $rc): $(tail -n 2 "$WORK/ceiling.log" | tr '\n' ' ')"
	((n == CEIL_ROWS)) || err+="${err:+; }ceiling stored $n of $CEIL_ROWS rows"
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
	pg_m=$(awk -v a="$pg0" -v b="$pg1" -v t="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.3f", (n > 0 ? (b - a) / t / (n / 1e6) : 0) }')
	cl_s=$(times_diff "$WORK/times.0" "$WORK/times.1")
	cl_m=$(awk -v s="$cl_s" -v n="$n" 'BEGIN { printf "%.3f", (n > 0 ? s / (n / 1e6) : 0) }')
	oth=$(other_pct "$sb0" "$st0" "$sb1" "$st1" $((pg1 - pg0)) "$cl_s")
	printf 'ceiling\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$n" "$secs" "$rate" "${err:--}" "$pg_m" "$cl_m" "$oth" >>"$RESULTS"
	log "$1 run $2: ceiling ${rate} rows/s ($n rows, $STREAMS streams, ${secs} s), PostgreSQL ${pg_m} s/M, psql ${cl_m} s/M, other processes ${oth}% of the CPU${err:+, ERROR: $err}"
	[[ -z $err ]] || fail_run "$1 run $2 ceiling: $err"
}

# ------------------------------------------------------------ run
RESULTS=$WORK/results.tsv
: >"$RESULTS"
SKIPPED=() NOTES=() CASE_DARGS=() LISTEN_OPTS="" ACK_RATE=0
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $GIT_REV != unknown ]] && ! git -C "$REPO" diff --quiet HEAD -- src include sql CMakeLists.txt 2>/dev/null; then
	GIT_REV+=" (working tree has uncommitted source changes)"
fi
T_START=$(now)
START_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
log "work dir $WORK, PostgreSQL $PG_VERSION, $LINES lines x $RUNS runs, cases $CASES"

for CASE in "${SEL_CASES[@]}"; do
	conns=16 idle=0 format=plain ack=0
	case $CASE in
	plain16) ;;
	rfc5424_16) format=rfc5424 ;;
	conn1000) conns=1000 ;;
	idle10k) idle=10000 ;;
	ack)
		if ((!HAS_ACK)); then
			SKIPPED+=("ack: skipped (daemon has no ack support yet)")
			log "ack: skipped (daemon has no ack support yet)"
			continue
		fi
		ack=1
		# Half the plain16 rate measured in this run (median of its
		# runs), as the issue asks; 50,000 lines/s without one.
		ACK_RATE=$(awk -F'\t' '$1 == "daemon" && $2 == "plain16" && $10 > 0 { print int($10) }' "$RESULTS" |
			sort -n | awk '{ a[NR] = $1 } END { print (NR ? int(a[int((NR + 1) / 2)] / 2) : 50000) }')
		if [[ -n $FIXED_ACK_RATE ]]; then
			ACK_RATE=$FIXED_ACK_RATE
			NOTES+=("ack: listener ack=commit, loadgen --ack --rate $ACK_RATE (--ack-rate)")
		else
			NOTES+=("ack: listener ack=commit, loadgen --ack --rate $ACK_RATE (half the plain16 median, or 50000 without one)")
		fi
		;;
	esac
	LISTEN_OPTS=""
	((ack)) && LISTEN_OPTS=" ack=commit"
	if ((idle > 0 && NOFILE < idle + conns + 256)); then
		fail_run "$CASE: open-file limit $NOFILE is too low for $idle idle connections (raise ulimit -Hn)"
		continue
	fi
	CASE_FAILED=0
	# The connection limits of a logsinkd that has them (all clients come
	# from 127.0.0.1) must not refuse the case's connections.
	CASE_DARGS=()
	if ((conns + idle > 1000)) && grep -q -- '--max-connections-per-ip' <<<"$HELP_TEXT"; then
		CASE_DARGS+=(--max-connections-per-ip 0)
	fi
	if ((conns + idle + 64 > 10000)) && grep -Eq -- '--max-connections[[:space:]]' <<<"$HELP_TEXT"; then
		CASE_DARGS+=(--max-connections $((conns + idle + 64)))
	fi
	if ((${#CASE_DARGS[@]})); then
		NOTES+=("$CASE: logsinkd also started with ${CASE_DARGS[*]} (all connections come from 127.0.0.1)")
		log "${NOTES[-1]}"
	fi
	for ((RUN = 1; RUN <= RUNS; RUN++)); do
		if ((${#VNAMES[@]} == 0)); then
			daemon_run "$CASE" "$RUN" "$conns" "$idle" "$format" "$ack" || true
		fi
		for ((vi = 0; vi < ${#VNAMES[@]}; vi++)); do
			read -r -a VAR_DARGS <<<"${VARGS[vi]}"
			CASE_DB_CONNS=${VCONNS[vi]} VAR_BIN=${VBINS[vi]}
			daemon_run "$CASE:${VNAMES[vi]}" "$RUN" "$conns" "$idle" "$format" "$ack" || true
		done
		VAR_DARGS=() CASE_DB_CONNS=$DB_CONNS VAR_BIN=""
		if ((RUN == 1)); then
			export_rows
		fi
		if ((CEIL_ROWS > 0)); then
			ceiling_run "$CASE" "$RUN"
			# The same ceiling for every variant's row of the summary.
			for ((vi = 0; vi < ${#VNAMES[@]}; vi++)); do
				tail -n 1 "$RESULTS" | awk -F'\t' -v OFS='\t' -v c="$CASE:${VNAMES[vi]}" '{ $2 = c; print }' >>"$RESULTS.v"
			done
			if [[ -s $RESULTS.v ]]; then
				cat "$RESULTS.v" >>"$RESULTS"
				rm -f "$RESULTS.v"
			fi
		fi
	done
	rm -f "$WORK"/ceiling.part.*
done
T_END=$(now)
LOAD_END=$(cut -d" " -f1-3 /proc/loadavg)

# ------------------------------------------------------------ report
# results.tsv rows:
#   daemon  case run sent rows distinct lost dup secs lines/s cpu/M pgcpu/M
#           hwm_mib rss0_mib conns_max lg_secs lg_rate ack50 ack99 error lgcpu/M other% bad
#   ceiling case run rows secs rows/s error pgcpu/M psqlcpu/M other%
# Per case: medians over the successful runs of lines/s, ceiling rows/s and
# the CPU figures; ratio of the two medians; CPU ratio = ceiling CPU (PostgreSQL
# + psql) / logsinkd-path CPU (logsinkd + PostgreSQL + loadgen), per row; the largest peak RSS; lost and
# duplicated summed over all runs.
SUMMARY=$(awk -F'\t' '
function median(s,    a, n, i, j, t) {
	n = split(s, a, " ")
	if (n == 0) return 0
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "daemon" {
	c = $2
	if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
	if ($20 == "-") { ok[c]++; rate[c] = rate[c] " " $10; cpu[c] = cpu[c] " " $11; pg[c] = pg[c] " " $12; lg[c] = lg[c] " " $21 }
	if ($13 + 0 > rss[c]) rss[c] = $13 + 0
	if ($15 + 0 > conns[c]) conns[c] = $15 + 0
	lost[c] += $7; dup[c] += $8; bad[c] += $23; runs[c]++
	if ($18 != "-") a50[c] = a50[c] " " $18
	if ($19 != "-") a99[c] = a99[c] " " $19
}
$1 == "ceiling" && $7 == "-" { ceil[$2] = ceil[$2] " " $6; cpg[$2] = cpg[$2] " " $8; ccl[$2] = ccl[$2] " " $9 }
END {
	for (i = 1; i <= nc; i++) {
		c = order[i]; r = median(rate[c]); m = median(ceil[c])
		dcpu = median(cpu[c]) + median(pg[c]) + median(lg[c]); ccpu = median(cpg[c]) + median(ccl[c])
		printf "%s\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%.3f\t%.3f\t%.2f\t%d\n", c, r, m, (m > 0 ? r / m : 0),
		    median(cpu[c]), median(pg[c]), median(cpg[c]), rss[c], lost[c], dup[c], ok[c], runs[c], conns[c],
		    (a50[c] != "" ? median(a50[c]) : "-"), (a99[c] != "" ? median(a99[c]) : "-"),
		    median(lg[c]), median(ccl[c]), (dcpu > 0 && ccpu > 0 ? ccpu / dcpu : 0), bad[c]
	}
}' "$RESULTS")
# SUMMARY: case lines/s ceiling ratio cpu pgcpu ceil_pgcpu rss lost dup ok runs conns_max ack50 ack99
#          loadgen_cpu ceil_psql_cpu cpu_ratio bad

align() { # tab-separated rows -> aligned columns (first left, others right)
	awk -F'\t' '{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }; if (NF > nf) nf = NF }
	END { for (r = 1; r <= NR; r++) { line = ""
		for (i = 1; i <= nf; i++) line = line (i == 1 ? sprintf("%-" w[i] "s", cell[r, i]) : sprintf("  %" w[i] "s", cell[r, i]))
		print line } }'
}
MEAS_S=$(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.0f", b - a }')
{
	printf '\n# logsinkd end-to-end benchmark (bench/run.sh), %s\n' "$START_DATE"
	printf '# checkout %s; %s cores, %s GiB RAM, %s; load average %s at start, %s at end\n' "$GIT_REV" \
		"$(nproc 2>/dev/null || echo ?)" "$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
		"$(uname -sr)" "$LOAD_START" "$LOAD_END"
	printf '# PostgreSQL %s, private cluster over a unix socket: %s\n' "$PG_VERSION" "${PG_SETTINGS[*]}"
	printf '# logsinkd %s: %s; started with %s; open-file limit %s\n' "$LOGSINKD" "$DAEMON_SETTINGS" \
		"${DAEMON_BASE[*]}${DAEMON_ARGS[*]:+ ${DAEMON_ARGS[*]}}" "$NOFILE"
	printf '# %s lines per run, %s run(s) per case%s; ceiling: the same rows COPY'"'"'d (%s format) by %s parallel psql \\copy streams\n' \
		"$LINES" "$RUNS" "$( ((SMOKE)) && echo ', smoke mode')" "$CEIL_FORMAT" "$STREAMS"
	printf '# lines/s = rows / (last commit - first line received); ratio = lines/s / ceiling rows/s (medians over ok runs); bad = rows without a valid id\n'
	printf '# CPU = logsinkd utime+stime, PG CPU = whole PostgreSQL cluster, s per million rows (medians); CPU ratio = ceiling CPU\n'
	printf '# (PostgreSQL + psql) / logsinkd-path CPU (logsinkd + PostgreSQL + loadgen) per row; RSS = largest VmHWM; lost, dup, bad summed\n\n'
	{
		printf 'case\tlines/s\tceiling rows/s\tratio\tCPU s/M lines\tPG CPU s/M\tceiling PG CPU s/M\tCPU ratio\tpeak RSS MiB\tlost\tdup\tbad\tok runs\n'
		[[ -z $SUMMARY ]] ||
			awk -F'\t' '{ printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\n", $1, $2, $3, $4, $5, $6, $7, $18, $8, $9, $10, $19, $11, $12 }' <<<"$SUMMARY"
	} | align
	for s in "${SKIPPED[@]}"; do echo "$s"; done
	for s in "${NOTES[@]}"; do echo "$s"; done
	[[ -z $SUMMARY ]] || awk -F'\t' '
		$1 == "idle10k" && $13 > 0 { printf "idle10k: at most %d connections seen open in logsinkd (stats every 100 ms)\n", $13 }
		$14 != "-" { printf "%s: ack latency p50 %s ms, p99 %s ms (medians)\n", $1, $14, $15 }' <<<"$SUMMARY"
	if [[ -n $SUMMARY ]]; then
		printf '\nper run: logsinkd lines/s | ceiling rows/s  (share of the CPU used by other processes)\n'
		awk -F'\t' '$1 == "daemon" { if (!($2 in d)) o[++n] = $2; d[$2] = d[$2] "\t" ($20 == "-" ? $10 " (" $22 "%)" : "failed") }
			$1 == "ceiling" { e[$2] = e[$2] "\t" ($7 == "-" ? $6 " (" $10 "%)" : "failed") }
			END { for (i = 1; i <= n; i++) print o[i] d[o[i]] "\t|" e[o[i]] }' "$RESULTS" | align
	fi
	if ((${#FAILURES[@]})); then
		printf '\nFAILURES:\n'
		for f in "${FAILURES[@]}"; do echo "  $f"; done
	fi
	printf '\n(measurements took %s s)\n' "$MEAS_S"
}

# ------------------------------------------------------------ JSON
json_str() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/ }
	s=${s//$'\n'/ }
	printf '"%s"' "$s"
}
json_num() { if [[ $1 == - || -z $1 ]]; then echo null; else echo "$1"; fi; }
if [[ -n $JSON ]]; then
	{
		printf '{\n  "meta": {"date": %s, "checkout": %s, "cores": %s, "kernel": %s, "postgresql": %s,\n' \
			"$(json_str "$START_DATE")" "$(json_str "$GIT_REV")" "$(nproc 2>/dev/null || echo 0)" \
			"$(json_str "$(uname -sr)")" "$(json_str "$PG_VERSION")"
		printf '    "load_average_start": %s, "load_average_end": %s, "logsinkd": %s,\n' \
			"$(json_str "$LOAD_START")" "$(json_str "$LOAD_END")" "$(json_str "$LOGSINKD")"
		printf '    "pg_settings": %s, "daemon_settings": %s, "daemon_args": %s, "loadgen_args": %s,\n' \
			"$(json_str "${PG_SETTINGS[*]}")" "$(json_str "$DAEMON_SETTINGS")" "$(json_str "${DAEMON_ARGS[*]}")" \
			"$(json_str "${LOADGEN_ARGS[*]}")"
		printf '    "lines": %s, "runs": %s, "ceiling_streams": %s, "ceiling_format": "%s", "smoke": %s, "seconds": %s},\n' \
			"$LINES" "$RUNS" "$STREAMS" "$CEIL_FORMAT" "$( ((SMOKE)) && echo true || echo false)" "$MEAS_S"
		printf '  "cases": ['
		sep=""
		while IFS=$'\t' read -r c r m ratio cpu pgc cpgc rss lost dup okr nruns cmax a50 a99 lgc ccl cratio nbad; do
			[[ -n $c ]] || continue
			printf '%s\n    {"case": %s, "lines_per_s": %s, "ceiling_rows_per_s": %s, "ratio": %s, "cpu_s_per_mlines": %s, "pg_cpu_s_per_mlines": %s, "ceiling_pg_cpu_s_per_mlines": %s, "loadgen_cpu_s_per_mlines": %s, "ceiling_psql_cpu_s_per_mlines": %s, "cpu_ratio": %s, "peak_rss_mib": %s, "lost": %s, "duplicated": %s, "rows_without_valid_id": %s, "runs_ok": %s, "runs": %s, "max_conns_open": %s, "ack_p50_ms": %s, "ack_p99_ms": %s,\n     "per_run": [' \
				"$sep" "$(json_str "$c")" "$r" "$m" "$ratio" "$cpu" "$pgc" "$cpgc" "$lgc" "$ccl" "$cratio" "$rss" "$lost" "$dup" "$nbad" "$okr" "$nruns" "$cmax" \
				"$(json_num "$a50")" "$(json_num "$a99")"
			awk -F'\t' -v c="$c" '
				function str(s) { if (s == "-" || s == "") return "null"; gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
				function num(s) { return (s == "-" || s == "") ? "null" : s }
				$1 == "ceiling" && $2 == c { ce[$3] = $6; cerr[$3] = $7; cpg[$3] = $8; ccl[$3] = $9; coth[$3] = $10 }
				$1 == "daemon" && $2 == c { line[++n] = $0 }
				END {
					for (i = 1; i <= n; i++) {
						split(line[i], f, "\t"); r = f[3]
						printf "%s\n      {\"run\": %d, \"sent\": %d, \"rows\": %d, \"distinct\": %d, \"lost\": %d, \"duplicated\": %d, \"rows_without_valid_id\": %d, \"seconds\": %s, \"lines_per_s\": %s, \"cpu_s_per_mlines\": %s, \"pg_cpu_s_per_mlines\": %s, \"peak_rss_mib\": %d, \"rss_start_mib\": %d, \"max_conns_open\": %d, \"loadgen_seconds\": %s, \"loadgen_lines_per_s\": %s, \"ack_p50_ms\": %s, \"ack_p99_ms\": %s, \"loadgen_cpu_s_per_mlines\": %s, \"other_cpu_pct\": %s, \"error\": %s, \"ceiling_rows_per_s\": %s, \"ceiling_pg_cpu_s_per_mlines\": %s, \"ceiling_psql_cpu_s_per_mlines\": %s, \"ceiling_other_cpu_pct\": %s, \"ceiling_error\": %s}",
						    (i > 1 ? "," : ""), r, f[4], f[5], f[6], f[7], f[8], f[23], f[9], f[10], f[11], f[12], f[13], f[14], f[15],
						    num(f[16]), num(f[17]), num(f[18]), num(f[19]), num(f[21]), num(f[22]), str(f[20]), num(ce[r]), num(cpg[r]), num(ccl[r]), num(coth[r]), str(cerr[r])
					}
				}' "$RESULTS"
			printf ']}'
			sep=","
		done <<<"$SUMMARY"
		printf '\n  ],\n  "skipped": ['
		sep=""
		for s in "${SKIPPED[@]}"; do printf '%s%s' "$sep" "$(json_str "$s")"; sep=", "; done
		printf '],\n  "notes": ['
		sep=""
		for s in "${NOTES[@]}"; do printf '%s%s' "$sep" "$(json_str "$s")"; sep=", "; done
		printf '],\n  "failures": ['
		sep=""
		for f in "${FAILURES[@]}"; do printf '%s%s' "$sep" "$(json_str "$f")"; sep=", "; done
		printf ']\n}\n'
	} >"$JSON"
	log "wrote $JSON"
fi

# ------------------------------------------------------------ status
status=0
((${#FAILURES[@]} == 0)) || status=1
if ((SMOKE)); then
	total_lost=$(awk -F'\t' '$1 == "daemon" { s += $7 } END { print s + 0 }' "$RESULTS")
	((total_lost == 0)) || { log "smoke: $total_lost line(s) lost"; status=1; }
	[[ -n $SUMMARY ]] || { log "smoke: nothing was measured"; status=1; }
fi
exit "$status"
