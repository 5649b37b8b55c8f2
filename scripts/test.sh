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

echo "== clang-format"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
echo "== all tests passed"
