"""The Debian package (packaging/build-deb.sh) and the files it ships.

The package is built once per module, from this source tree, in a build
directory of its own (release build, as a user would); this is skipped in
the ASan build (LOGSINK_BUILD ending in "asan": same sources, slower, and
not what is shipped) and where dpkg-deb is missing.  The checks of the
default config and the man pages against the settings of the built
binary run in every build.
"""

import gzip
import os
import re
import shutil
import subprocess

import pytest

import harness

ROOT = harness.REPO_ROOT
CONF = os.path.join(ROOT, "packaging", "logsinkd.conf")
MAN5 = os.path.join(ROOT, "docs", "man", "logsinkd.conf.5")
MAN8 = os.path.join(ROOT, "docs", "man", "logsinkd.8")

# What the package must contain (paths as dpkg-deb -c prints them).
EXPECTED_FILES = [
    "./usr/bin/logsinkd",
    "./lib/systemd/system/logsinkd.service",
    "./lib/systemd/system/logsinkd.socket",
    "./lib/systemd/system/logsinkd-udp.socket",
    "./etc/logsinkd/logsinkd.conf",
    "./usr/share/man/man8/logsinkd.8.gz",
    "./usr/share/man/man5/logsinkd.conf.5.gz",
    "./usr/share/doc/logsink/copyright",
    "./usr/share/doc/logsink/changelog.Debian.gz",
]
EXPECTED_DEPENDS = ["adduser", "libc6", "libevent-2.1-7", "libpq5",
                    "libbsd0", "libsystemd0", "libevent-openssl-2.1-7",
                    "libssl3", "libprotobuf-c1", "libjson-c5"]


