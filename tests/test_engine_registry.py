"""Engines come from merlin.engines.registry: a toy engine defined in this file alone,
registered at run time, runs a run end to end (submit, observe, logs, cancel, retry)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from merlin.engines import registry
from merlin.engines.base import CancelResult, Observation, Preflight, Submitted
from merlin.errors import BadInput, Blocked
from merlin.ledger.status import RunStatus


class ToyEngine:
    """Runs the command to completion inside submit (a real subprocess), keeps its output
    in a file of its own, and reports what it saw when polled."""

    name = "toy"
    uses_cluster = False
    reports_own_status = False
    poll_interval = 0.05

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.kept: list[str] = []

    def _out(self, record, attempt=None) -> Path:
        return self.ledger.layout.run_dir(record.run_id) / f"toy-{attempt or len(record.attempts)}.out"

    def preflight(self, record, request) -> Preflight:
        if record.target == "refused":
            raise Blocked("the toy engine refuses targets named 'refused'", "toy_refused")
        return Preflight()  # no write-ahead: the run is written, then submitted

    def submit(self, record, request, env) -> Submitted:
        out = self._out(record)
        proc = subprocess.run(list(record.command), cwd=record.workdir, env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
        out.write_text(proc.stdout + proc.stderr)
        (out.with_suffix(".rc")).write_text(str(proc.returncode))
        return Submitted(submission_id=f"toy-{len(record.attempts)}", message="handed to the toy engine")

    def poll(self, record) -> Observation:
        rc = int(self._out(record).with_suffix(".rc").read_text())
        return Observation(status=RunStatus.SUCCEEDED if rc == 0 else RunStatus.FAILED, exit_code=rc)

    def poll_many(self, records):
        return {r.run_id: self.poll(r) for r in records}

    def logs(self, record, attempt=None) -> str:
        return self._out(record, attempt).read_text()

    def follow(self, record):
        yield self.logs(record)

    def cancel(self, record, grace=5.0) -> CancelResult:
        return CancelResult.DONE

    def keep_logs(self, records) -> None:
        for r in records:
            self.ledger.layout.attempt_log(r.run_id, len(r.attempts)).parent.mkdir(parents=True, exist_ok=True)
            self.ledger.layout.attempt_log(r.run_id, len(r.attempts)).write_text(self.logs(r))
            self.kept.append(r.run_id)


@pytest.fixture
def toy():
    registry.register("toy", ToyEngine)
    yield
    registry.unregister("toy")


def test_toy_engine_runs_a_run_end_to_end(toy, tmp_path: Path) -> None:
    assert "toy" in registry.names()
    cp = ControlPlane(tmp_path / "s")
    flag = tmp_path / "flag"
    script = f"import os,sys; print('toy says hi'); sys.exit(0 if os.path.exists({str(flag)!r}) else 5)"
    rec = cp.submit([sys.executable, "-c", script], target="demo", workflow="w", engine="toy")
    assert rec.engine == "toy" and rec.status == RunStatus.PENDING and rec.attempt.submission_id == "toy-1"
    assert rec.message == "handed to the toy engine"
    done = cp.wait(rec.run_id, timeout=30)
    assert done.status == RunStatus.FAILED and done.attempt.exit_code == 5
    assert [s.action for s in done.next_steps] == ["logs", "retry"]
    assert "toy says hi" in cp.logs(done.run_id)
    assert cp.engine("toy").kept == [rec.run_id]  # the engine kept its log when the run ended
    flag.write_text("x")
    again = cp.retry(rec.run_id, wait=True, timeout=30)
    assert again.status == RunStatus.SUCCEEDED and len(again.attempts) == 2 and again.attempts[0].status == RunStatus.FAILED
    assert [e.event for e in cp.events(rec.run_id)].count("artifacts") == 2
    assert cp.list_runs()[0]["engine"] == "toy"


def test_toy_engine_blocked_and_cancel(toy, tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "s")
    blocked = cp.submit(["true"], target="refused", workflow="w", engine="toy")
    assert blocked.status == RunStatus.BLOCKED and blocked.attempt.error_type == "toy_refused"
    assert [s.model_dump() for s in blocked.next_steps] == [{"action": "retry", "args": {"run_id": blocked.run_id}}]
    assert cp.cancel(blocked.run_id).status == RunStatus.CANCELLED
    with pytest.raises(BadInput, match="`cluster` applies to engines that run on a cluster") as err:
        cp.submit(["true"], target="demo", workflow="w", engine="toy", cluster="c1")
    assert err.value.argument == "cluster" and err.value.related == ["engine"]


def test_unknown_engine_names_the_registry(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="`engine` 'spark': expected one of local, ray"):
        ControlPlane(tmp_path).submit(["true"], target="demo", workflow="w", engine="spark")


def test_unregister_takes_back_a_lazy_registration() -> None:
    """A "module:Class" registration imports nothing until used, and unregister removes its name."""
    import sys as _sys

    _sys.modules.pop("merlin.engines.toy_lazy_nosuch", None)
    registry.register("lazytoy", "merlin.engines.toy_lazy_nosuch:Engine")
    try:
        assert "lazytoy" in registry.names() and registry.check_name("lazytoy") == "lazytoy"
        assert "merlin.engines.toy_lazy_nosuch" not in _sys.modules  # listed, not imported
        with pytest.raises(ModuleNotFoundError):
            registry.engine_class("lazytoy")  # imported only when asked for
    finally:
        registry.unregister("lazytoy")
    assert "lazytoy" not in registry.names()
    with pytest.raises(BadInput, match="expected one of local, ray$"):
        registry.check_name("lazytoy")


def test_a_shadowed_builtin_comes_back_on_unregister() -> None:
    from merlin.engines.local import LocalEngine
    from merlin.engines.ray_engine import RayEngine

    registry.register("local", "merlin.engines.ray_engine:RayEngine")  # a string shadowing a built-in
    try:
        assert registry.engine_class("local") is RayEngine and registry.names() == ["local", "ray"]
        registry.register("local", ToyEngine)  # stacked over the first shadow
        assert registry.engine_class("local") is ToyEngine
        registry.unregister("local")
        assert registry.engine_class("local") is RayEngine  # the first shadow is in force again
    finally:
        registry.unregister("local")
    assert registry.engine_class("local") is LocalEngine and registry.names() == ["local", "ray"]
    registry.unregister("local")  # nothing registered: the built-in stays
    assert registry.engine_class("local") is LocalEngine
