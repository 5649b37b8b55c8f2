#!/usr/bin/env bash
# Runs every test: installs what the suite needs (Debian 12), builds twice
# (release with -Werror, and ASan+UBSan debug) and runs the unit and
# integration tests in each, then checks the formatting.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh --test
jobs=$(nproc)

run_suite() {
	local dir=$1
	shift
	echo "== build $dir ($*)"
	cmake -S . -B "$dir" -DLOGSINK_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs" >/dev/null
	echo "== tests in $dir"
	ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1 \
	run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DLOGSINK_SANITIZE=ON

echo "== benchmark smoke run (bench/run.sh --smoke; numbers are not checked)"
bash bench/run.sh --smoke --build-dir build

echo "== fuzz: framing + parsing + COPY encoding, 60 s under ASan/UBSan (clang)"
CC=clang cmake -S . -B build-fuzz -DLOGSINK_FUZZ=ON -DLOGSINK_SANITIZE=ON \
	-DLOGSINK_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_ingest >/dev/null
fuzzdir=$(mktemp -d)
trap 'rm -rf "$fuzzdir"' EXIT
./build-fuzz/fuzz_ingest -max_total_time="${LOGSINK_FUZZ_SECONDS:-60}" \
	-artifact_prefix="$fuzzdir/" "$fuzzdir" tests/fuzz/corpus 2>"$fuzzdir/log" || {
	tail -n 40 "$fuzzdir/log"
	echo "fuzz_ingest found a failure; the input is in the log above" >&2
	exit 1
}
tail -n 1 "$fuzzdir/log"

echo "== clang-format"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
echo "== all tests passed"
