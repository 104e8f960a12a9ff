"""A sweep's driver (docs/sweeps.md, "The throttle and the driver"): how it starts items, what the next
look costs once a sweep has ended, and the hints its commands print. Real processes, a real driver."""

from __future__ import annotations

import json
import shlex
import sys
from functools import partial
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from process_support import wait_until

until = partial(wait_until, timeout=120.0)


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    return ControlPlane(tmp_path / "state")


def finished(cp: ControlPlane, name: str) -> dict:
    return until(lambda: (v := cp.sweeps("status", name)) and v["state"] != "running" and v)


@pytest.mark.slow  # several seconds: left out of --quick
def test_local_items_are_supervised_by_forks_of_the_driver_not_new_interpreters(cp: ControlPlane) -> None:
    """An item's supervisor is forked by the driver (merlin already imported): its parent is the driver and
    its command line the driver's; the run still records its supervisor and its resource use."""
    import psutil

    from merlin.atomic import read_holder

    cp.sweeps("submit", "forks", command=["sleep", "3"], inputs=["a", "b"], parallel=2)
    who = until(lambda: read_holder(cp.layout.sweep_driver_lock("forks")))
    driver = int(who.split("pid ")[1].split(")")[0])
    recs = until(lambda: _supervised(cp, "forks", 2))
    for rec in recs:
        sup = psutil.Process(rec.attempts[-1].supervisor_pid)
        assert sup.ppid() == driver
        assert "merlin.cli.sweep_driver" in " ".join(sup.cmdline()), sup.cmdline()
        assert "local_supervisor" not in " ".join(sup.cmdline())
    v = finished(cp, "forks")
    assert v["state"] == "succeeded"
    for row in cp.sweeps("summary", "forks")["rows"]:
        assert row["usage_wall_s"] >= 2.5 and row["exit_code"] == 0, row
    until(lambda: not cp.sweeps("status", "forks", restart=False)["driver_alive"], timeout=30)
    for rec in recs:  # reaped by the driver: no zombie left behind
        assert not psutil.pid_exists(rec.attempts[-1].supervisor_pid) or psutil.Process(rec.attempts[-1].supervisor_pid).status() != psutil.STATUS_ZOMBIE


def _supervised(cp: ControlPlane, name: str, n: int):
    out = []
    for i in range(n):
        rid = f"sweep-{name}-{i:05d}-r1"
        if not cp.layout.record(rid).is_file():
            return None
        rec = cp.get(rid)
        if not rec.attempts or not rec.attempts[-1].supervisor_pid or rec.attempts[-1].pid is None:
            return None
        out.append(rec)
    return out


def _drivers_of(root: Path, name: str) -> list[int]:
    """The sweep driver processes of sweep ``name`` under state root ``root`` (by their command line)."""
    import psutil

    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info["cmdline"] or []
        if "merlin.cli.sweep_driver" in argv and str(root) in argv and name in argv:
            out.append(proc.pid)
    return out


