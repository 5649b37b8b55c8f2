#!/usr/bin/env bash
# Installs what logsinkd needs from Debian: to build and run it (default),
# or also to run the whole test suite (--test).  Skips apt-get when every
# package is already installed; uses sudo when not root.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libevent-dev libpq-dev libbsd-dev
	libsystemd-dev postgresql postgresql-contrib netcat-openbsd)
if [[ "${1:-}" == "--test" ]]; then
	pkgs+=(libcmocka-dev python3 python3-pytest python3-psycopg2
		clang clang-format bsdutils util-linux)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || {
		echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	}
	sudo=sudo
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
