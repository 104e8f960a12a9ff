"""Cluster lifecycle with dedicated real clusters: start/status/stop, isolation
from another Ray, lost and unreachable runs, busy ports, token auth."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.clusters import procs
from merlin.clusters.net import free_ports, probe
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus
from ray_fixtures import OBJECT_STORE, ray_processes_of

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _commands(rec) -> list[str]:
    """A record's next steps as the CLI renders them (plain ``merlin``: tests do not run ./merlin)."""
    from merlin.cli.nextsteps import command

    data = rec if isinstance(rec, dict) else rec.model_dump(mode="json")
    return [command(s) for s in data["next_steps"]]


def start_args(root: Path, name: str, *extra: str) -> list[str]:
    port, dash = free_ports(2)
    return ["ray", "cluster", "start-local", "--name", name, "--port", str(port), "--dashboard-port", str(dash),
            "--num-cpus", "1", "--object-store-memory", str(OBJECT_STORE), "--state-root", str(root), *extra]


def wait_status(cp: ControlPlane, run_id: str, want: RunStatus, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while cp.status(run_id).status != want:
        assert time.monotonic() < deadline, cp.get(run_id)
        time.sleep(0.3)


@pytest.mark.ray_own_head  # starts a head of its own
def test_lifecycle_isolation_lost_unreachable_and_retry(ray_cluster, cluster_root: Path, tmp_path: Path) -> None:
    root = cluster_root
    cp = ControlPlane(root)
    flag = tmp_path / "go"

    # start a second cluster beside the session one
    args = start_args(root, "second", "--resource", "accel=2")
    res = run_cli(*args, "--json", timeout=240)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    rec = out["cluster"]
    assert out["started"] is True and rec["status"] == "active" and rec["address"].startswith("http://127.0.0.1:")
    assert rec["ray_version"] and rec["session_name"] and rec["processes"] and rec["gcs_address"]
    assert rec["resources"]["CPU"] == 1.0 and rec["resources"]["accel"] == 2.0
    assert "waiting for the jobs API" in res.stderr  # progress on stderr
    assert rec["auth"]["mode"] == "token"  # the CLI's default: token auth, loopback, no warning
    assert "authentication is OFF" not in res.stderr and "reachable from other machines" not in res.stderr
    assert (root / "cluster" / "second.json").is_file() and not (root / "cluster" / "bootstrap.json").exists()

    again = run_cli(*args, timeout=120)
    assert again.returncode == 0 and "already active" in again.stderr

    busy = run_cli("ray", "cluster", "start-local", "--name", "third", "--port", str(rec["ports"]["gcs"]),
                   "--dashboard-port", str(free_ports(1)[0]), "--state-root", str(root))
    assert busy.returncode == 2 and "already in use" in busy.stderr and busy.stderr.count("\n") == 1

    st = run_cli("ray", "cluster", "status", "--name", "second", "--state-root", str(root), "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["state"] == "active"

    # a long run on 'second', then stop 'second'
    long = cp.submit(["bash", "-c", f"echo long-run-started; test -f {flag} || sleep 300"], target="demo", workflow="lost", engine="ray", cluster="second",
                     resources={"accel": 1})
    wait_status(cp, long.run_id, RunStatus.RUNNING)
    # the session head's own processes: not its workers, which come and go with the jobs of the tests beside this one
    session_pids = [pid for pid in ray_processes_of(ray_cluster_temp(ray_cluster)) if "default_worker.py" not in procs.cmdline(pid)]
    assert session_pids
    # an active run: the stop is refused (exit 3), listing it, until --force
    refused = run_cli("ray", "cluster", "stop", "--name", "second", "--grace", "2s", "--state-root", str(root))
    assert refused.returncode == 3 and f"active: {long.run_id}" in refused.stderr and "--force" in refused.stderr, refused.stderr
    assert cp.cluster_status("second").state == "active" and cp.status(long.run_id).status == RunStatus.RUNNING
    stop = run_cli("ray", "cluster", "stop", "--name", "second", "--grace", "2s", "--force", "--state-root", str(root))
    assert stop.returncode == 0, stop.stderr
    assert not ray_processes_of(rec["temp_dir"])  # all of second's processes are gone
    assert not any(procs.alive(p["pid"], p["start_ticks"]) for p in rec["processes"])
    # ...and the other Ray (the session cluster) is untouched and still answers
    assert all(procs.alive(p) for p in session_pids)
    from merlin.clusters.auth import headers_for

    session = ControlPlane(ray_cluster.state_root).ledger.read_cluster(ray_cluster.name)
    assert session is not None
    assert probe(ray_cluster.address, headers_for(session.auth, session.name)).state == "ok"  # with its token (the default)

    stopped = run_cli("ray", "cluster", "status", "--name", "second", "--state-root", str(root))
    assert stopped.returncode == 3 and "stopped" in stopped.stderr

    # the forced stop ended the run: cancelled, "cluster stopped", with the retry command; its logs stay readable
    lst = json.loads(run_cli("ray", "jobs", "list", "--refresh", "--json", "--state-root", str(root)).stdout)
    row = next(r for r in lst if r["run_id"] == long.run_id)
    assert row["status"] == "cancelled" and "cluster stopped" in row["message"] and f"merlin ray jobs retry {long.run_id}" in _commands(row)
    assert row["attempts"][0]["error_type"] == "CLUSTER_STOPPED"
    kept = run_cli("ray", "jobs", "logs", long.run_id, "--state-root", str(root))
    assert kept.returncode == 0 and "long-run-started" in kept.stdout, kept.stderr

    # submitting to a stopped cluster is blocked, naming the fix
    blocked = run_cli("ray", "jobs", "submit", "--engine", "ray", "--cluster", "second", "--target", "demo", "--workflow", "b",
                      "--state-root", str(root), "--", "echo", "hi")
    assert blocked.returncode == 3
    assert "next: `merlin ray cluster start-local --name second --gcs-port " in blocked.stderr  # the restart keeps its ports
    blocked_id = blocked.stdout.strip()

    # start it again (fresh session): the cancelled run stays cancelled
    res2 = run_cli(*start_args(root, "second", "--resource", "accel=2"), timeout=240)
    assert res2.returncode == 0, res2.stderr
    assert cp.status(long.run_id).status == RunStatus.CANCELLED
    flag.write_text("go")
    r = cp.retry(long.run_id, wait=True, timeout=120)
    assert r.status == RunStatus.SUCCEEDED and [a.status for a in r.attempts] == [RunStatus.CANCELLED, RunStatus.SUCCEEDED]
    assert r.cluster.session_name == cp.ledger.read_cluster("second").session_name
    assert cp.retry(blocked_id, wait=True, timeout=120).status == RunStatus.SUCCEEDED

    # the history stays in the ledger
    kinds = [(e.event, e.to_status) for e in cp.events(long.run_id)]
    assert ("transition", "cancelled") in kinds and ("retry", None) in kinds and kinds[-1][0] in ("artifacts", "transition")

    # lost after a restart the record did not see: kill 'second' behind merlin's back
    long2 = cp.submit(["sleep", "300"], target="demo", workflow="lost2", engine="ray", cluster="second")
    wait_status(cp, long2.run_id, RunStatus.RUNNING)
    crec = cp.ledger.read_cluster("second")
    procs.signal_pids(ray_processes_of(crec.temp_dir) + [p.pid for p in crec.processes], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while probe(crec.address).state == "ok" and time.monotonic() < deadline:
        time.sleep(0.2)
    unreach = run_cli("ray", "cluster", "status", "--name", "second", "--state-root", str(root), "--json")
    assert unreach.returncode == 3 and json.loads(unreach.stdout)["state"] == "unreachable"
    ub = run_cli("ray", "jobs", "submit", "--engine", "ray", "--cluster", "second", "--target", "demo", "--workflow", "u",
                 "--state-root", str(root), "--", "echo", "hi")
    assert ub.returncode == 3 and crec.address in ub.stderr and "merlin ray cluster status --name second" in ub.stderr
    ub_id = ub.stdout.strip()
    assert cp.get(ub_id).attempt.error_type == "cluster_unreachable"
    # every process of it was killed: it will not come back, and one look records the run lost
    # (a head that only does not answer keeps its runs running: tests/test_ray_head_killed.py)
    assert cp.status(long2.run_id).status == RunStatus.LOST
    # restart: start-local notices the dead record, cleans up, starts a new session
    res3 = run_cli(*start_args(root, "second", "--resource", "accel=2"), timeout=240)
    assert res3.returncode == 0 and "cleaning up" in res3.stderr
    assert cp.status(long2.run_id).status == RunStatus.LOST  # the new session never heard of it
    assert cp.retry(ub_id, wait=True, timeout=120).status == RunStatus.SUCCEEDED

    assert run_cli("ray", "cluster", "stop", "--name", "second", "--grace", "2s", "--state-root", str(root)).returncode == 0
    listing = json.loads(run_cli("ray", "cluster", "list", "--state-root", str(root), "--json").stdout)
    assert [(c["name"], c["state"]) for c in listing] == [("second", "stopped")]  # the refused 'third' left no record


def ray_cluster_temp(ray_cluster) -> str:
    return json.loads(Path(ray_cluster.record_path).read_text())["temp_dir"]


def test_remote_bind_needs_explicit_flag(tmp_path: Path) -> None:
    res = run_cli("ray", "cluster", "start-local", "--host", "0.0.0.0", "--state-root", str(tmp_path))
    assert res.returncode == 2 and "--allow-remote" in res.stderr and "run any code" in res.stderr
    assert not (tmp_path / "cluster" / "bootstrap.json").exists()


@pytest.mark.ray_own_head  # starts a head of its own
def test_token_auth_end_to_end(cluster_root: Path, tmp_path: Path) -> None:
    root = cluster_root
    cp = ControlPlane(root)
    res = run_cli(*start_args(root, "secure", "--auth", "token", "--host", "0.0.0.0", "--allow-remote"), "--json", timeout=240)
    assert res.returncode == 0, res.stderr
    assert "warning" in res.stderr and "anyone who can reach it" in res.stderr
    rec = json.loads(res.stdout)["cluster"]
    token_file = Path(rec["auth"]["token_file"])
    assert rec["auth"]["mode"] == "token" and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    # the token value is nowhere in the ledger except its own 0600 file
    for p in root.rglob("*"):
        if p.is_file() and p != token_file:
            assert token not in p.read_text(errors="replace"), p
    try:
        # Ray enforces it: no token, no jobs API
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(rec["address"] + "/api/jobs/", timeout=5)
        assert err.value.code == 401
        st = run_cli("ray", "cluster", "status", "--name", "secure", "--state-root", str(root))
        assert st.returncode == 0

        ok = cp.submit(["echo", "authorised"], target="demo", workflow="auth", engine="ray", cluster="secure", wait=True, timeout=120)
        assert ok.status == RunStatus.SUCCEEDED and "authorised" in cp.logs(ok.run_id)

        # token missing: a clear blocked message naming where it should be; nothing sent without it
        hidden = token_file.with_name("moved-away")
        token_file.rename(hidden)
        res = run_cli("ray", "jobs", "submit", "--engine", "ray", "--cluster", "secure", "--target", "demo", "--workflow", "auth",
                      "--state-root", str(root), "--", "echo", "second")
        assert res.returncode == 3
        assert "requires a token" in res.stderr and str(token_file) in res.stderr
        run_id = res.stdout.strip()
        assert cp.get(run_id).attempt.error_type == "token_missing"
        # wrong token: refused by Ray, reported as such
        token_file.write_text("0" * 64)  # a well-formed token, but not this cluster's
        os.chmod(token_file, 0o600)
        wrong = cp.retry(run_id)
        assert wrong.status == RunStatus.BLOCKED and "refused the token" in wrong.message
        hidden.replace(token_file)
        fixed = cp.retry(run_id, wait=True, timeout=120)
        assert fixed.status == RunStatus.SUCCEEDED and len(fixed.attempts) == 3
    finally:
        cp.stop_cluster("secure", grace=2)


def test_token_file_must_be_private(tmp_path: Path) -> None:
    tok = tmp_path / "tok"
    tok.write_text("abc")
    os.chmod(tok, 0o644)
    res = run_cli(*start_args(tmp_path / "s", "loose", "--auth", "token", "--token-file", str(tok)))
    assert res.returncode == 2 and "mode 600" in res.stderr


def test_token_sources_never_hold_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from merlin.clusters.auth import headers_for, ray_start_env
    from merlin.errors import Blocked
    from merlin.ledger.models import ClusterAuth

    auth = ClusterAuth(mode="token", token_env="MERLIN_TEST_RAY_TOKEN")
    monkeypatch.delenv("MERLIN_TEST_RAY_TOKEN", raising=False)
    with pytest.raises(Blocked, match=r"set \$MERLIN_TEST_RAY_TOKEN"):
        headers_for(auth, "secure", ", then `merlin ray jobs retry r-1`")
    monkeypatch.setenv("MERLIN_TEST_RAY_TOKEN", "tok-value")
    assert headers_for(auth, "secure") == {"Authorization": "Bearer tok-value"}
    assert ray_start_env(auth) == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "tok-value"}  # process env only
    assert "tok-value" not in auth.model_dump_json()
    assert ray_start_env(ClusterAuth()) == {"RAY_AUTH_MODE": "disabled"}


def test_unknown_cluster_is_not_found_for_status_and_stop(tmp_path: Path) -> None:
    """No cluster recorded: status and stop both exit 4 (not found), with one line naming the fix."""
    for args in (("status",), ("status", "--json"), ("stop",)):
        res = run_cli("ray", "cluster", *args, "--name", "nosuch", "--state-root", str(tmp_path))
        assert res.returncode == 4, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "nosuch" in res.stderr
    data = json.loads(run_cli("ray", "cluster", "status", "--name", "nosuch", "--state-root", str(tmp_path), "--json").stdout)
    assert data["state"] == "absent"


@pytest.mark.ray_own_head
def test_a_head_whose_node_missed_rays_registration_window_is_started_once_more(cluster_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray gives its node a fixed 30 s to register; a loaded machine misses it and `ray start` exits 1
    ("timed out during startup": seen in whole runs). Ray cannot be made to miss it on demand, so the
    first `ray start` is a stand-in (a contract double, labelled so) that prints Ray's line and exits 1;
    the second is the real Ray, and the head starts."""
    from merlin.clusters import local

    real = local.ray_argv()
    marker = tmp_path / "first-done"
    shim = tmp_path / "ray-shim"
    shim.write_text(
        "#!/bin/sh\n"
        f"if [ ! -e {marker} ]; then touch {marker}; echo 'Exception: The current node timed out during startup.'; exit 1; fi\n"
        f"exec {' '.join(real)} \"$@\"\n"
    )
    shim.chmod(0o755)
    monkeypatch.setattr(local, "ray_argv", lambda: [str(shim)])
    cp = ControlPlane(cluster_root)
    port, dash = free_ports(2)
    said: list[str] = []
    rec, started = cp.start_local_cluster("again", port=port, dashboard_port=dash, num_cpus=1, object_store_memory=OBJECT_STORE, progress=said.append)
    assert started and rec.status == "active", rec.message
    assert any("missed its registration window" in line for line in said), said
    assert probe(rec.address).state in ("ok", "auth")
