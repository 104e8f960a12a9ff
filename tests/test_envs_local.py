"""Run environments on the local engine (docs/environments.md): real uv builds from a local
wheelhouse (tests/wheelhouse.py), no package index. Each test has its own env cache."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from merlin.envs.cache import EnvCache
from merlin.envs.spec import env_id, find_uv
from merlin.errors import BadInput
from merlin.ledger.status import RunStatus
from tests.cli_runner import run_cli
from tests.wheelhouse import runtime_for, wheelhouse  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow
PY = sys.executable
VERSION = "import mlnprobe; print('version', mlnprobe.__version__)"


def until(pred, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(every)
    return pred()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "envcache"
    monkeypatch.setenv("MERLIN_ENV_CACHE", str(d))
    return d


@pytest.fixture
def cp(tmp_path: Path, cache_dir: Path) -> ControlPlane:
    return ControlPlane(tmp_path / "state")


def uv_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before_pip: str = "") -> Path:
    """$MERLIN_UV: a uv that logs each call (one line: its arguments), optionally doing something before `pip`."""
    calls = tmp_path / "uv-calls.txt"
    shim = tmp_path / "uv-shim"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {calls}\ncase "$1" in pip) {before_pip} ;; esac\nexec {find_uv()} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("MERLIN_UV", str(shim))
    return calls


def submit(cp: ControlPlane, code: str, runtime: dict, **kw):
    return cp.submit(["python", "-c", code], target="envs", workflow="w", engine="local", runtime=runtime, **kw)


def test_v1_and_v2_at_once_each_print_their_own_version_and_cannot_import_typer(cp: ControlPlane, wheelhouse: Path) -> None:
    code = VERSION + "\ntry:\n    import typer\n    print('typer importable')\nexcept ImportError:\n    print('no typer')\n"
    r1 = submit(cp, code, runtime_for(wheelhouse, "mlnprobe==1.0"))
    r2 = submit(cp, code, runtime_for(wheelhouse, "mlnprobe==2.0"))
    done = [cp.wait(r.run_id, timeout=180) for r in (r1, r2)]
    assert [d.status for d in done] == [RunStatus.SUCCEEDED] * 2, [cp.logs(r.run_id) for r in (r1, r2)]
    assert "version 1.0" in cp.logs(r1.run_id) and "version 2.0" in cp.logs(r2.run_id)
    assert all("no typer" in cp.logs(r.run_id) for r in (r1, r2))  # merlin's own dependency is not in the env
    assert done[0].attempt.env_id != done[1].attempt.env_id and done[0].attempt.env_cache == "built"
    asked = submit(cp, "import typer; print('typer', typer.__name__)", runtime_for(wheelhouse, "mlnprobe==1.0", find_links=[str(wheelhouse)], packages=["typer"]) | {"no_index": False})
    assert asked.run_id  # an env that asks for typer may import it (not built here: that needs the index)


def test_the_second_run_of_a_spec_is_a_cache_hit_and_starts_no_uv(cp: ControlPlane, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = uv_shim(tmp_path, monkeypatch)
    first = cp.wait(submit(cp, VERSION, runtime_for(wheelhouse, "mlnprobe==1.0")).run_id, timeout=180)
    assert first.status == RunStatus.SUCCEEDED and first.attempt.env_cache == "built"
    n = len(calls.read_text().splitlines())
    assert n >= 2  # uv venv, uv pip install
    second = cp.wait(submit(cp, VERSION, runtime_for(wheelhouse, "mlnprobe==1.0")).run_id, timeout=60)
    assert second.status == RunStatus.SUCCEEDED and second.attempt.env_cache == "hit"
    assert second.attempt.env_id == first.attempt.env_id
    assert len(calls.read_text().splitlines()) == n, "a cache hit starts no uv process"


def test_an_unmeetable_requirement_is_blocked_with_uvs_message_then_fixed_and_retried(cp: ControlPlane, wheelhouse: Path, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("mlnprobe==9.0\n")
    rec = cp.submit(["python", "-c", VERSION], target="envs", workflow="w", engine="local",
                    runtime={"requirements_file": str(req), "find_links": [str(wheelhouse)], "no_index": True})  # fmt: skip
    rec = cp.wait(rec.run_id, timeout=120)
    assert rec.status == RunStatus.BLOCKED, rec.message
    assert "no version of mlnprobe==9.0" in rec.message and "never ran" in rec.message
    assert rec.attempt.error_type == "ENV_BUILD_FAILED" and rec.attempt.start_time is None
    assert [s.action for s in rec.next_steps] == ["retry"]
    req.write_text("mlnprobe==2.0\n")  # the fix
    again = cp.retry(rec.run_id)
    again = cp.wait(again.run_id, timeout=120)
    assert again.status == RunStatus.SUCCEEDED, again.message
    assert "version 2.0" in cp.logs(rec.run_id)


def test_eight_concurrent_first_runs_build_once(cp: ControlPlane, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = uv_shim(tmp_path, monkeypatch)
    runs = [submit(cp, VERSION, runtime_for(wheelhouse, "mlnprobe==1.0")) for _ in range(8)]
    done = [cp.wait(r.run_id, timeout=300) for r in runs]
    assert [d.status for d in done] == [RunStatus.SUCCEEDED] * 8, [d.message for d in done]
    assert len({d.attempt.env_id for d in done}) == 1
    venvs = [line for line in calls.read_text().splitlines() if line.startswith("venv")]
    assert len(venvs) == 1, calls.read_text()
    assert sorted(d.attempt.env_cache for d in done).count("built") == 1


def test_a_build_killed_midway_leaves_nothing_used_and_the_next_run_rebuilds(cp: ControlPlane, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uv_shim(tmp_path, monkeypatch, before_pip="sleep 60")
    runtime = runtime_for(wheelhouse, "mlnprobe==1.0")
    rec = submit(cp, VERSION, runtime)
    waiting = until(lambda: (r := cp.get(rec.run_id)).status == RunStatus.WAITING and r.metadata.get("lease_waiter_pid") and r)
    assert waiting and waiting.waiting_on.startswith("env ")
    cache = EnvCache(Path(os.environ["MERLIN_ENV_CACHE"]))
    eid = waiting.metadata["env_id"]
    assert until(lambda: any((cache.root / "tmp").glob(f"{eid}.*")) and (cache.read_state(eid) or {}).get("state") == "building")
    why = cp.why(rec.run_id)
    assert why[0]["code"] == "env_building" and "building" in why[0]["message"]
    root = ["--state-root", str(tmp_path / "state")]
    shown = run_cli("ray", "jobs", "why", rec.run_id, *root)
    assert shown.returncode == 0 and "env_building" in shown.stdout and "has been building for" in shown.stdout, shown.stdout + shown.stderr
    listed = run_cli("ray", "jobs", "list", *root)
    assert "WAITING-ON" in listed.stdout and f"env {eid[:12]} building" in listed.stdout, listed.stdout
    os.killpg(waiting.metadata["lease_waiter_pid"], signal.SIGKILL)  # the supervisor and the uv it started
    lost = until(lambda: (r := cp.status(rec.run_id)).status == RunStatus.LOST and r, 30)
    assert lost and "environment was building" in lost.message
    assert not cache.ready(eid)
    monkeypatch.delenv("MERLIN_UV")
    again = cp.wait(submit(cp, VERSION, runtime).run_id, timeout=180)
    assert again.status == RunStatus.SUCCEEDED and again.attempt.env_cache == "built", again.message
    assert "version 1.0" in cp.logs(again.run_id)
    assert not list((cache.root / "tmp").glob(f"{eid}.*")), "the killed build's temp dir was cleared"


def test_a_waiting_run_runs_the_working_dir_as_submitted(cp: ControlPlane, tmp_path: Path) -> None:
    cp.leases.define([{"id": "fpga-01", "pool": "firesim_fpga", "labels": {}}])
    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=120)
    src = tmp_path / "code"
    src.mkdir()
    (src / "data.txt").write_text("as submitted\n")
    rec = cp.submit(["cat", "data.txt"], target="envs", workflow="w", engine="local", leases=["firesim_fpga:1"], runtime={"working_dir": str(src)})
    assert rec.status == RunStatus.WAITING
    (src / "data.txt").write_text("edited after submit\n")
    cp.leases.release(holder["lease_id"])
    done = cp.wait(rec.run_id, timeout=60)
    assert done.status == RunStatus.SUCCEEDED, cp.logs(rec.run_id)
    assert cp.logs(rec.run_id).strip() == "as submitted"


def test_an_oversized_working_dir_is_refused_at_submit_naming_the_limit_and_biggest_files(cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERLIN_WORKING_DIR_LIMIT", "4KiB")
    src = tmp_path / "big"
    src.mkdir()
    (src / "huge.bin").write_bytes(b"x" * 8192)
    (src / "small.txt").write_text("hi")
    with pytest.raises(BadInput) as err:
        cp.submit(["true"], target="envs", workflow="w", engine="local", runtime={"working_dir": str(src)})
    msg = err.value.message
    assert "4.0 KiB limit" in msg and "huge.bin (8.0 KiB)" in msg and err.value.argument == "working_dir"
    assert list(cp.ledger.list_raw()) == [], "nothing recorded"


def test_a_secret_reaches_the_command_and_nowhere_under_the_state_root(cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-" + os.urandom(8).hex()
    monkeypatch.setenv("MLN_API_KEY", secret)
    out = tmp_path / "outside" / "seen.txt"
    out.parent.mkdir()
    code = f"import os; open({str(out)!r}, 'w').write(os.environ['MLN_API_KEY'])"
    rec = cp.submit(["python", "-c", code], target="envs", workflow="w", engine="local", runtime={"secret_env": ["MLN_API_KEY"]})
    done = cp.wait(rec.run_id, timeout=60)
    assert done.status == RunStatus.SUCCEEDED, cp.logs(rec.run_id)
    assert out.read_text() == secret
    assert cp.ledger.read_request(rec.run_id).runtime.secret_env == ["MLN_API_KEY"]
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_env_id_ignores_env_vars_and_secrets_and_follows_packages() -> None:
    base = {"python": "3.11", "requirements": "a==1\n"}
    assert env_id(base) == env_id(base | {"env_vars": {"X": "1"}, "secret_env": ["Y"]})
    assert env_id(base) != env_id(base | {"packages": ["b"]}) != env_id(base | {"python": "3.12"})
    assert env_id(base | {"packages": ["b", "c"]}) == env_id(base | {"packages": ["c", "b"]})
    assert env_id(base, uv="0.1") != env_id(base, uv="0.2")


def test_prune_under_a_size_budget_never_removes_an_env_in_use(wheelhouse: Path, tmp_path: Path) -> None:
    import subprocess

    from merlin.envs.build import ensure
    from merlin.envs.prune import prune

    cache = EnvCache(tmp_path / "pc")
    busy_rt, idle_rt = runtime_for(wheelhouse, "mlnprobe==1.0"), runtime_for(wheelhouse, "mlnprobe==2.0")
    _, busy, _ = ensure(busy_rt, cache)
    _, idle, _ = ensure(idle_rt, cache)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(busy_rt))
    proc = subprocess.Popen([PY, "-m", "merlin.envs.launch", "--spec", str(spec), "--cache", str(cache.root), "--quiet", "--", "sleep", "60"])
    try:
        assert until(lambda: cache.live_users(busy), 30)
        os.utime(cache.env_dir(busy) / ".merlin-ready", (1, 1))  # the least recently used, were it not in use
        for f in (cache.users_dir(busy)).iterdir():
            os.utime(f, (1, 1))
        result = prune(cache, max_size=0)
        assert busy in result["kept_in_use"] and cache.ready(busy)
        assert [r["env_id"] for r in result["removed"]] == [idle] and not cache.env_dir(idle).exists()
    finally:
        proc.kill()
        proc.wait()
    assert prune(cache, max_size=0)["removed"][0]["env_id"] == busy  # no longer in use


def test_jobs_status_names_the_environment_or_says_inherited(cp: ControlPlane, wheelhouse: Path, tmp_path: Path) -> None:
    root = ["--state-root", str(tmp_path / "state")]
    plain = cp.wait(cp.submit(["true"], target="envs", workflow="w", engine="local").run_id, timeout=60)
    assert "environment        inherited" in run_cli("ray", "jobs", "status", plain.run_id, *root).stdout
    req = tmp_path / "req.txt"
    req.write_text("mlnprobe==1.0\n")
    args = ["ray", "jobs", "submit", "--engine", "local", "--target", "envs", "--workflow", "w", "--requirements", str(req),
            "--find-links", str(wheelhouse), "--no-index", "--wait", *root, "--", "mlnprobe-cli"]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip().splitlines()[-1]
    assert "mlnprobe 1.0" in cp.logs(run_id)
    status = run_cli("ray", "jobs", "status", run_id, *root).stdout
    eid = cp.get(run_id).attempt.env_id
    assert f"environment        {eid} (built; python 3.11, requirements (1))".replace("3.11", f"{sys.version_info.major}.{sys.version_info.minor}") in status
    second = run_cli(*args)
    assert "(cache hit;" in run_cli("ray", "jobs", "status", second.stdout.strip().splitlines()[-1], *root).stdout


def test_cancel_while_the_env_builds_stops_uv_and_never_runs_the_command(cp: ControlPlane, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uv_shim(tmp_path, monkeypatch, before_pip="sleep 60")
    marker = tmp_path / "ran"
    runtime = runtime_for(wheelhouse, "mlnprobe==1.0")
    rec = submit(cp, f"open({str(marker)!r}, 'w').write('x')", runtime)
    assert until(lambda: cp.get(rec.run_id).status == RunStatus.WAITING)
    cache = EnvCache(Path(os.environ["MERLIN_ENV_CACHE"]))
    eid = cp.get(rec.run_id).metadata["env_id"]
    cancelled = cp.cancel(rec.run_id)
    assert cancelled.status == RunStatus.CANCELLED
    assert until(lambda: (cache.read_state(eid) or {}).get("state") == "stopped", 30), cache.read_state(eid)
    assert until(lambda: cache.lock_owner(eid) is None, 10) and not cache.ready(eid)
    monkeypatch.delenv("MERLIN_UV")
    again = cp.wait(submit(cp, VERSION, runtime).run_id, timeout=180)
    assert again.status == RunStatus.SUCCEEDED, again.message  # a stopped build is no failure: it builds again
    assert not marker.exists()


def test_envs_cli_build_list_show_prune(wheelhouse: Path, tmp_path: Path, cache_dir: Path) -> None:
    spec = tmp_path / "runtime.yaml"
    (tmp_path / "req.txt").write_text("mlnprobe==2.0\n")
    spec.write_text(f"requirements: req.txt\nfind_links: [{wheelhouse}]\nno_index: true\n")
    root = ["--state-root", str(tmp_path / "state")]
    built = run_cli("envs", "build", str(spec), "--json", *root)
    assert built.returncode == 0, built.stderr
    data = json.loads(built.stdout)
    assert data["cache"] == "built" and data["path"].startswith(str(cache_dir))
    again = json.loads(run_cli("envs", "build", str(spec), "--json", *root).stdout)
    assert again["cache"] == "hit" and again["env_id"] == data["env_id"]
    listed = json.loads(run_cli("envs", "list", "--json", *root).stdout)
    assert [e["env_id"] for e in listed["envs"]] == [data["env_id"]] and listed["cache"] == str(cache_dir)
    shown = run_cli("envs", "show", data["env_id"][:10], *root)
    assert shown.returncode == 0 and "mlnprobe==2.0" in shown.stdout
    bad = run_cli("envs", "prune", "--max-size", "lots", *root)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["--max-size 'lots' is not a size: write it as 512MiB, 2GiB or 300MB"]
    missing = run_cli("envs", "show", "ffff", *root)
    assert missing.returncode == 4 and "no env 'ffff'" in missing.stderr
    pruned = json.loads(run_cli("envs", "prune", "--max-size", "0", "--json", *root).stdout)
    assert [r["env_id"] for r in pruned["removed"]] == [data["env_id"]] and pruned["size"] == 0


def test_jobs_submit_env_file_runs_in_that_env_and_prune_older_than_keeps_a_fresh_env(wheelhouse: Path, tmp_path: Path, cache_dir: Path) -> None:
    """``jobs submit --env-file runtime.yaml`` (the same fields as YAML, paths relative to the file) runs the
    command in the env it names; ``envs prune --older-than`` removes only envs unused for that long."""
    spec = tmp_path / "proj" / "runtime.yaml"
    spec.parent.mkdir()
    (spec.parent / "req.txt").write_text("mlnprobe==1.0\n")
    spec.write_text(f"requirements: req.txt\nfind_links: [{wheelhouse}]\nno_index: true\n")
    root = ["--state-root", str(tmp_path / "state")]
    res = run_cli("ray", "jobs", "submit", "--target", "envs", "--workflow", "file", "--env-file", str(spec), "--wait", "--json", *root, "--", "python", "-c", VERSION)
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)
    assert run["status"] == "succeeded" and run["attempts"][-1]["env_cache"] == "built", run
    logs = run_cli("ray", "jobs", "logs", run["run_id"], *root)
    assert "version 1.0" in logs.stdout
    kept = json.loads(run_cli("envs", "prune", "--older-than", "1h", "--json", *root).stdout)
    assert kept["removed"] == [] and len(json.loads(run_cli("envs", "list", "--json", *root).stdout)["envs"]) == 1
    eid = run["attempts"][-1]["env_id"]
    old = time.time() - 7200
    env = EnvCache(cache_dir).env_dir(eid)
    for p in (env / ".merlin-ready", env / ".users", env):
        if p.exists():
            os.utime(p, (old, old))
    gone = json.loads(run_cli("envs", "prune", "--older-than", "1h", "--json", *root).stdout)
    assert [r["env_id"] for r in gone["removed"]] == [eid]


def test_an_image_is_refused_at_submit_in_one_line(cp: ControlPlane) -> None:
    """``image`` has room in the record; merlin runs no container yet, so asking for one is refused at submit, never at start."""
    with pytest.raises(BadInput) as err:
        cp.submit(["true"], target="envs", workflow="image", runtime={"image": "docker.io/library/python:3.11"})
    assert "container" in str(err.value) and "\n" not in str(err.value)
    assert err.value.argument in ("image", "runtime")
    assert not (cp.root / "runs").exists() or not any((cp.root / "runs").iterdir())



def test_a_sweep_takes_the_environment_flags_of_jobs_submit_and_its_secret_is_never_recorded(cp: ControlPlane, wheelhouse: Path) -> None:
    """`sweep submit --with --find-links --no-index --secret-env`: each item runs in the env and sees the
    secret (it compares a hash: the value itself is given to no item as anything but the secret); no
    file under the state root holds the value."""
    import hashlib

    secret = "s3cr3t-sweep-value-41"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    code = ("import hashlib,json,os,mlnprobe; k=os.environ.get('MLN_SWEEP_KEY','').encode(); json.dump({'version': mlnprobe.__version__, "
            "'secret_ok': hashlib.sha256(k).hexdigest() == os.environ['EXPECT_SHA']}, open(os.path.join(os.environ['MERLIN_RUN_DIR'], 'result.json'), 'w'))")
    # the env is built first: this test is about the flags and the secret (three first runs of one spec
    # building at once are tests/test_envs_local.py::test_eight_concurrent_first_runs_build_once's)
    cp.envs("build", runtime={"packages": ["mlnprobe==2.0"], "find_links": [str(wheelhouse)], "no_index": True})
    res = run_cli("sweep", "submit", "sec", "--range", "0-2", "--parallel", "3", "--with", "mlnprobe==2.0", "--find-links", str(wheelhouse), "--no-index",
                  "--secret-env", "MLN_SWEEP_KEY", "--env", f"EXPECT_SHA={digest}", "--state-root", str(cp.root), "--", "python", "-c", code,
                  env={"MLN_SWEEP_KEY": secret})  # fmt: skip
    assert res.returncode == 0, res.stderr
    view = until(lambda: (v := cp.sweeps("status", "sec")) and v["state"] != "running" and v, timeout=120)
    assert view["state"] == "succeeded", [(f["state"], f["last_line"]) for f in cp.sweeps("status", "sec")["failures"]]
    rows = cp.sweeps("summary", "sec")["rows"]
    assert [(r["result"]["version"], r["result"]["secret_ok"]) for r in rows] == [("2.0", True)] * 3
    assert all(cp.get(r["run_id"]).attempt.env_cache == "hit" for r in rows), "the items ran in the env built first"
    assert cp.ledger.read_request(rows[0]["run_id"]).runtime.secret_env == ["MLN_SWEEP_KEY"]
    holding = [str(f) for f in cp.root.rglob("*") if f.is_file() and secret.encode() in f.read_bytes()]
    assert holding == [], "the secret's value is recorded nowhere"
