"""The COPY encoder against a real COPY: runs the cmocka binary
test_copyenc with LOGSINK_TEST_PG pointing at a throwaway cluster, so its
database cases (all 256 byte values, ill-formed UTF-8, random strings and
whole log rows, round-tripped through COPY and read back) run instead of
being skipped."""

import os
import subprocess


def test_copyenc_real_copy(pg):
    binary = os.path.join(os.environ["LOGSINK_BUILD"], "test_copyenc")
    assert os.access(binary, os.X_OK), "build test_copyenc first: " + binary
    env = dict(os.environ, LOGSINK_TEST_PG=pg.conninfo)
    r = subprocess.run([binary], env=env, capture_output=True, text=True,
                       timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "SKIPPED" not in out, out
    assert "PASSED" in out, out
