"""The symmetric-run baseline of benchmarks/bench_slurm.py is safe to run beside other Rays.

symmetric-run ends with a bare `ray stop` (ray/scripts/symmetric_run.py:265), which would
end every Ray on the machine; the benchmark runs each srun task in its own PID namespace.
These tests check that protection for real (what `ray stop` would scan from inside a
namespace does not show a Ray-looking decoy outside, while the same probe outside does;
no `ray stop` is ever run here) and that every task of the generated sbatch script is
wrapped in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from slurm_support import BARE_STOP

sys.path.insert(0, str(REPO / "benchmarks"))
import _symmetric_run as sym


def test_what_ray_stop_would_scan_inside_the_pid_namespace_does_not_show_a_ray_looking_process_outside() -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("unshare --pid --mount-proc needs util-linux's unshare and root")
    problem = sym.isolation_problem(sys.executable)
    if problem is not None and problem.startswith("unshare"):
        pytest.skip(f"this machine cannot make PID namespaces, so bench_slurm --baseline would not run either: {problem}")
    assert problem is None
    # the probe can fail: outside a namespace it sees the decoy, as `ray stop` would
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "log_monitor.py"])
    try:
        time.sleep(0.3)
        outside = subprocess.run([sys.executable, "-c", sym.PROBE, str(decoy.pid)], capture_output=True, text=True, timeout=60)
        assert outside.returncode == 3, outside.stdout + outside.stderr
    finally:
        decoy.kill()
        decoy.wait()


def test_every_srun_task_of_the_template_runs_in_its_own_pid_namespace(tmp_path: Path) -> None:
    batch = sym.write_scripts(tmp_path, sys.executable, "print('first', flush=True)", 100 * 1024 * 1024)
    text = batch.read_text()
    (srun,) = [line for line in text.splitlines() if line.startswith("srun ")]
    assert "unshare --pid --fork --mount-proc --kill-child /bin/bash" in srun and "--ntasks-per-node=1" in srun
    node = (tmp_path / "sym_node.sh").read_text()
    # Ray's own template: symmetric-run with the head's address, both nodes, the dashboard on loopback
    assert " --address \"$SYM_HEAD:" in node and "--min-nodes 2" in node and "--dashboard-host=127.0.0.1" in node
    assert "\n  -- " in node  # the entrypoint after symmetric-run's mandatory separator
    # nothing of ours runs `ray stop`: the only one is symmetric-run's own, inside the namespace
    assert not BARE_STOP.search(text) and not BARE_STOP.search(node)
    # the machine's shared Ray dirs stay untouched: a private HOME (~/.ray) and RAY_TMPDIR (/tmp/ray)
    assert "export HOME=$tmp" in node and "RAY_TMPDIR=$tmp" in node
    # the leftover count runs after symmetric-run, in PID 1, with builtins only
    assert node.index("sym-exit") < node.index("sym-leftover") and "ps " not in node
