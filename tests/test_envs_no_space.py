"""A build that runs out of disk: the run is `blocked` (its command never ran) with uv's own error
line and the fix (space, not the requirements). The disk is real and really full: the env cache is
a 2 MiB tmpfs, mounted in a user and mount namespace (`unshare -Urm`, no root needed) that the
submit and its detached supervisor run in, and the package holds 3 MB that cannot be compressed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from merlin.envs.spec import find_uv
from merlin.ledger.status import RunStatus

pytestmark = pytest.mark.slow


def namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=1m tmpfs /tmp"],
                          capture_output=True).returncode == 0  # fmt: skip


@pytest.mark.skipif(not namespaces_work(), reason="no unprivileged user+mount namespaces here (unshare -Urm) to mount a small tmpfs")
def test_a_build_out_of_space_is_blocked_with_uvs_line_and_the_fix(tmp_path: Path) -> None:
    project = tmp_path / "big"
    (project / "src" / "mlnbig").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "mlnbig"\nversion = "1.0"\n[build-system]\nrequires = ["uv_build>=0.9,<0.20"]\nbuild-backend = "uv_build"\n')
    (project / "src" / "mlnbig" / "__init__.py").write_text("")
    (project / "src" / "mlnbig" / "blob.bin").write_bytes(os.urandom(3_000_000))
    wheels = tmp_path / "wheels"
    subprocess.run([find_uv(), "build", "--wheel", "--no-index", "--no-config", "--quiet", "--out-dir", str(wheels), str(project)], check=True, timeout=120)
    cache, state = tmp_path / "envcache", tmp_path / "state"
    cache.mkdir()
    mount = f"mount -t tmpfs -o size=2m tmpfs {cache} && exec \"$@\""
    submit = [sys.executable, "-m", "merlin", "ray", "jobs", "submit", "--engine", "local", "--target", "envs", "--workflow", "w", "--with", "mlnbig==1.0",
              "--find-links", str(wheels), "--no-index", "--state-root", str(state), "--", "python", "-c", "print('the command ran')"]  # fmt: skip
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", mount, "sh", *submit], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MERLIN_ENV_CACHE": str(cache)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    cp = ControlPlane(state)
    rec = cp.wait(run_id, timeout=240)
    assert rec.status == RunStatus.BLOCKED, rec.message
    assert rec.attempt.error_type == "ENV_BUILD_FAILED" and rec.attempt.start_time is None, "its command never ran"
    assert "No space left on device (os error 28)" in rec.attempt.error_message, "uv's own line"
    assert rec.attempt.error_message in rec.message
    assert f"The filesystem of the env cache ({cache}) is full: free space there" in rec.message and "Fix the requirements" not in rec.message
    assert [s.action for s in rec.next_steps] == ["retry"]
    assert "the command ran" not in cp.logs(run_id)
    assert not list(cache.iterdir()), "the tmpfs held everything: nothing reached the disk beneath"
