"""Finding and keeping runs (issue 19): `jobs list` filters, `jobs events`, unique-prefix run
ids (CLI and gateway, one resolver in the facade), did-you-mean for pools, and `jobs prune`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.errors import BadInput, NotFound


@pytest.fixture()
def ledger(tmp_path: Path) -> tuple[ControlPlane, dict[str, str]]:
    """Four real runs: two local (one failed), two on the ray engine for clusters c1 and c2 (blocked: no such cluster)."""
    cp = ControlPlane(tmp_path / "state")
    ids = {
        "ok": cp.submit(["true"], target="alpha", workflow="w", wait=True).run_id,
        "bad": cp.submit(["false"], target="alpha", workflow="w", wait=True).run_id,
        "c1": cp.submit(["true"], target="beta", workflow="w", engine="ray", cluster="c1").run_id,
        "c2": cp.submit(["true"], target="gamma", workflow="w", engine="ray", cluster="c2").run_id,
    }
    return cp, ids


def _listed(cp: ControlPlane, *args: str) -> list[str]:
    res = run_cli("ray", "jobs", "list", "--state-root", str(cp.root), "--json", *args)
    assert res.returncode == 0, res.stderr
    return [r["run_id"] for r in json.loads(res.stdout)]


def test_list_filters(ledger: tuple[ControlPlane, dict[str, str]]) -> None:
    cp, ids = ledger
    assert set(_listed(cp, "--target", "alpha")) == {ids["ok"], ids["bad"]}
    assert set(_listed(cp, "--target", "alpha", "--target", "gamma")) == {ids["ok"], ids["bad"], ids["c2"]}
    assert _listed(cp, "--cluster", "c1") == [ids["c1"]]
    assert set(_listed(cp, "--engine", "ray")) == {ids["c1"], ids["c2"]}
    assert set(_listed(cp, "--status", "failed", "--status", "succeeded")) == {ids["ok"], ids["bad"]}
    assert _listed(cp, "--engine", "local", "--status", "failed") == [ids["bad"]]
    assert len(_listed(cp, "--since", "1h")) == 4 and _listed(cp, "--until", "1h") == []
    by_target = _listed(cp, "--sort", "target")
    assert set(by_target[:2]) == {ids["ok"], ids["bad"]} and by_target[2:] == [ids["c1"], ids["c2"]]
    assert _listed(cp, "--sort", "created") == _listed(cp)  # newest first, as the default
    # the table says when filters left nothing
    empty = run_cli("ray", "jobs", "list", "--state-root", str(cp.root), "--target", "nope")
    assert empty.returncode == 0 and "no runs recorded that match" in empty.stderr
    bad = run_cli("ray", "jobs", "list", "--state-root", str(cp.root), "--since", "90")
    assert bad.returncode == 2 and "90 what?" in bad.stderr
    bad = run_cli("ray", "jobs", "list", "--state-root", str(cp.root), "--sort", "size")
    assert bad.returncode == 2 and bad.stderr.startswith("--sort 'size': expected one of created, updated")


def test_list_names_only_one_id_a_line_for_a_pipe(ledger: tuple[ControlPlane, dict[str, str]]) -> None:
    """``-o name``, as kubectl's: only the run ids, newest first, the filters applied; nothing else on stdout."""
    cp, ids = ledger
    res = run_cli("ray", "jobs", "list", "--state-root", str(cp.root), "-o", "name")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == _listed(cp) and set(res.stdout.split()) == set(ids.values())
    failed = run_cli("ray", "jobs", "list", "--state-root", str(cp.root), "-o", "name", "--status", "failed")
    assert failed.stdout == f"{ids['bad']}\n"


