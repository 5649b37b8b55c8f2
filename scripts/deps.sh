#!/usr/bin/env bash
# Installs what logsinkd needs from Debian: to build and run it (default),
# or also to run the whole test suite (--test), or the benchmarks' extras
# (--bench).  Skips apt-get when every
# package is already installed; uses sudo when not root.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libevent-dev libssl-dev libpq-dev
	libbsd-dev libsystemd-dev libmsgpack-dev zlib1g-dev postgresql
	postgresql-contrib netcat-openbsd protobuf-c-compiler libprotobuf-c-dev
	libjson-c-dev)
test=no
if [[ "${1:-}" == "--bench" ]]; then
	# bench/soak.sh plots its samples with gnuplot.
	pkgs+=(gnuplot-nox)
fi
if [[ "${1:-}" == "--test" ]]; then
	test=yes
	# The real-client tests run syslog-ng and rsyslog.  Debian lets only
	# one system log daemon be installed, so rsyslog is unpacked beside
	# (below) with its libraries installed on their own, together with its
	# OpenSSL network stream driver (lmnsd_ossl, rsyslog-openssl) for the
	# TLS tests and its RELP output (omrelp, rsyslog-relp, on librelp0) for
	# the RELP tests; openssl is the command line tool they make certificates
	# and connect with; tzdata: the tz= tests use Europe/Berlin;
	# haproxy is the PROXY protocol sender of
	# test_proxy.py (run in the foreground by the tests, never as a
	# service).
	pkgs+=(openssl libcmocka-dev python3 python3-pytest python3-psycopg2
		python3-msgpack clang clang-format bsdutils util-linux syslog-ng-core
		libestr0 libfastjson4 liblognorm5 librelp0 lintian fakeroot dpkg-dev
		file groff-base strace systemd haproxy tzdata nodejs curl)
	# curl: the HTTP ingest tests (test_http.py) post with it.
	# test_journal_upload.py runs the real systemd-journal-upload, on a
	# journal file that systemd-journal-remote writes (neither runs as
	# a service).
	pkgs+=(systemd-journal-remote)
	# test_soak.py: PostgreSQL in a network namespace behind a veth
	# pair (iproute2), packet loss and partitions with nftables.
	pkgs+=(iproute2 nftables)
	# test_gelf.py installs the npm package gelf-pro into its temporary
	# directory (test_http.py: winston); NodeSource's nodejs already
	# brings npm (and conflicts with Debian's).
	command -v npm >/dev/null || pkgs+=(npm)
fi
rsyslog_dir=/opt/logsink-rsyslog

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed" || missing+=("$p")
done
need_rsyslog=no
if [[ $test == yes ]] && { [[ ! -x $rsyslog_dir/usr/sbin/rsyslogd ]] ||
	! compgen -G "$rsyslog_dir/usr/lib/*/rsyslog/lmnsd_ossl.so" >/dev/null ||
	! compgen -G "$rsyslog_dir/usr/lib/*/rsyslog/omrelp.so" >/dev/null; }; then
	need_rsyslog=yes
fi
[[ ${#missing[@]} -eq 0 && $need_rsyslog == no ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || {
		echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	}
	sudo=sudo
fi
[[ ${#missing[@]} -gt 0 ]] && echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [[ ${#missing[@]} -gt 0 ]]; then
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ $need_rsyslog == yes ]]; then
	echo "deps.sh: unpacking rsyslog into $rsyslog_dir (for the tests only)"
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	(cd "$tmp" && apt-get download -qq rsyslog rsyslog-openssl rsyslog-relp \
		>/dev/null)
	for deb in "$tmp"/rsyslog_*.deb "$tmp"/rsyslog-openssl_*.deb \
		"$tmp"/rsyslog-relp_*.deb; do
		$sudo dpkg-deb -x "$deb" "$rsyslog_dir"
	done
	rm -rf "$tmp"
fi
