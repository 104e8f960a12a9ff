"""Run environments on the shared Ray head: the job's entrypoint is merlin's env launcher,
started by the interpreter that started the head, so the env is built where the job lands."""

from __future__ import annotations

from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus
from tests.wheelhouse import runtime_for, wheelhouse  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.ray, pytest.mark.slow]
CODE = "import mlnprobe, sys; print('version', mlnprobe.__version__); print('prefix', sys.prefix)"


def test_v1_and_v2_at_once_on_the_shared_head(ray_cp: ControlPlane, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERLIN_ENV_CACHE", str(tmp_path / "envcache"))
    runs = [ray_cp.submit(["python", "-c", CODE], target="envs", workflow="ray", engine="ray", runtime=runtime_for(wheelhouse, f"mlnprobe=={v}")) for v in ("1.0", "2.0")]
    done = [ray_cp.wait(r.run_id, timeout=300) for r in runs]
    logs = [ray_cp.logs(r.run_id) for r in runs]
    assert [d.status for d in done] == [RunStatus.SUCCEEDED] * 2, logs
    assert "version 1.0" in logs[0] and "version 2.0" in logs[1]
    assert all(f"prefix {tmp_path / 'envcache' / 'envs'}" in text for text in logs), logs  # each in its own env from the cache
    assert all("merlin-env: environment" in text for text in logs)
    statuses = [ray_cp.status(r.run_id) for r in runs]
    assert all(s.attempt.env_id and s.attempt.env_cache in ("hit", "built") for s in statuses), [s.attempt for s in statuses]
    req = ray_cp.ledger.read_request(runs[0].run_id)
    assert req.runtime is not None and req.runtime.find_links == [str(wheelhouse)]


def test_an_unmeetable_requirement_on_ray_is_blocked_with_uvs_message_then_fixed_and_retried(
    ray_cp: ControlPlane, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on the local engine: a Ray job whose env cannot be built never ran its command, so the run is
    ``blocked`` (not ``failed``) with uv's line and the fix; after the fix a retry builds and succeeds."""
    monkeypatch.setenv("MERLIN_ENV_CACHE", str(tmp_path / "envcache"))
    req = tmp_path / "requirements.txt"
    req.write_text("mlnprobe==9.0\n")
    runtime = {"requirements_file": str(req), "find_links": [str(wheelhouse)], "no_index": True}
    rec = ray_cp.submit(["python", "-c", CODE], target="envs", workflow="ray-blocked", engine="ray", runtime=runtime)
    rec = ray_cp.wait(rec.run_id, timeout=300)
    assert rec.status == RunStatus.BLOCKED, rec.message
    assert "no version of mlnprobe==9.0" in rec.message and "never ran" in rec.message, rec.message
    assert rec.attempt.error_type == "ENV_BUILD_FAILED" and "mlnprobe==9.0" in (rec.attempt.error_message or "")
    assert [s.action for s in rec.next_steps][-1] == "retry"
    req.write_text("mlnprobe==2.0\n")  # the fix
    again = ray_cp.wait(ray_cp.retry(rec.run_id).run_id, timeout=300)
    assert again.status == RunStatus.SUCCEEDED, again.message
    assert "version 2.0" in ray_cp.logs(rec.run_id)
    assert len(again.attempts) == 2 and again.attempt.env_cache == "built"
