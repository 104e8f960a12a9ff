"""An engine's observation that arrives after the run's executor already reported.

A Ray job can run its whole TargetGen executor between two polls: the executor writes its
outcome (message and next steps) into the record while the record still says ``pending``,
and the next poll, made before the job ended, sees Ray's ``RUNNING``. That late ``running``
must not replace the executor's words, or the run ends ``succeeded`` with "running on
cluster ..." and no answer step (the race behind a CI failure of
test_ray_targetgen.py::test_execute_on_ray_records_the_executor_outcome).
The observations are applied here as the poller applies them, in that order.
"""

from __future__ import annotations

from pathlib import Path

from merlin.control.observe import apply
from merlin.controlplane import ControlPlane
from merlin.engines.base import Observation
from merlin.ledger import RunStatus
from merlin.ledger.models import Attempt, ClusterRef, RunRecord, RunRequest


def _pending_ray_run(cp: ControlPlane, target_dir: Path) -> RunRecord:
    target_dir.mkdir(parents=True)
    req = RunRequest(run_id="late-1", target="demo", workflow="targetgen", source="targetgen", engine="ray", command=["true"], workdir="/",
                     target_dir=str(target_dir), cluster="c1")
    rec = RunRecord(run_id="late-1", target="demo", workflow="targetgen", source="targetgen", engine="ray", status=RunStatus.PENDING,
                    command=["true"], workdir="/", target_dir=str(target_dir), cluster=ClusterRef(name="c1"),
                    attempts=[Attempt(number=1, engine="ray", status=RunStatus.PENDING, submission_id="merlin-late-1-1")])
    cp.ledger.create_run(req, rec, cause="test")
    return cp.get("late-1")


def test_a_late_running_observation_keeps_the_executors_outcome_message_and_steps(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "state")
    seen = _pending_ray_run(cp, tmp_path / "target")
    answer = [{"action": "targetgen_answer", "args": {"target_dir": seen.target_dir, "question_id": "q1", "choice": "yes"}}]
    reported = cp.record_outcome("late-1", "awaiting_operator", "awaiting_operator: question q1 at t1; answer it", next_steps=answer)
    assert reported.status == RunStatus.PENDING and reported.outcome == "awaiting_operator"

    running = apply(cp, seen, Observation(RunStatus.RUNNING), keep_logs=False)  # polled before the job ended
    assert running.status == RunStatus.RUNNING
    assert running.message == "awaiting_operator: question q1 at t1; answer it", running.message
    assert [s.action for s in running.next_steps] == ["targetgen_answer"]

    done = apply(cp, running, Observation(RunStatus.SUCCEEDED, exit_code=10), keep_logs=False)
    assert done.status == RunStatus.SUCCEEDED and done.outcome == "awaiting_operator"
    assert done.message.startswith("awaiting_operator: question q1"), done.message
    assert [s.action for s in done.next_steps] == ["targetgen_answer"]


def test_a_run_without_an_outcome_still_says_where_it_runs(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "state")
    seen = _pending_ray_run(cp, tmp_path / "target")
    running = apply(cp, seen, Observation(RunStatus.RUNNING), keep_logs=False)
    assert running.message.startswith("running on cluster 'c1'"), running.message
    assert [s.action for s in running.next_steps] == ["logs"]