def run(args, **kw):
    kw.setdefault("timeout", 600)
    return subprocess.run(args, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def help_keys():
    """The setting names listed by logsinkd --help."""
    p = harness.run_logsinkd("--help")
    assert p.returncode == 0, p.output
    settings = p.stdout.split("Settings", 1)[1]
    keys = re.findall(r"^\s+--([a-z][a-z0-9-]*)\s", settings, re.M)
    assert "listen" in keys and "db" in keys, p.stdout
    return keys


# --------------------------------------------------------------------------
# the sources of the packaged docs, against the built binary


def test_default_config_lists_every_setting(logsinkd):
    with open(CONF) as f:
        text = f.read()
    shown = set(re.findall(r"^#?([a-z][a-z0-9-]*) = ", text, re.M))
    missing = [k for k in help_keys() if k not in shown]
    assert not missing, ("packaging/logsinkd.conf lacks a "
                         "'#key = default' line for: %s" % missing)
    # The package turns the disk spool on (and nothing else).
    active = re.findall(r"^([a-z][a-z0-9-]*) = (.*)$", text, re.M)
    assert active == [("spool-dir", "/var/lib/logsinkd/spool")], active
    # Never a real secret in the shipped file.
    assert not re.search(r"password\s*=", text, re.I)


def test_default_config_uncommented_is_valid(logsinkd, tmp_path):
    """Every '#key = value' line, uncommented, passes --check-config."""
    # db-file is the alternative to db (they exclude each other) and names
    # a file this machine does not have, as do tls-cert, tls-key and
    # tls-ca (test_tls.py checks them with real files).
    with open(CONF) as f:
        lines = [line[1:] for line in f
                 if re.match(r"#[a-z][a-z0-9-]* = ", line)
                 and not re.match(r"#(db-file|tls-cert|tls-key|tls-ca) ",
                                  line)]
    conf = tmp_path / "all.conf"
    conf.write_text("".join(lines))
    p = harness.run_logsinkd("-c", conf, "--check-config")
    assert p.returncode == 0, p.output
    assert "# configuration OK" in p.stdout
    # ... and the file as shipped (all but spool-dir commented out) too.
    p = harness.run_logsinkd("-c", CONF, "--check-config")
    assert p.returncode == 0, p.output


def test_man_page_describes_every_setting(logsinkd):
    with open(MAN5) as f:
        text = f.read().replace("\\-", "-")
    described = set(re.findall(r"^\.BI ([a-z][a-z0-9-]*) ", text, re.M))
    missing = [k for k in help_keys() if k not in described]
    assert not missing, ("docs/man/logsinkd.conf.5 has no .BI entry for: "
                         "%s" % missing)


@pytest.mark.skipif(shutil.which("groff") is None,
                    reason="groff is not installed")
@pytest.mark.parametrize("page", [MAN8, MAN5])
def test_man_page_renders_without_warnings(page):
    p = run(["groff", "-man", "-Tutf8", "-ww", "-z", page])
    assert p.returncode == 0 and p.stderr == "", p.stderr


# --------------------------------------------------------------------------
# the package


def _skip_reason():
    if shutil.which("dpkg-deb") is None:
        return "dpkg-deb is not installed"
    if os.environ.get("LOGSINK_BUILD", "").rstrip("/").endswith("asan"):
        return "the package is built and checked in the release build only"
    return None


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    build = tmp_path_factory.mktemp("build-deb")
    # Lintian runs below, in a test of its own.
    p = run(["bash", os.path.join(ROOT, "packaging", "build-deb.sh"),
             str(build)], env=dict(os.environ, LOGSINK_LINTIAN="0"),
            timeout=1500)
    assert p.returncode == 0, ("build-deb.sh failed (rc %d):\n%s\n%s"
                               % (p.returncode, p.stdout[-5000:],
                                  p.stderr[-20000:]))
    path = p.stdout.strip().splitlines()[-1]
    assert path.endswith(".deb") and os.path.isfile(path), p.stdout
    return path


@pytest.fixture(scope="module")
def deb_tree(deb, tmp_path_factory):
    root = tmp_path_factory.mktemp("deb-root")
    p = run(["dpkg-deb", "-x", deb, str(root)])
    assert p.returncode == 0, p.stderr
    return root


def deb_field(deb, field):
    p = run(["dpkg-deb", "-f", deb, field])
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_package_contents(deb):
    p = run(["dpkg-deb", "-c", deb])
    assert p.returncode == 0, p.stderr
    listing = {}
    for line in p.stdout.splitlines():
        fields = line.split()
        listing[fields[5]] = (fields[0], fields[1])
    for path in EXPECTED_FILES:
        assert path in listing, "%s missing from:\n%s" % (path, p.stdout)
    sql = sorted(os.path.basename(f) for f in os.listdir(
        os.path.join(ROOT, "sql")) if f.endswith(".sql"))
    assert sql
    for name in sql:
        assert "./usr/share/logsink/sql/" + name in listing, name
    for path, (mode, owner) in listing.items():
        assert owner == "root/root", (path, owner)
    assert listing["./usr/bin/logsinkd"][0] == "-rwxr-xr-x"


def test_package_control(deb):
    assert deb_field(deb, "Package") == "logsink"
    version = deb_field(deb, "Version")
    assert version.startswith(harness.repo_version() + "-"), version
    depends = [d.split()[0] for d in deb_field(deb, "Depends").split(", ")]
    for dep in EXPECTED_DEPENDS:
        assert dep in depends, (dep, depends)
    # The maintainer scripts are there and executable; the config is a
    # conffile.
    p = run(["dpkg-deb", "-I", deb])
    assert p.returncode == 0, p.stderr
    for script in ("postinst", "prerm", "postrm"):
        assert re.search(r"\*\s+%s\s" % script, p.stdout), p.stdout
    p = run(["dpkg-deb", "-I", deb, "conffiles"])
    assert p.stdout.split() == ["/etc/logsinkd/logsinkd.conf"], p.stdout


def test_packaged_files(deb_tree):
    """The installed files are the sources, with the packaged paths."""
    with open(CONF) as f:
        assert (deb_tree / "etc/logsinkd/logsinkd.conf").read_text() == \
            f.read()
    unit = (deb_tree / "lib/systemd/system/logsinkd.service").read_text()
    assert "\nExecStart=/usr/bin/logsinkd -c /etc/logsinkd/logsinkd.conf\n" \
        in unit
    for rel, src in (("usr/share/man/man8/logsinkd.8.gz", MAN8),
                     ("usr/share/man/man5/logsinkd.conf.5.gz", MAN5)):
        with gzip.open(deb_tree / rel, "rt") as z, open(src) as f:
            assert z.read() == f.read(), rel
    binary = str(deb_tree / "usr/bin/logsinkd")
    p = run([binary, "--version"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "logsinkd " + harness.repo_version()
    if shutil.which("file"):
        assert "not stripped" not in run(["file", binary]).stdout


def test_lintian_reports_no_errors(deb, capsys):
    # build-deb.sh installs lintian when missing (as root or with sudo).
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    p = run(["lintian", "--info", deb])
    tags = [line for line in p.stdout.splitlines()
            if re.match(r"[EWIPX]: ", line)]
    with capsys.disabled():
        print("\nlintian %s:\n  %s" % (os.path.basename(deb),
                                        "\n  ".join(tags) or "(clean)"))
    errors = [t for t in tags if t.startswith("E: ")]
    assert not errors and p.returncode == 0, p.stdout + p.stderr


def _dpkg_status(package):
    p = run(["dpkg-query", "-W", "-f=${Status}", package])
    return p.stdout if p.returncode == 0 else ""


def test_install_remove_purge(deb):
    """The maintainer scripts on this machine: dpkg -i, -r, -P.

    Changes the system (installs the package; the logsink system user
    stays after purge, as Debian policy wants), so it runs only as root
    and in CI or with LOGSINK_TEST_DPKG=1, and never over an installed
    logsink package.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not (os.environ.get("CI") == "true"
            or os.environ.get("LOGSINK_TEST_DPKG") == "1"):
        pytest.skip("changes the system: set LOGSINK_TEST_DPKG=1 (CI does)")
    if "installed" in _dpkg_status("logsink"):
        pytest.skip("a logsink package is installed already")
    conf = "/etc/logsinkd/logsinkd.conf"
    try:
        p = run(["dpkg", "-i", deb])
        assert p.returncode == 0, p.stdout + p.stderr
        assert run(["getent", "passwd", "logsink"]).stdout.split(":")[5] \
            == "/var/lib/logsinkd"
        st = os.stat(conf)
        assert (st.st_uid, oct(st.st_mode & 0o777)) == (0, "0o640")
        assert st.st_gid == int(run(["getent", "group", "logsink"])
                                .stdout.split(":")[2])
        st = os.stat("/var/lib/logsinkd")
        assert oct(st.st_mode & 0o777) == "0o750"
        # The service user can read the shipped config.
        p = run(["setpriv", "--reuid=logsink", "--regid=logsink",
                 "--init-groups", "/usr/bin/logsinkd", "-c", conf,
                 "--check-config"])
        assert p.returncode == 0, p.stdout + p.stderr
        # Reinstalling (an upgrade to the same version) keeps all that.
        p = run(["dpkg", "-i", deb])
        assert p.returncode == 0, p.stdout + p.stderr
        assert oct(os.stat(conf).st_mode & 0o777) == "0o640"

        p = run(["dpkg", "-r", "logsink"])
        assert p.returncode == 0, p.stdout + p.stderr
        assert not os.path.exists("/usr/bin/logsinkd")
        assert os.path.exists(conf)  # a conffile stays until purge
        p = run(["dpkg", "-P", "logsink"])
        assert p.returncode == 0, p.stdout + p.stderr
        assert not os.path.exists("/etc/logsinkd")
        assert not os.path.exists("/var/lib/logsinkd")
        assert "logsinkd" not in run(["dpkg-statoverride", "--list"]).stdout
        assert _dpkg_status("logsink") == ""
    finally:
        if _dpkg_status("logsink"):
            run(["dpkg", "-P", "logsink"])
