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
