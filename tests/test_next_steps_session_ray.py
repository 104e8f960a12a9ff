"""A scripted session on a cluster named c1 with ports of its own (issue 19): every next step
merlin prints is run verbatim, in order, through a shell, and none ends blocked on a wrong
cluster; `targetgen execute --wait` exits with its outcome's code; `jobs why` of a finished run holds nothing.

One head of its own (a shared head cannot be renamed): ``ray_own_head``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from ray_fixtures import start_cluster

ME = "./merlin"
OUTCOME_EXIT = {"completed": 0, "blocked": 3, "awaiting_operator": 10, "awaiting_response": 10}


def sh(line: str, root: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """One printed command, as a person pastes it into bash (from the repository, where ./merlin is)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MERLIN_STATE_ROOT", "COLUMNS")}
    return subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def printed(res: subprocess.CompletedProcess[str]) -> list[str]:
    """The commands a view suggests: ``next: CMD`` hints on stderr, and a status view's ``next   CMD`` rows on stdout."""
    hints = [line.removeprefix("next: ") for line in res.stderr.splitlines() if line.startswith(f"next: {ME} ")]
    rows = [line[4:].strip() for line in res.stdout.splitlines() if line.startswith("next ") and line[4:].strip().startswith(f"{ME} ")]
    return hints + rows


@pytest.mark.ray
@pytest.mark.ray_own_head  # a head of its own, named c1, on ports of its own
def test_every_printed_next_step_runs_verbatim_on_cluster_c1(cluster_root: Path, tmp_path: Path) -> None:
    from merlin.controlplane import ControlPlane

    cp, c1 = start_cluster(cluster_root, "c1")
    assert c1.ports.gcs != 6379 and c1.ports.dashboard != 8265
    cap = REPO / "target_specs" / "examples" / "muon_gpu_hal" / "capability.yaml"
    assert sh(f"{ME} targetgen orchestrate {cap} --out-dir {tmp_path}", cluster_root).returncode == 0
    target = tmp_path / "muon_gpu_hal"
    first = sh(f"{ME} targetgen execute --from-dir {target} --engine ray --cluster c1 --wait --state-root {cluster_root}", cluster_root)
    (rid,) = [r["run_id"] for r in cp.list_runs()]
    rec = cp.get(rid)
    assert rec.outcome in OUTCOME_EXIT and first.returncode == OUTCOME_EXIT[rec.outcome], (first.returncode, rec.outcome, first.stderr)
    queue = printed(first)
    assert any(" --cluster c1 " in f" {c} " for c in queue), queue  # "execute again" goes back to c1
    ran: list[str] = []
    while queue and len(ran) < 8:
        line = queue.pop(0)
        if line in ran:
            continue
        ran.append(line)
        res = sh(line, cluster_root)
        assert res.returncode in (0, 10), (line, res.returncode, res.stderr)
        for run in cp.list_runs():  # a pasted step never sends a run to another cluster, nor leaves it blocked for one
            cp.wait(run["run_id"], timeout=300)
            got = cp.get(run["run_id"])
            assert got.status.value != "blocked", (line, got.message)
            assert got.cluster is not None and got.cluster.name == "c1", (line, got.cluster)
            status = sh(f"{ME} ray jobs status {got.run_id} --state-root {cluster_root}", cluster_root)
            queue += [c for c in printed(status) if c not in ran]  # retry and cancel too: a retry must go back to c1
    assert any(" targetgen execute " in c for c in ran) and any(" targetgen answer " in c or " targetgen status " in c for c in ran), ran
    # a failed job on c1: its status prints a retry, which, pasted, runs on c1 again (not the default cluster)
    bad = sh(f"{ME} ray jobs submit --engine ray --cluster c1 --target t --workflow w --wait --state-root {cluster_root} -- false", cluster_root)
    failed_id = bad.stdout.strip().splitlines()[0] if bad.stdout.strip() else ""
    assert bad.returncode == 1 and cp.get(failed_id).status.value == "failed", (bad.returncode, bad.stdout, bad.stderr)
    retry = [c for c in printed(sh(f"{ME} ray jobs status {failed_id} --state-root {cluster_root}", cluster_root)) if " jobs retry " in c]
    assert retry and " --state-root " in retry[0], retry
    again = sh(retry[0], cluster_root)
    assert again.returncode == 0, (retry[0], again.stderr)
    got = cp.wait(failed_id, timeout=300)
    assert len(got.attempts) == 2 and got.status.value == "failed" and got.cluster.name == "c1", (got.status, got.message, got.cluster)
    # --wait: the same exit code for the same outcome, whichever command waited (execute --wait above; the
    # codes of every command are cli/common.py's one table, tests/test_why_document.py)
    last = cp.list_runs()[0]
    # jobs why --json is the gateway's runs_why document; a finished run is held by nothing
    why = json.loads(sh(f"{ME} ray jobs why {last['run_id']} --json --state-root {cluster_root}", cluster_root).stdout)
    assert set(why) == {"run_id", "status", "message", "held", "conditions", "next_steps"}
    assert why["held"] is False and why["conditions"] == [], why
    assert ControlPlane(cluster_root).get(last["run_id"]).cluster.name == "c1"
