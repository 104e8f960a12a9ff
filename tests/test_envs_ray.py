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


def test_a_ray_run_is_waiting_while_its_env_builds_on_the_node_and_a_cancel_stops_its_job(
    ray_cp: ControlPlane, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the job's env launcher finds or builds the env, Ray calls the job running but the command
    has not started: the run is ``waiting`` (WAITING-ON, ``jobs why`` env_building), as on the local
    engine; it runs once the env is ready, and a cancel meanwhile stops its Ray job. The test holds
    the env's build lock (as another node's build would) with a state saying it builds."""
    import time

    from cli_runner import run_cli
    from merlin.control.runtime import prepare
    from merlin.envs.cache import EnvCache
    from merlin.envs.spec import env_id

    monkeypatch.setenv("MERLIN_ENV_CACHE", str(tmp_path / "envcache"))
    runtime = runtime_for(wheelhouse, "mlnprobe==1.0")
    frozen, _ = prepare(ray_cp, runtime)
    assert frozen is not None
    eid = env_id(frozen.model_dump(mode="json"))
    cache = EnvCache(tmp_path / "envcache")
    lock = cache.lock(eid)
    assert lock.try_acquire()
    cache.write_state(eid, state="building", line="another node builds it", started_at=time.time())

    def until(pred, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := pred():
                return value
            time.sleep(0.3)
        raise AssertionError("not reached in time")

    try:
        keep, stop = (ray_cp.submit(["python", "-c", CODE], target="envs", workflow=w, engine="ray", runtime=runtime) for w in ("keep", "stop"))
        for rec in (keep, stop):
            waiting = until(lambda rec=rec: (r := ray_cp.status(rec.run_id)).status == RunStatus.WAITING and r.waiting_on == f"env {eid[:12]} building" and r)
            assert "to build on the node" in waiting.message, waiting.message
        why = [c for c in ray_cp.why(keep.run_id) if c["code"] == "env_building"]
        assert why and "another node builds it" in why[0]["message"], ray_cp.why(keep.run_id)
        listed = run_cli("ray", "jobs", "list", "--state-root", str(ray_cp.root))
        assert "WAITING-ON" in listed.stdout and f"env {eid[:12]} building" in listed.stdout, listed.stdout
        cancelled = ray_cp.cancel(stop.run_id)
        assert cancelled.status == RunStatus.CANCELLED, cancelled.message
    finally:
        lock.release()
    done = ray_cp.wait(keep.run_id, timeout=300)
    assert done.status == RunStatus.SUCCEEDED, (done.message, ray_cp.logs(keep.run_id))
    assert "version 1.0" in ray_cp.logs(keep.run_id) and done.attempt.env_id == eid and done.attempt.env_cache == "built"
    assert done.waiting_on is None and "waiting_for" not in done.metadata
    moves = [(e.from_status, e.to_status) for e in ray_cp.events(keep.run_id) if e.event == "transition"]
    assert ("pending", "waiting") in moves and moves[-1][1] == "succeeded", moves
    api = ray_cp.engine("ray").client(ray_cp.ledger.read_cluster(stop.cluster.name))
    assert until(lambda: api.get_job(stop.attempt.submission_id).status == "STOPPED", 60)
    assert ray_cp.status(stop.run_id).status == RunStatus.CANCELLED and "version 1.0" not in ray_cp.logs(stop.run_id)
