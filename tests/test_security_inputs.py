"""Issue 9 sections 3 (CLI side) and 7: numeric flags finite and in range, a JSON
writer that refuses NaN/Infinity, no state root in a system tree, NUL bytes are
BadInput in the Python API, and a state root that is a file is exit 2 everywhere."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.errors import BadInput


def one_line(res, code: int = 2) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


SUBMIT = ["ray", "jobs", "submit", "--target", "t", "--workflow", "w"]


@pytest.mark.parametrize(
    "args, expect",
    [
        ([*SUBMIT, "--num-cpus", "nan", "--", "true"], "--num-cpus nan: expected a finite number"),
        ([*SUBMIT, "--num-cpus", "inf", "--", "true"], "--num-cpus inf: expected a finite number"),
        ([*SUBMIT, "--num-gpus", "-1", "--", "true"], "--num-gpus -1.0: must be >= 0"),
        ([*SUBMIT, "--resource", "accel=nan", "--", "true"], "--resource accel nan: expected a finite number"),
        ([*SUBMIT, "--resource", "accel=Infinity", "--", "true"], "--resource accel inf: expected a finite number"),
        ([*SUBMIT, "--resource", "accel=-2", "--", "true"], "--resource accel -2.0: must be >= 0"),
        (["ray", "cluster", "start-local", "--num-cpus", "-1"], "--num-cpus -1: must be >= 0"),
        (["ray", "cluster", "start-local", "--num-gpus", "-3"], "--num-gpus -3: must be >= 0"),
        (["ray", "cluster", "start-local", "--resource", "x=nan"], "--resource x nan: expected a finite number"),
        (["ray", "cluster", "start-local", "--gcs-port", "0"], "--gcs-port 0: must be >= 1"),
        (["ray", "cluster", "start-local", "--dashboard-port", "70000"], "--dashboard-port 70000: must be <= 65535"),
        (["ray", "cluster", "start-local", "--object-store-memory", "0"], "--object-store-memory 0: must be > 0"),
        (["ray", "cluster", "stop", "--grace", "nan"], "'--grace': 'nan' is not a duration"),
        (["ray", "jobs", "watch", "x-run", "--interval", "nan"], "'--interval': 'nan' is not a duration"),
        (["ray", "jobs", "watch", "x-run", "--interval", "0"], "--interval 0.0: must be > 0"),
        (["ray", "jobs", "watch", "x-run", "--timeout", "-inf"], "'--timeout': '-inf' is not a duration"),
        (["ray", "jobs", "watch", "x-run", "--timeout", "-5s"], "'--timeout': '-5s' is not a duration"),
        (["ray", "jobs", "list", "--limit", "-1"], "--limit -1: must be >= 0"),
        (["ray", "jobs", "logs", "x-run", "--attempt", "0"], "--attempt 0: must be >= 1"),
        (["ray", "cluster", "start", "--kind", "slurm", "--nodes", "0"], "--nodes 0: must be >= 1"),
        (["ray", "cluster", "start", "--kind", "slurm", "--wait-timeout", "3m"], "--wait-timeout bounds the --wait of a slurm or pbs start: add --wait"),
        (["ray", "cluster", "start", "--kind", "ssh", "--wait", "--wait-timeout", "3m"], "add --wait and --kind slurm or pbs"),
        (["ray", "cluster", "start", "--kind", "slurm", "--cpus-per-node", "-2"], "--cpus-per-node -2: must be >= 0"),
        (["ray", "resources", "reserve", "gpu:1", "--timeout", "nan"], "'--timeout': 'nan' is not a duration"),
        (["ray", "resources", "reserve", "gpu:1", "--pid", "0"], "--pid 0: must be >= 1"),
    ],
)
def test_numeric_flags_are_finite_and_in_range(args: list[str], expect: str, tmp_path: Path) -> None:
    line = one_line(run_cli(*args, "--state-root", str(tmp_path / "s")))
    assert expect in line, line
    assert not (tmp_path / "s" / "runs").exists()  # nothing was recorded


def test_json_writer_refuses_non_finite_numbers(tmp_path: Path) -> None:
    from merlin.atomic import atomic_write_json, dump_json

    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(BadInput, match=r"non-finite number .*\$\.resources\.CPU"):
            dump_json({"resources": {"CPU": bad}})
    with pytest.raises(BadInput):
        atomic_write_json(tmp_path / "r.json", {"x": [1, math.nan]})
    assert not (tmp_path / "r.json").exists() and not list(tmp_path.glob(".*tmp"))
    assert json.loads(dump_json({"x": 1.5})) == {"x": 1.5}


def test_python_api_refuses_non_finite_counts(tmp_path: Path) -> None:
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(tmp_path / "s")
    for kw in ({"num_cpus": math.nan}, {"num_gpus": math.inf}, {"resources": {"a": math.nan}}, {"num_cpus": -1}):
        with pytest.raises(BadInput):
            cp.submit(["true"], target="t", workflow="w", **kw)
    assert cp.list_runs() == []


@pytest.mark.parametrize("root", ["/", "/etc", "/usr/lib/merlin", "/proc/1", "/tmp", "/home"])
def test_state_root_in_a_system_tree_is_refused(root: str) -> None:
    line = one_line(run_cli("ray", "jobs", "list", "--state-root", root))
    assert line.startswith(f"--state-root {root} is ") and "choose a directory of its own" in line
    env_line = one_line(run_cli("ray", "cluster", "list", env={"MERLIN_STATE_ROOT": root}))
    assert f"--state-root {root}" in env_line


def test_state_root_below_shared_dirs_is_fine(tmp_path: Path) -> None:
    res = run_cli("ray", "jobs", "list", "--state-root", str(tmp_path / "ok"))
    assert res.returncode == 0, res.stderr


def test_target_dir_check_is_shared(tmp_path: Path) -> None:
    from merlin import controlplane, safety

    assert controlplane.check_target_dir is safety.check_target_dir
    line = one_line(run_cli(*SUBMIT, "--target-dir", "/etc/x", "--state-root", str(tmp_path / "s"), "--", "true"))
    assert "--target-dir /etc/x is inside the system tree /etc" in line


def test_nul_bytes_are_bad_input(tmp_path: Path) -> None:
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(tmp_path / "s")
    cases = [
        dict(command=["echo", "a\0b"]),
        dict(command=["true"], target_dir="a\0b"),
        dict(command=["true"], workdir="a\0b"),
        dict(command=["true"], env={"A": "x\0y"}),
        dict(command=["true"], env={"A\0": "x"}),
    ]
    for kw in cases:
        command = kw.pop("command")
        with pytest.raises(BadInput, match="NUL|invalid environment"):
            cp.submit(command, target="t", workflow="w", **kw)
    with pytest.raises(BadInput, match="NUL"):
        ControlPlane("a\0b")
    with pytest.raises(BadInput, match="NUL"):
        cp.submit_targetgen(target="t", target_dir="a\0b")
    with pytest.raises(BadInput, match="NUL"):
        with cp.record_inprocess_run(target="t", target_dir="a\0b"):
            pass
    assert cp.list_runs() == []


def test_a_state_root_that_is_a_file_is_exit_2_for_every_command(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("not a dir")
    for args in (["ray", "cluster", "list"], ["ray", "jobs", "list"], ["ray", "cluster", "status"]):
        line = one_line(run_cli(*args, "--state-root", str(f)))
        assert f"state root {f} is not a directory" in line
