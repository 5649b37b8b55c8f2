#!/usr/bin/env bash
# Quick start: installs what logsinkd needs (Debian 12), builds it, starts a
# private PostgreSQL under .local/pg in this checkout, creates the table and
# runs logsinkd in the foreground on 127.0.0.1:5140, with its disk spool in
# .local/spool.  Ctrl-C stops both.
# Extra arguments go to logsinkd; with --db ... no private cluster is made.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target logsinkd >/dev/null

args=("$@")
# logsinkd refuses to run as root: as root, it switches to nobody after
# binding its port.
if [[ $(id -u) -eq 0 ]] && [[ " $* " != *" --user "* ]]; then
	args+=(--user nobody)
fi
db=""
for a in "${args[@]}"; do
	[[ "$a" == --db || "$a" == --db=* ]] && db=given
done
pgdir=""
if [[ -z "$db" ]]; then
	pgdir=$top/.local/pg
	if [[ $(id -u) -eq 0 ]] && ! { runuser -u postgres -- test -x "$top" &&
		runuser -u nobody -- test -x "$top"; } 2>/dev/null; then
		# The checkout is not reachable by the postgres user or by
		# nobody (e.g. under /root).
		pgdir=/var/tmp/logsink-quickstart
	fi
	conninfo=$(bash scripts/pg-private.sh start "$pgdir")
	trap 'bash scripts/pg-private.sh stop "$pgdir"' EXIT
	args+=(--db "$conninfo")
	echo "Private PostgreSQL running, data in $pgdir/data"
fi

# A disk spool, so that lines survive a stop while the database is down.
if [[ " $* " != *" --spool-dir "* ]]; then
	spool=$top/.local/spool
	if [[ $(id -u) -eq 0 ]]; then
		# The daemon runs as nobody: give it a spool it can write.
		spool=/var/tmp/logsink-quickstart-spool
		mkdir -p "$spool" && chown nobody "$spool" && chmod 0700 "$spool"
	fi
	args+=(--spool-dir "$spool")
fi

./build/logsinkd "${args[@]}" --init-db

cat <<EOT

logsinkd is starting on 127.0.0.1:5140 (Ctrl-C to stop).
  Send a line:   echo hello | nc -N 127.0.0.1 5140
EOT
if [[ -n "$pgdir" ]]; then
	echo "  Query it:      psql \"$conninfo\" -c 'select received_at, peer, message from logs order by received_at desc limit 10'"
fi
echo
./build/logsinkd "${args[@]}"
