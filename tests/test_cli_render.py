"""What a person sees: identifiers whole at any width, honest exit codes and messages (issue 8)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import REPO

LONG_TARGET = "a-very-long-target-name-for-identifiers-x"  # the run id keeps 40 characters of it
LONG_ARTIFACT = "reports/an-artifact-name-long-enough-to-be-cut-by-rich-at-eighty-columns.json"
WIDTHS = ("60", "80", "100", "120", "160")


def submit(root: Path, *command: str, target: str = LONG_TARGET, wait: bool = True, target_dir: Path | None = None) -> str:
    args = ["ray", "jobs", "submit", "--engine", "local", "--target", target, "--workflow", "w", "--state-root", str(root)]
    if target_dir is not None:
        args += ["--target-dir", str(target_dir)]
    res = run_cli(*args, *(["--wait"] if wait else []), "--", *command)
    return res.stdout.strip().splitlines()[-1]


def lines_at(width: str, *args: str) -> list[str]:
    res = run_cli(*args, env={"COLUMNS": width})
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def header(lines: list[str]) -> list[str]:
    return [h.strip() for h in re.split(r"[┃│]", lines[0])]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("render") / "state"
    target = tmp_path_factory.mktemp("render-target")
    long_msg = submit(root, "sh", "-c", "exit 7")
    with_file = submit(root, "sh", "-c", f"mkdir -p {target}/reports && echo x > {target}/{LONG_ARTIFACT}", target_dir=target)
    short = tmp_path_factory.mktemp("render-short") / "state"
    submit(short, "true", target="t")
    return {"root": root, "short": short, "ids": [long_msg, with_file]}


def test_jobs_list_keeps_run_ids_whole_and_the_columns_fixed_at_60_80_120(ledger: dict[str, object]) -> None:
    for width in WIDTHS:
        lines = lines_at(width, "ray", "jobs", "list", "--state-root", str(ledger["root"]))
        for rid in ledger["ids"]:  # type: ignore[union-attr]
            assert any(line.split()[0] == rid for line in lines[2:]), (width, lines)
        cols = header(lines)
        assert cols[:2] == ["RUN ID", "STATUS"], (width, cols)
        assert_dropped_in_order(cols)
        other = header(lines_at(width, "ray", "jobs", "list", "--state-root", str(ledger["short"])))
        assert_dropped_in_order(other)
        assert len(other) >= len(cols), f"at {width} columns shorter ids showed fewer columns: {other} < {cols}"


def assert_dropped_in_order(cols: list[str]) -> None:
    """The columns missing are the first of the documented drop order (docs/views.md)."""
    from merlin.cli.runs_table import DROP_ORDER

    order = [h for h in DROP_ORDER if h != "WAITING-ON"]
    dropped = [h for h in order if h not in cols]
    assert dropped == order[: len(dropped)], (cols, dropped)


def test_jobs_status_attempts_table_keeps_its_number_column_at_60(ledger: dict[str, object]) -> None:
    rid = ledger["ids"][0]  # type: ignore[index]
    lines = lines_at("60", "ray", "jobs", "status", rid, "--state-root", str(ledger["root"]))
    assert f"run                {rid}" in lines
    at = next(i for i, line in enumerate(lines) if line.startswith("#"))
    assert header(lines[at:])[:2] == ["#", "submission"]
    assert lines[at + 2].startswith("1 │ local-1")
    assert any(f"retry {rid}" in line for line in lines)  # the next step is one pasteable line


def test_artifacts_list_keeps_the_name_fetch_needs_whole(ledger: dict[str, object]) -> None:
    rid = ledger["ids"][1]  # type: ignore[index]
    for width in WIDTHS:
        lines = lines_at(width, "ray", "artifacts", "list", rid, "--state-root", str(ledger["root"]))
        assert any(line.split()[0] == LONG_ARTIFACT for line in lines[2:]), (width, lines)


def test_targetgen_status_and_explain_keep_task_and_question_ids_whole(tmp_path: Path) -> None:
    cap = REPO / "target_specs" / "examples" / "muon_gpu_hal" / "capability.yaml"
    assert run_cli("targetgen", "orchestrate", str(cap), "--out-dir", str(tmp_path)).returncode == 0
    target = str(tmp_path / "muon_gpu_hal")
    assert run_cli("targetgen", "execute", "--from-dir", target).returncode == 10  # waits on the SDK probe question
    question = json.loads(run_cli("targetgen", "status", "--target-dir", target, "--json").stdout)["open_questions"][0]["id"]
    tasks = ["review_target_spec", "derive_compile_view", "implement_runtime_hal", "define_verification_ladder"]
    for width in WIDTHS:
        status = lines_at(width, "targetgen", "status", "--target-dir", target)
        cells = [c.strip() for line in status for c in re.split(r"[│┃]", line)]
        assert all(t in cells for t in tasks), (width, status)
        assert any(question in c.split() for c in cells), (width, status)  # the notes give way, the id does not
        explain = lines_at(width, "targetgen", "explain", str(cap))
        graph = explain[next(i for i, line in enumerate(explain) if line.startswith("Task graph")):]
        firsts = [re.split(r"[│┃]", line)[0].strip() for line in graph]
        assert all(t in firsts for t in tasks), (width, graph)
        assert header(graph[1:])[:3] == ["task", "phase", "depends on"]


def test_watch_exits_1_for_a_failed_run_and_124_on_timeout(tmp_path: Path) -> None:
    root = tmp_path / "state"
    failed = submit(root, "sh", "-c", "exit 7", target="w")
    res = run_cli("ray", "jobs", "watch", failed, "--state-root", str(root))
    assert res.returncode == 1 and f"run {failed} failed (exit code 7)" in res.stderr
    slow = submit(root, "sleep", "30", target="w", wait=False)
    try:
        res = run_cli("ray", "jobs", "watch", slow, "--timeout", "0.5s", "--interval", "0.2s", "--state-root", str(root))
        assert res.returncode == 124 and "--timeout 0.5s passed; still going: " + slow in res.stderr
    finally:
        run_cli("ray", "jobs", "cancel", slow, "--state-root", str(root))


def test_jobs_list_refuses_a_negative_limit(tmp_path: Path) -> None:
    res = run_cli("ray", "jobs", "list", "--limit", "-1", "--state-root", str(tmp_path))
    assert res.returncode == 2 and res.stderr.strip().splitlines() == ["--limit -1: must be >= 0"]


def test_tools_merlin_py_without_the_dependencies_points_to_the_wrapper() -> None:
    res = subprocess.run([sys.executable, "-S", str(REPO / "tools" / "merlin.py"), "--version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and str(REPO / "merlin") in res.stderr


def test_nothing_found_messages_name_the_absolute_state_root(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MERLIN_STATE_ROOT"}
    env.update(NO_COLOR="1", PYTHONPATH=str(REPO / "src"))
    where = str(tmp_path / "build" / "generated" / "ray")
    for args, said in ((["ray", "jobs", "list"], "no runs recorded in "), (["ray", "cluster", "list"], "no clusters recorded in ")):
        res = subprocess.run([sys.executable, "-m", "merlin", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
        assert res.returncode == 0 and said + where in res.stderr, res.stderr


def test_lock_holder_file_is_removed_on_release_and_a_dead_holder_is_ignored(tmp_path: Path) -> None:
    from merlin.atomic import file_lock, holder_path, read_holder
    from merlin.errors import LockBusy

    lock = tmp_path / "x.lock"
    with file_lock(lock, holder=f"pid {os.getpid()} (test)"):
        assert read_holder(lock) == f"pid {os.getpid()} (test)"
    assert not holder_path(lock).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = subprocess.Popen(  # holds the lock, then its holder file is overwritten with a dead pid's
        [sys.executable, "-c", "import sys,time; from merlin.atomic import file_lock\n"
         "with file_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(30)", str(lock)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        holder_path(lock).write_text(f"pid {dead.pid} (merlin gone)")
        assert read_holder(lock) is None
        with pytest.raises(LockBusy) as busy:
            with file_lock(lock, timeout=0.1):
                pass
        assert "locked by unknown process" in str(busy.value) and str(dead.pid) not in str(busy.value)
    finally:
        holder.kill()
        holder.wait()


def test_status_words_are_said_once(tmp_path: Path) -> None:
    root = tmp_path / "state"
    res = run_cli("ray", "jobs", "submit", "--engine", "local", "--target", "t", "--workflow", "w", "--wait", "--state-root", str(root), "--", "sh", "-c", "exit 7")
    assert res.returncode == 1 and "failed (exit code 7)" in res.stderr and "failed: failed" not in res.stderr
    from merlin.cli.common import said as _said

    assert _said("stopped", "stopped; start it again") == "stopped; start it again"
    assert _said("failed", "failed (exit code 7)") == "failed (exit code 7)"
    assert _said("lost", "the cluster is gone") == "lost: the cluster is gone"


def test_memory_is_shown_in_human_units() -> None:
    from merlin.cli.tables import resource_text
    from merlin.clusters.fit import shortfalls
    from merlin.units import human_bytes

    shown = resource_text({"CPU": 2.0, "memory": 16459800000.0, "object_store_memory": 78643200.0})
    assert shown == "CPU=2, memory=15.3 GiB, object_store_memory=75.0 MiB" and "e+" not in shown
    assert human_bytes(512) == "512 B"
    assert shortfalls({"memory": 32 * 2**30}, {"memory": 16459800000.0}) == ["memory 32.0 GiB (cluster has 15.3 GiB)"]


@pytest.mark.ray
def test_start_local_with_other_options_names_them_and_the_restart(ray_cp, tmp_path: Path) -> None:
    from ray_fixtures import SHARED_HEAD_CPUS

    root = str(ray_cp.root)
    res = run_cli("ray", "cluster", "start-local", "--num-cpus", "1", "--state-root", root)
    assert res.returncode == 0, res.stderr
    assert "nothing to do" not in res.stderr and f"--num-cpus 1 (cluster has {SHARED_HEAD_CPUS}" in res.stderr
    assert f"next: merlin ray cluster stop --state-root {root}" in res.stderr
    assert f"next: merlin ray cluster start-local --num-cpus 1 --state-root {root}" in res.stderr
    resources = next(line for line in res.stdout.splitlines() if line.startswith("resources"))
    assert "GiB" in resources and "e+" not in resources
    same = run_cli("ray", "cluster", "start-local", "--state-root", root)
    assert same.returncode == 0 and "nothing to do" in same.stderr


@pytest.mark.parametrize("width", [60, 80, 120])
def test_runs_table_on_a_rich_console_of_each_width_keeps_ids_and_columns(width: int) -> None:
    """The same renderer in-process on a Rich console of that width: ids whole, column set fixed."""
    import io

    from merlin.cli.output import _console_class
    from merlin.cli.runs_table import runs_table as _runs_table
    from merlin.cli.tables import show

    def rendered(rows: list[dict]) -> list[str]:
        console = _console_class()(file=io.StringIO(), width=width, color_system=None, markup=False)
        show(_runs_table(rows, width), console)
        return console.file.getvalue().splitlines()

    long_id = f"{LONG_TARGET[:40]}-20260101-000000-abcdef"
    waiting = [{"run_id": long_id, "status": "succeeded", "outcome": "awaiting_operator", "engine": "local", "target": "t",
                "workflow": "w", "attempts": [{}], "updated_at": "2026-01-01T00:00:00Z", "message": "waiting for an answer " * 10}]
    short = [{"run_id": "t-20260101-000000-abcdef", "status": "failed", "engine": "ray", "target": "t", "workflow": "w",
              "attempts": [], "updated_at": "2026-01-01T00:00:00Z", "message": "x"}]
    lines = rendered(waiting)
    cells = lines[2].split()
    assert cells[0] == long_id and ("awaiting_operator" in cells or "operator?" in cells), lines  # never only "succeeded"
    assert all(len(line) <= width for line in lines) or width < len(long_id) + 12, lines
    assert_dropped_in_order(header(lines))
    assert_dropped_in_order(header(rendered(short)))
