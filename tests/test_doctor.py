"""`merlin doctor`: one line per check (ok, warn, FAIL with the fix), --json, exit 1 on a failed check."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane

LINE = re.compile(r"^(ok  |warn|FAIL)  \S")


def _cluster(cp: ControlPlane, name: str, kind: str = "local", status: str = "active", token_file: str | None = None) -> None:
    from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterRecord

    cp.ledger.write_cluster(ClusterRecord(
        name=name, kind=kind, status=status, host="127.0.0.1", address="http://127.0.0.1:9", dashboard_url="http://127.0.0.1:9",
        temp_dir="", ports=ClusterPorts(gcs=9, dashboard=9), auth=ClusterAuth(mode="token", token_file=token_file or str(cp.root / "no-token")),
        message="active",
    ))  # fmt: skip


def test_a_fresh_state_root_passes_with_one_line_per_check(tmp_path: Path) -> None:
    result = run_cli("doctor", "--state-root", str(tmp_path / "state"))
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    names = [c["name"] for c in json.loads(run_cli("doctor", "--state-root", str(tmp_path / "state"), "--json").stdout)["checks"]]
    assert names == ["python", "ray", "state root", "disk", "port 6379", "port 8265", "uv"]
    assert "Ray 2." in result.stdout and "in the virtual environment" in result.stdout


def test_a_cluster_without_its_token_an_unreachable_one_and_a_missing_qsub_fail_with_their_fixes(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "state")
    _cluster(cp, "lab")  # its token file is gone
    token = tmp_path / "token"
    token.write_text("a" * 64)
    token.chmod(0o600)
    _cluster(cp, "gone", token_file=str(token))  # has its token, answers nothing
    _cluster(cp, "batch", kind="pbs", status="stopped")
    result = run_cli("doctor", "--state-root", str(cp.root))
    assert result.exit_code == 1, result.stdout + result.stderr
    by_name = {line.split("  ")[1].strip(): line for line in result.stdout.splitlines()}
    lab = by_name["cluster lab"]
    assert lab.startswith("FAIL") and "requires a token" in lab
    assert "fix: restore the cluster's token" in lab and "ray cluster stop --name lab" in lab and "ray cluster start-local --name lab" in lab
    assert by_name["cluster gone"].startswith("FAIL") and "does not answer" in by_name["cluster gone"]
    assert by_name["qsub (pbs)"].startswith("FAIL") and "not on PATH" in by_name["qsub (pbs)"]
    assert "cluster batch" not in by_name  # a stopped cluster is not checked for reachability
    doc = json.loads(run_cli("doctor", "--state-root", str(cp.root), "--json").stdout)
    assert doc["status"] == "fail" and doc["counts"]["fail"] == 3
    failed = {c["name"]: c for c in doc["checks"] if c["status"] == "fail"}
    assert [s["action"] for s in failed["cluster lab"]["next_steps"]] == ["stop_cluster", "start_cluster"]


def test_a_busy_default_port_warns_with_a_start_command_on_free_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from merlin.control import doctor

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        monkeypatch.setattr(doctor, "DEFAULT_PORTS", {"port": busy, "dashboard_port": 8265})
        result = run_cli("doctor", "--state-root", str(tmp_path / "state"))
    line = next(ln for ln in result.stdout.splitlines() if f"port {busy}" in ln)
    assert line.startswith("warn") and "in use by another program" in line
    assert re.search(r"`\S*merlin ray cluster start-local --gcs-port \d+ --dashboard-port \d+ --state-root \S+`", line), line
    assert result.exit_code == 0  # a warning is not a failure


def test_a_world_writable_state_root_warns(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir()
    root.chmod(0o777)
    result = run_cli("doctor", "--state-root", str(root))
    line = next(ln for ln in result.stdout.splitlines() if "state root" in ln)
    assert line.startswith("warn") and "writable by every user" in line and "fix:" in line


def test_sweep_runs_the_checks_and_the_ledger_sweep_and_the_old_command_is_a_hidden_alias(tmp_path: Path) -> None:
    import os
    import time

    root = tmp_path / "state"
    cp = ControlPlane(root)
    done = cp.submit(["true"], target="demo", workflow="w", engine="local", wait=True)
    stale = cp.layout.runs / done.run_id / ".run_record.json.x1.tmp"  # what a SIGKILL mid-write leaves
    stale.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    doc = json.loads(run_cli("doctor", "--sweep", "--state-root", str(root), "--json").stdout)
    assert doc["sweep"]["temp_files"] == [str(stale)] and not stale.exists()
    assert [c["name"] for c in doc["checks"]][:2] == ["python", "ray"]
    alias = run_cli("ray", "doctor", "--state-root", str(root))
    assert alias.exit_code == 0 and "nothing to sweep" in alias.stderr
    assert "doctor" not in run_cli("ray", "--help").stdout.split("Commands:")[-1]  # hidden
    assert "doctor" in run_cli("--help").stdout


def test_an_old_ray_and_a_uv_that_does_not_run_warn_with_their_fixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's version is judged against the ray extra's floor, not only printed; the uv run environments
    use (``MERLIN_UV``, else merlin's own) is run, and a missing or broken one warns, never "ok"."""
    import types

    from merlin.control import doctor
    from merlin.envs import spec

    monkeypatch.setitem(__import__("sys").modules, "ray", types.SimpleNamespace(__version__="2.3.1"))
    old = doctor.check_ray()
    assert old.status == "warn" and "Ray 2.3.1" in old.message and "2.9 or newer" in old.message
    monkeypatch.setitem(__import__("sys").modules, "ray", types.SimpleNamespace(__version__="2.60.0"))
    assert doctor.check_ray().status == "ok"
    spec.find_uv.cache_clear()
    monkeypatch.setenv("MERLIN_UV", str(tmp_path / "no-such-uv"))
    try:
        broken = doctor.check_uv()
    finally:
        spec.find_uv.cache_clear()
    assert broken.status == "warn" and "no-such-uv" in broken.message and "MERLIN_UV" in (broken.fix or ""), broken
    monkeypatch.delenv("MERLIN_UV")
    assert doctor.check_uv().status == "ok"
