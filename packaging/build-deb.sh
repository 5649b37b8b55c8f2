#!/usr/bin/env bash
# Builds the Debian package of logsink from this source tree, in one
# command:
#
#   bash packaging/build-deb.sh [BUILD_DIR]     (default: build-deb)
#
# Installs what it needs from Debian when missing (build dependencies,
# dpkg-dev, fakeroot, lintian; apt-get as root or through sudo), configures
# a release build (RelWithDebInfo, stripped by CPack) with
# CMAKE_INSTALL_PREFIX=/usr, builds, and makes the .deb with CPack (DEB
# generator; Depends computed by dpkg-shlibdeps), then runs lintian on it.
# Prints the path of the .deb on the last line of standard output.
#
# LOGSINK_LINTIAN=0 skips lintian.  Lintian errors make the script fail.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-deb}
jobs=$(nproc)

need=()
for p in dpkg-dev fakeroot file lintian gzip groff-base man-db; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed" || need+=("$p")
done
if [[ ${#need[@]} -gt 0 ]]; then
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo=sudo
	echo "build-deb.sh: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$src/scripts/deps.sh" >&2

echo "== configure $build" >&2
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_INSTALL_PREFIX=/usr -DLOGSINK_PACKAGE_DEB=ON \
	-DLOGSINK_SANITIZE=OFF -DLOGSINK_FUZZ=OFF >&2
echo "== build" >&2
cmake --build "$build" -j"$jobs" --target logsinkd logsink_docs >&2

echo "== package" >&2
rm -f "$build"/logsink_*.deb
(cd "$build" && cpack -G DEB) >&2
debs=("$build"/logsink_*.deb)
deb=${debs[0]}
[[ -f $deb ]] || {
	echo "build-deb.sh: cpack made no .deb in $build" >&2
	exit 1
}
dpkg-deb --info "$deb" >&2

if [[ ${LOGSINK_LINTIAN:-1} != 0 ]]; then
	echo "== lintian $(basename "$deb")" >&2
	# Lintian exits non-zero on errors (E:); warnings are printed only.
	lintian --info --display-info "$deb" >&2 || {
		echo "build-deb.sh: lintian reported errors" >&2
		exit 1
	}
fi
echo "$deb"
