"""The state root describes itself (README, layout version); errors are data (codes,
next steps); an internal error leaves a crash log under the state root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.errors import Blocked, MerlinError
from merlin.ledger.paths import LAYOUT_VERSION, Layout
from merlin.ledger.status import IllegalTransition


def test_state_root_gets_readme_and_layout_version_on_first_use(tmp_path: Path) -> None:
    root = tmp_path / "s"
    cp = ControlPlane(root)
    assert not (root / "layout_version").exists()  # constructing writes nothing
    cp.submit(["true"], target="demo", workflow="w", wait=True)
    assert (root / "layout_version").read_text() == f"{LAYOUT_VERSION}\n"
    readme = (root / "README.md").read_text()
    assert "runs/<run_id>/" in readme and "bootstrap.json" in readme and "crash/" in readme


def test_one_owner_of_the_default_cluster_file(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    assert lay.cluster_record("default").name == "bootstrap.json"
    assert lay.cluster_name_of(lay.cluster_record("default")) == "default"
    assert lay.cluster_name_of(lay.cluster_record("gpu")) == "gpu"
    assert lay.attempt_log("demo-1", 3) == lay.run_dir("demo-1") / Layout.attempt_log_name(3)


def test_every_error_has_a_code_and_a_lost_race_is_a_merlin_error() -> None:
    race = IllegalTransition("r-1", None, "failed")  # type: ignore[arg-type]
    assert isinstance(race, MerlinError) and race.code == "illegal_transition" and race.exit_code == 3
    b = Blocked("no cluster", "no_cluster", next_steps=[{"action": "start_cluster", "args": {"name": "default"}}])
    assert b.code == "blocked.no_cluster" and b.to_json()["next_steps"][0]["action"] == "start_cluster"


def test_json_errors_carry_code_and_next_steps(tmp_path: Path) -> None:
    res = run_cli("ray", "jobs", "status", "no-such-run", "--state-root", str(tmp_path), "--json")
    assert res.returncode == 4
    doc = json.loads(res.stdout)
    assert doc["code"] == "not_found" and doc["next_steps"] == [{"action": "list_runs", "args": {}}]
    assert res.stderr.count("\n") == 1 and f"next: `merlin ray jobs list --state-root {tmp_path}`" in res.stderr
    bad = run_cli("ray", "jobs", "status", "../x", "--state-root", str(tmp_path), "--json")
    assert json.loads(bad.stdout)["code"] == "bad_input"


def test_hints_are_spelled_the_way_merlin_was_invoked(tmp_path: Path) -> None:
    res = run_cli("ray", "jobs", "status", "no-such-run", "--state-root", str(tmp_path), env={"MERLIN_INVOKED_AS": "./merlin"})
    assert f"next: `./merlin ray jobs list --state-root {tmp_path}`" in res.stderr


def test_internal_error_writes_a_crash_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from merlin.cli.app import main

    def boom(self, *a, **k):
        raise RuntimeError("boom inside merlin")

    monkeypatch.setattr(ControlPlane, "status", boom)
    monkeypatch.setattr(ControlPlane, "status_json", boom)  # `jobs status` reads through it
    monkeypatch.delenv("MERLIN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["ray", "jobs", "status", "demo-run", "--state-root", str(tmp_path)])
    assert exit_info.value.code == 70
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and "internal error: RuntimeError: boom inside merlin" in line
    logs = list((tmp_path / "crash").glob("*.log"))
    assert len(logs) == 1 and str(logs[0]) in line
    text = logs[0].read_text()
    assert "merlin " in text.splitlines()[0] and "command: merlin ray jobs status demo-run" in text and "Traceback" in text


def test_a_crash_log_holds_no_secret_and_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20 #8: the crash log wrote the full argv; it now holds the command as run records do (redacted),
    the traceback loses what redaction hid, and crash/ is 0700 with 0600 files."""
    import stat

    from merlin.cli.app import main

    def boom(self, argv, *a, **k):
        raise RuntimeError(f"boom with {argv[-2]}")

    monkeypatch.setattr(ControlPlane, "submit", boom)
    monkeypatch.delenv("MERLIN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["ray", "jobs", "submit", "--state-root", str(tmp_path), "--target", "t", "--workflow", "w", "--", "mysql", "-pCRASHpw77", "db"])
    assert exit_info.value.code == 70
    capsys.readouterr()
    (log,) = (tmp_path / "crash").glob("*.log")
    text = log.read_text()
    assert "CRASHpw77" not in text
    assert "command: merlin ray jobs submit" in text and "mysql -p***redacted*** db" in text and "Traceback" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and stat.S_IMODE(log.parent.stat().st_mode) == 0o700
