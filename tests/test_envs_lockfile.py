"""`jobs submit --lock FILE` installs what the lockfile pins, from where it says: a uv.lock (beside
its pyproject.toml) and a pylock.toml, generated here by uv from a project pinned to one version of
the wheelhouse's package (tests/wheelhouse.py), installed with no index at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from merlin.envs.spec import find_uv
from merlin.ledger.status import RunStatus
from tests.cli_runner import run_cli
from tests.wheelhouse import wheelhouse  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow


def locked_project(where: Path, wheels: Path, version: str) -> Path:
    """A project depending on mlnprobe==VERSION, locked by uv from the wheelhouse alone
    (uv.lock), and exported (pylock.toml); returns its directory."""
    where.mkdir(parents=True)
    (where / "pyproject.toml").write_text(
        f'[project]\nname = "locked-demo"\nversion = "0.1"\nrequires-python = ">=3.8"\ndependencies = ["mlnprobe=={version}"]\n'
    )
    uv = find_uv()
    subprocess.run([uv, "lock", "--offline", "--no-config", "--no-index", "--find-links", str(wheels), "--quiet"], cwd=where, check=True, timeout=120)
    subprocess.run([uv, "export", "--frozen", "--no-config", "--no-emit-project", "--format", "pylock.toml", "-o", "pylock.toml", "--quiet"],
                   cwd=where, check=True, timeout=120)  # fmt: skip
    assert f'version = "{version}"' in (where / "uv.lock").read_text() and f'version = "{version}"' in (where / "pylock.toml").read_text()
    return where


@pytest.mark.parametrize(("lockfile", "version"), [("uv.lock", "1.0"), ("pylock.toml", "1.0"), ("uv.lock", "2.0")])
def test_a_run_with_a_lock_prints_the_locked_version(wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lockfile: str, version: str) -> None:
    monkeypatch.setenv("MERLIN_ENV_CACHE", str(tmp_path / "envcache"))
    project = locked_project(tmp_path / "project", wheelhouse, version)
    root = ["--state-root", str(tmp_path / "state")]
    # --no-index and no --find-links: the lock alone says what to install and where it is
    done = run_cli("ray", "jobs", "submit", "--engine", "local", "--target", "envs", "--workflow", "w", "--lock", str(project / lockfile), "--no-index",
                   "--wait", *root, "--", "mlnprobe-cli")  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    cp = ControlPlane(tmp_path / "state")
    rec = cp.get(run_id)
    assert rec.status == RunStatus.SUCCEEDED, rec.message
    assert f"mlnprobe {version}" in cp.logs(run_id)
    assert rec.attempt.env_id and cp.ledger.read_request(run_id).runtime.lockfile_name == lockfile