def test_jobs_list_skips_a_finished_sweep_without_reading_its_record(cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next look restarts drivers of unfinished sweeps only; a finished one costs a listing one small
    read of its record's head: never a parse of the whole record, never a driver."""
    from merlin.control import sweeps

    cp.sweeps("submit", "done", command=["true"], inputs=[str(i) for i in range(3)], parallel=3)
    assert finished(cp, "done")["state"] == "succeeded"
    until(lambda: not cp.sweeps("status", "done", restart=False)["driver_alive"], timeout=30)
    # and no driver still starting: a look made while the last item ended may have started one that has
    # not taken the lock yet (it then finds nothing to do, and ends, writing its line)
    until(lambda: not _drivers_of(cp.root, "done"), timeout=30)
    log = cp.layout.sweep_driver_log("done")
    size = log.stat().st_size

    def no_parse(*_a, **_k):
        raise AssertionError("a finished sweep's record was parsed by the listing")

    monkeypatch.setattr(sweeps, "_read", no_parse)
    monkeypatch.setattr(sweeps, "ensure_driver", no_parse)
    r = run_cli("ray", "jobs", "list", "--state-root", str(cp.root))
    assert r.exit_code == 0, r.stderr
    assert sweeps.restart_drivers(cp) == []
    assert not sweeps.driver_alive(cp, "done") and log.stat().st_size == size, "no driver was started"
    monkeypatch.undo()
    # an unfinished sweep (its driver killed) is still restarted by the same look
    cp.sweeps("submit", "open", command=["true"], inputs=["x"], parallel=1, start_driver=False)
    assert sweeps.ended_by_head(cp.layout.sweep_record("open")) is False
    assert sweeps.restart_drivers(cp) == ["open"]
    assert finished(cp, "open")["state"] == "succeeded"


def test_the_head_of_a_big_finished_record_says_it_has_ended(cp: ControlPlane) -> None:
    """20,000 items: the listing's check reads 64 KiB, whatever the size of the record."""
    from merlin.control import sweeps

    cp.sweeps("submit", "big", command=["true", "{input}"], inputs=[str(i) for i in range(20_000)], parallel=4, env={"A": '"finished_at": "x"'}, start_driver=False)
    path = cp.layout.sweep_record("big")
    assert sweeps.ended_by_head(path) is False
    with sweeps._locked(cp, "big") as rec:
        for it in rec["items"]:
            it["state"] = "succeeded"
        rec["finished_at"] = "2026-01-01T00:00:00Z"
    assert path.stat().st_size > 1_000_000
    assert sweeps.ended_by_head(path) is True
    assert sweeps.restart_drivers(cp) == []


def _hint(stderr: str, words: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("next: ") and words in ln]
    assert lines, stderr
    return lines[0][len("next: ") :]


def test_sweep_hints_keep_the_state_root_and_paste(cp: ControlPlane, tmp_path: Path) -> None:
    root = str(tmp_path / "my root")  # a space: the hint quotes it
    r = run_cli("sweep", "submit", "hints", "--range", "0-2", "--state-root", root, "--", sys.executable, "-c", "import sys; sys.exit(int(sys.argv[1]) == 1)", "{input}")
    assert r.exit_code == 0, r.stderr
    status = _hint(r.stderr, "sweep status hints")
    assert shlex.split(status)[1:] == ["sweep", "status", "hints", "--state-root", root], status
    other = ControlPlane(Path(root))
    until(lambda: other.sweeps("status", "hints")["state"] != "running")
    again = run_cli(*shlex.split(status)[1:])  # the hint, pasted
    assert again.exit_code == 0 and "sweep hints: failed" in again.stdout, (again.stdout, again.stderr)
    retry = _hint(again.stderr, "sweep retry hints")
    assert shlex.split(retry)[1:] == ["sweep", "retry", "hints", "--failed", "--state-root", root], retry
    done = run_cli(*shlex.split(retry)[1:])
    assert done.exit_code == 0 and "1 items queued again" in done.stderr, done.stderr
    assert "--state-root" in _hint(done.stderr, "sweep status hints")


def test_the_launcher_measures_a_command_without_an_env(tmp_path: Path) -> None:
    """How a Ray job without a runtime is wrapped: ``merlin.envs.launch --usage FILE -- COMMAND`` runs the
    command as it is, exits with its code, and writes the process tree's wall, CPU and peak RSS (wait4)."""
    import json
    import subprocess

    from merlin.envs.launch import read_usage

    out = tmp_path / "usage.json"
    child = "import time; b = bytearray(60 * 2**20); t = time.process_time()\nwhile time.process_time() - t < 0.2: pass"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}]); sys.exit(3)"  # the CPU is a grandchild's
    res = subprocess.run([sys.executable, "-m", "merlin.envs.launch", "--usage", str(out), "--quiet", "--", sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 3, res.stderr
    usage = read_usage(out)
    assert usage is not None, out.read_text() if out.exists() else "no file"
    assert usage["cpu_s"] >= 0.2 and usage["max_rss_bytes"] >= 60 * 2**20 and usage["wall_s"] >= usage["cpu_s"] * 0.5, usage
    assert set(json.loads(out.read_text())) == {"wall_s", "cpu_s", "max_rss_bytes"}
    bad = subprocess.run([sys.executable, "-m", "merlin.envs.launch", "--quiet", "--", "true"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--spec" in bad.stderr


def test_the_driver_wakes_on_a_supervisor_whose_pidfd_is_past_1024() -> None:
    """A driver of many items holds many descriptors: a pidfd numbered past select()'s 1024 still wakes it
    when its process ends (select() raised ValueError there, ending the driver)."""
    import os
    import resource
    import subprocess
    import time

    from merlin.control.sweep_exits import Exits

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard descriptor limit ({hard}) is under 1200 here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200) if soft != resource.RLIM_INFINITY else soft, hard))
    held: list[int] = []
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    exits = Exits()
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        fd = os.pidfd_open(child.pid)
        assert fd > 1024
        exits.watched["r1"] = (child.pid, fd)
        started = time.monotonic()
        exits.wait(30)
        assert exits.watched == {}, "the ended supervisor's pidfd woke the driver"
        assert time.monotonic() - started < 20
    finally:
        child.kill()
        child.wait()
        exits.close()
        for h in held:
            os.close(h)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_driver_still_starting_counts_as_alive_and_a_look_without_the_secrets_starts_none(cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two looks in the moment before a new driver takes the lock started two drivers, and the one started
    by a look without the sweep's secrets lost its items ("MLN_... is not set"): a whole run met it. The
    last driver a look started counts as alive while its process runs; a process without the secrets
    starts none (a look from a shell that has them does)."""
    import subprocess
    import time

    from merlin.atomic import atomic_write_text
    from merlin.control import sweeps
    from merlin.procid import start_time

    cp.sweeps("submit", "slow", command=["true"], inputs=["x"], parallel=1, start_driver=False)
    starting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wait_until(lambda: start_time(starting.pid))
        atomic_write_text(cp.layout.sweep_driver_started("slow"), json.dumps({"pid": starting.pid, "start": start_time(starting.pid)}))
        assert sweeps.driver_alive(cp, "slow") and sweeps.ensure_driver(cp, "slow") is False, "a driver still starting is alive"
    finally:
        starting.kill()
        starting.wait()
    assert not sweeps.driver_alive(cp, "slow")
    monkeypatch.setenv("MLN_SWEEP_NEEDS", "v")
    cp.sweeps("submit", "sec", command=["true"], inputs=["x"], parallel=1, runtime={"secret_env": ["MLN_SWEEP_NEEDS"]}, start_driver=False)
    monkeypatch.delenv("MLN_SWEEP_NEEDS")
    assert sweeps.missing_secrets(sweeps._read(cp, "sec")) == ["MLN_SWEEP_NEEDS"]
    assert sweeps.ensure_driver(cp, "sec") is False and not sweeps.driver_alive(cp, "sec"), "no driver that would lose the items"
    monkeypatch.setenv("MLN_SWEEP_NEEDS", "v")
    assert sweeps.ensure_driver(cp, "sec") is True
    assert finished(cp, "sec")["state"] == "succeeded"
    deadline = time.monotonic() + 30
    while sweeps.driver_alive(cp, "sec") and time.monotonic() < deadline:
        time.sleep(0.1)