def test_since_and_until_against_a_clock() -> None:
    from merlin.control.find import select

    rows = [{"run_id": "old", "created_at": "2026-01-01T00:00:00Z"}, {"run_id": "new", "created_at": "2026-01-02T00:00:00Z"}]
    now = time.mktime(time.strptime("2026-01-02T06:00:00", "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert [r["run_id"] for r in select(rows, since=12 * 3600, now=now)] == ["new"]
    assert [r["run_id"] for r in select(rows, until=12 * 3600, now=now)] == ["old"]
    assert [r["run_id"] for r in select(rows, since=2 * 86400, until=3600, now=now)] == ["old", "new"]


def test_events_render_and_json(ledger: tuple[ControlPlane, dict[str, str]]) -> None:
    cp, ids = ledger
    root = str(cp.root)
    text = run_cli("ray", "jobs", "events", ids["bad"], "--state-root", root)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "created" in lines[0] and "-> pending" in lines[0]
    assert any("running -> failed" in line and "exited with code 1" in line for line in lines)
    doc = json.loads(run_cli("ray", "jobs", "events", ids["bad"], "--state-root", root, "--json").stdout)
    assert [e["event"] for e in doc] == [e.event for e in cp.events(ids["bad"])] and doc[0]["to_status"] == "pending"
    # --follow on an ended run prints its history and returns; with --json, one object per line
    follow = run_cli("ray", "jobs", "events", ids["ok"], "--state-root", root, "--follow", "--json")
    assert follow.returncode == 0 and [json.loads(x)["event"] for x in follow.stdout.splitlines()] == [e.event for e in cp.events(ids["ok"])]


def test_events_follow_streams_a_running_run(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "state")
    rec = cp.submit(["sleep", "2"], target="slow", workflow="w")
    started = time.monotonic()
    res = run_cli("ray", "jobs", "events", rec.run_id[:-3], "--state-root", str(cp.root), "--follow", "--interval", "0.2s")
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started > 1  # it waited for the run to end
    assert "running -> succeeded" in res.stdout.splitlines()[-2] + res.stdout.splitlines()[-1]


def test_unique_prefixes_everywhere_and_ambiguity_lists_the_candidates(ledger: tuple[ControlPlane, dict[str, str]]) -> None:
    cp, ids = ledger
    root = str(cp.root)
    bad = ids["bad"]
    # the shortest prefix of its id past the time that no other run shares (two runs of one second
    # share their random part's first characters one time in 256)
    n = next(n for n in range(len("alpha-20261207-000000-") + 1, len(bad) + 1) if not any(o != bad and o.startswith(bad[:n]) for o in ids.values()))
    prefix = bad[:n]
    assert cp.resolve_run_id(prefix) == bad and cp.get(prefix).run_id == bad and cp.resolve_run_id(bad) == bad
    for args in (["ray", "jobs", "status", prefix, "--json"], ["ray", "jobs", "why", prefix, "--json"], ["ray", "artifacts", "list", prefix, "--json"]):
        res = run_cli(*args, "--state-root", root)
        assert res.returncode == 0, (args, res.stderr)
    assert json.loads(run_cli("ray", "jobs", "status", prefix, "--json", "--state-root", root).stdout)["run_id"] == bad
    assert f"run {bad}" in run_cli("ray", "jobs", "cancel", prefix, "--state-root", root).stderr  # said by its whole id
    # ambiguous: an error (exit 2) naming the argument and every candidate
    res = run_cli("ray", "jobs", "status", "alpha-", "--json", "--state-root", root)
    doc = json.loads(res.stdout)
    assert res.returncode == 2 and doc["argument"] == "run_id" and doc["code"] == "bad_input"
    assert ids["ok"] in doc["error"] and ids["bad"] in doc["error"] and "ambiguous" in doc["error"]
    assert res.stderr.startswith("RUN_ID 'alpha-' is ambiguous: 2 runs start with it")
    with pytest.raises(NotFound):
        cp.resolve_run_id("zzz")
    with pytest.raises(BadInput):
        cp.resolve_run_id("../etc")


def test_the_gateway_takes_prefixes_through_the_facade(ledger: tuple[ControlPlane, dict[str, str]]) -> None:
    pytest.importorskip("mcp", reason="the gateway extra is not installed")
    from merlin.gateway.ops import Gateway

    cp, ids = ledger
    gw = Gateway(cp.root, transport="test")
    assert gw.call("runs_status", {"run_id": ids["c1"][:-2]}, client="pytest")["run_id"] == ids["c1"]
    with pytest.raises(BadInput) as err:
        gw.call("runs_status", {"run_id": "alpha-"}, client="pytest")
    assert err.value.argument == "run_id" and ids["ok"] in err.value.message


def test_did_you_mean_for_a_mistyped_pool(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "state")
    cp.leases.define([{"id": "board0", "pool": "vcu118"}], source="test")
    res = run_cli("ray", "resources", "reserve", "vcu11:1", "--state-root", str(cp.root))
    assert res.returncode != 0 and "no pool 'vcu11' (did you mean 'vcu118'?)" in res.stderr, res.stderr


def test_prune_removes_old_ended_runs_and_says_what_it_freed(ledger: tuple[ControlPlane, dict[str, str]]) -> None:
    cp, ids = ledger
    root = str(cp.root)
    dry = run_cli("ray", "jobs", "prune", "--older-than", "0s", "--status", "failed", "--dry-run", "--state-root", root, "--json")
    doc = json.loads(dry.stdout)
    assert dry.returncode == 0 and doc["removed"] == [ids["bad"]] and doc["freed_bytes"] > 0 and doc["dry_run"]
    assert cp.resolve_run_id(ids["bad"]) == ids["bad"]  # still there
    assert json.loads(run_cli("ray", "jobs", "prune", "--older-than", "30d", "--state-root", root, "--json").stdout)["removed"] == []
    res = run_cli("ray", "jobs", "prune", "--older-than", "0s", "--status", "failed", "--state-root", root)
    assert res.returncode == 0 and res.stdout.split() == [ids["bad"]]
    assert "prune: removed 1 run, freed " in res.stderr
    with pytest.raises(NotFound):
        cp.get(ids["bad"])
    assert ids["bad"] not in _listed(cp)
    refused = run_cli("ray", "jobs", "prune", "--older-than", "0s", "--status", "running", "--state-root", root)
    assert refused.returncode == 2 and "never pruned" in refused.stderr


def test_prune_never_touches_an_active_leased_or_locked_run(tmp_path: Path) -> None:
    from merlin.control.find import prune

    cp = ControlPlane(tmp_path / "state")
    running = cp.submit(["sleep", "30"], target="busy", workflow="w")
    leased = cp.submit(["true"], target="leased", workflow="w", wait=True).run_id
    locked = cp.submit(["true"], target="locked", workflow="w", wait=True).run_id
    free = cp.submit(["true"], target="free", workflow="w", wait=True).run_id
    cp.leases.define([{"id": "board0", "pool": "vcu118"}], source="test")
    cp.reserve_lease(["vcu118:1"], run_id=leased)
    try:
        later = time.time() + 40 * 86400
        with cp.ledger.lock(locked):
            report = prune(cp, 30 * 86400, now=later)
        assert report.removed == [free]
        assert report.kept == {leased: "a live lease names it", locked: "its lock is held (a writer or a sweep)"}
        assert cp.get(running.run_id).status.value in ("pending", "running")
        assert {r["run_id"] for r in cp.list_runs()} == {running.run_id, leased, locked}
    finally:
        cp.cancel(running.run_id)


def test_prune_takes_its_policy_from_the_config(ledger: tuple[ControlPlane, dict[str, str]], tmp_path: Path) -> None:
    cp, ids = ledger
    root = str(cp.root)
    none = run_cli("ray", "jobs", "prune", "--state-root", root)
    assert none.returncode == 2 and "give --older-than" in none.stderr and "[retention]" in none.stderr
    (tmp_path / "merlin.toml").write_text('[retention]\nolder_than = "0s"\nstatus = ["succeeded"]\n')
    res = run_cli("ray", "jobs", "prune", "--state-root", root, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["removed"] == [ids["ok"]]


def test_an_auto_retention_policy_prunes_by_itself_once_a_day(ledger: tuple[ControlPlane, dict[str, str]], tmp_path: Path) -> None:
    import os

    from process_support import wait_until

    cp, ids = ledger  # ok (succeeded), bad (failed), c1 and c2 (blocked)
    project = tmp_path / "project"
    project.mkdir()
    (project / "merlin.toml").write_text('[retention]\nolder_than = "0s"\nstatus = ["succeeded", "failed"]\nauto = true\n')
    root = str(cp.root)

    def submit(*command: str) -> str:
        res = run_cli("ray", "jobs", "submit", "--target", "new", "--workflow", "w", "--state-root", root, "--", *command, cwd=project)
        assert res.returncode == 0, res.stderr
        return res.stdout.split()[-1]

    def reports() -> list[dict[str, object]]:
        log = cp.layout.retention_log
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    running = submit("sleep", "30")
    stamp = cp.layout.retention_stamp
    assert json.loads(stamp.read_text())["status"] == ["succeeded", "failed"]
    (first,) = wait_until(reports)  # the detached prune's report, one JSON line
    assert sorted(first["removed"]) == sorted([ids["ok"], ids["bad"]]), first  # type: ignore[call-overload]
    for kept in (ids["c1"], ids["c2"], running):  # blocked (not in the policy) and running runs stay
        assert cp.get(kept).run_id == kept
    with pytest.raises(NotFound):
        cp.get(ids["ok"])

    again = submit("true")  # the same day: no second prune
    assert len(reports()) == 1 and stamp.stat().st_mtime >= time.time() - 60
    cp.wait(again, timeout=30)
    day_ago = time.time() - 86401
    os.utime(stamp, (day_ago, day_ago))  # a day later, the next submit prunes again
    third = submit("true")
    second = wait_until(lambda: reports()[1:])[0]
    assert again in second["removed"] and running not in second["removed"], second  # type: ignore[operator]
    cp.cancel(running)

    def over(run_id: str) -> bool:  # ended, or already pruned by the day's second prune (it ran "true")
        try:
            return cp.get(run_id).status.is_terminal()
        except NotFound:
            return True

    wait_until(lambda: over(third))

    (project / "merlin.toml").write_text("[retention]\nauto = true\n")
    refused = run_cli("ray", "jobs", "submit", "--target", "new", "--workflow", "w", "--state-root", root, "--", "true", cwd=project)
    assert refused.returncode == 2 and "auto = true needs older_than" in refused.stderr and str(project / "merlin.toml") in refused.stderr, refused.stderr
