"""One run drives a target directory at a time: a second `targetgen execute --engine E`
on a busy directory is refused at submit (blocked, exit 3), naming the run and the lock holder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from test_executor_concurrency import start_cli, wait_for
from test_ray_targetgen import CAP, overlay


def test_execute_on_an_engine_is_refused_while_a_local_execute_holds_the_target(tmp_path: Path) -> None:
    out = tmp_path / "targets"
    assert run_cli("targetgen", "orchestrate", str(CAP), "--overlay", str(overlay()), "--out-dir", str(out)).returncode == 0
    tdir = out / "x86_cpu_baseline"
    ready, release = tmp_path / "locked", tmp_path / "unlock"
    holder_code = (
        "import sys, time, pathlib\n"
        "from merlin.targetgen import state as st\n"
        "with st.target_lock(st.Layout(pathlib.Path(sys.argv[1])), 'execute', 5):\n"
        "    pathlib.Path(sys.argv[2]).touch()\n"
        "    deadline = time.time() + 60\n"
        "    while not pathlib.Path(sys.argv[3]).exists() and time.time() < deadline:\n"
        "        time.sleep(0.05)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", holder_code, str(tdir), str(ready), str(release)], text=True)
    try:
        wait_for(ready, holder)
        res = run_cli("targetgen", "execute", "--from-dir", str(tdir), "--engine", "ray")
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert res.returncode == 3, res.stderr
    assert f"locked by pid {holder.pid}" in res.stderr and "is busy" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert ControlPlane().list_runs() == []  # refused before anything was recorded or submitted


@pytest.mark.ray
@pytest.mark.slow
def test_two_concurrent_ray_executes_on_one_target_directory_one_is_refused(ray_cp: ControlPlane, tmp_path: Path) -> None:
    out = tmp_path / "targets"
    assert run_cli("targetgen", "orchestrate", str(CAP), "--overlay", str(overlay()), "--out-dir", str(out)).returncode == 0
    tdir = (out / "x86_cpu_baseline").resolve()
    procs = [start_cli("targetgen", "execute", "--from-dir", str(tdir), "--engine", "ray", "--json") for _ in range(2)]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    codes = sorted(code for _, code in results)
    assert codes == [0, 3], results
    (accepted_out, _), _ = next(r for r in results if r[1] == 0)
    (_, refused_err), _ = next(r for r in results if r[1] == 3)
    first = json.loads(accepted_out)
    assert f"run {first['run_id']} is still active on it" in refused_err, refused_err
    assert [r["run_id"] for r in ray_cp.list_runs()] == [first["run_id"]]  # the refused one was never recorded
    done = ray_cp.wait(first["run_id"], timeout=240)
    assert done.status.value == "succeeded", done.message
    # once it ended, the directory is free again: a further execute is accepted
    again = run_cli("targetgen", "execute", "--from-dir", str(tdir), "--engine", "ray", "--json", timeout=120)
    assert again.returncode == 0, again.stderr
    assert ray_cp.wait(json.loads(again.stdout)["run_id"], timeout=240).status.value == "succeeded"
