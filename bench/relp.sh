#!/usr/bin/env bash
# bench/relp.sh: messages/s from a real rsyslog omrelp into logsinkd's
# proto=relp listener, each message answered only after its commit.  Runs
# the opt-in measurement of tests/integration/test_relp.py (one rsyslogd
# fed N lines over imtcp, a private PostgreSQL, a release build of
# logsinkd); see docs/performance.md ("RELP from rsyslog").
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$REPO/build LINES=200000 WINDOWS="128 8192"

usage() {
	cat <<'USAGE'
usage: bench/relp.sh [--build-dir DIR] [--lines N] [--windows "W ..."]

  --build-dir DIR   where logsinkd is (default build/ of this checkout)
  --lines N         messages per run (default 200000)
  --windows LIST    omrelp windowSize values, one run each (default
                    "128 8192"; 128 is omrelp's default)
USAGE
}

while (($#)); do
	case $1 in
	--build-dir) BUILD_DIR=$2; shift ;;
	--lines) LINES=$2; shift ;;
	--windows) WINDOWS=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
bash "$REPO/scripts/deps.sh" --test
for w in $WINDOWS; do
	LOGSINKD=$BUILD_DIR/logsinkd LOGSINK_BUILD=$BUILD_DIR \
		LOGSINK_RELP_BENCH=$LINES LOGSINK_RELP_WINDOW=$w \
		/usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
		"$REPO/tests/integration/test_relp.py" -k rate |
		grep -E "RELP from rsyslog|passed|failed|error"
done
