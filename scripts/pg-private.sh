#!/usr/bin/env bash
# A private PostgreSQL cluster for trying logsinkd: data in DIR, reachable
# only through a unix socket in DIR (no TCP port to clash with).  As root it
# runs as the 'postgres' OS user, since PostgreSQL refuses to run as root.
#
#   pg-private.sh start DIR   initialise if needed, start if not running;
#                             prints the libpq conninfo
#   pg-private.sh stop DIR
set -euo pipefail

cmd=${1:?usage: pg-private.sh start|stop DIR}
dir=${2:?usage: pg-private.sh start|stop DIR}
bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[[ -x "$bindir/pg_ctl" ]] || { echo "pg-private.sh: PostgreSQL server binaries not found (install postgresql)" >&2; exit 1; }

as_pg=()
owner=$(id -un)
if [[ $(id -u) -eq 0 ]]; then
	as_pg=(runuser -u postgres --)
	owner=postgres
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The socket lives in DIR: let other local users (logsinkd running as an
# unprivileged user) reach it; the data directory inside stays private.
chmod 755 "$dir"
if [[ $(id -u) -eq 0 ]]; then
	chown postgres: "$dir"
	if ! runuser -u postgres -- test -w "$dir"; then
		echo "pg-private.sh: the postgres user cannot reach $dir (a parent directory is not searchable); choose another DIR" >&2
		exit 1
	fi
fi

case "$cmd" in
start)
	if [[ ! -f "$dir/data/PG_VERSION" ]]; then
		"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U "$owner" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
	fi
	if ! "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w \
			-o "-c listen_addresses='' -c unix_socket_directories='$dir'" start >/dev/null
	fi
	echo "host=$dir dbname=postgres user=$owner"
	;;
stop)
	if [[ -f "$dir/data/PG_VERSION" ]]; then
		"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	;;
*)
	echo "usage: pg-private.sh start|stop DIR" >&2
	exit 2
	;;
esac
