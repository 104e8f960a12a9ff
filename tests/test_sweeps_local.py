"""Sweeps on the local engine (docs/sweeps.md): real item processes, a real detached driver,
real leases. Item commands are short (0.1-0.3 s) and record their own clocks."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from process_support import wait_until

SLOTS = [{"id": f"fpga-{i:02d}", "pool": "firesim_fpga"} for i in range(4)]

#: an item: append "start" to the shared log, sleep, write result.json, append "end"; argv: LOG SECONDS INPUT
ITEM = (
    "import json,os,sys,time; log,secs,val=sys.argv[1],float(sys.argv[2]),sys.argv[3]; i=os.environ['MERLIN_SWEEP_INDEX'];"
    "t0=time.time(); open(log,'a').write(f'start {i} {t0:.6f}\\n'); time.sleep(secs); t1=time.time();"
    "json.dump({'input': val, 'square': int(val)**2 if val.isdigit() else 0, 'pid': os.getpid()},"
    " open(os.path.join(os.environ['MERLIN_RUN_DIR'],'result.json'),'w'));"
    "open(log,'a').write(f'end {i} {t1:.6f}\\n')"
)


until = partial(wait_until, timeout=120.0)


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    cp = ControlPlane(tmp_path / "state")
    cp.leases.define(SLOTS)
    return cp


def cli(cp: ControlPlane, *args: str):
    cut = args.index("--") if "--" in args else len(args)
    return run_cli(*args[:cut], "--state-root", str(cp.root), *args[cut:])


def finished(cp: ControlPlane, name: str) -> dict:
    return until(lambda: (v := cp.sweeps("status", name)) and v["state"] != "running" and v)


def clocked_sweep(cp: ControlPlane, name: str, items: int, seconds: str, log: Path) -> dict:
    """``items`` of :data:`ITEM` (each logs its clock to ``log``) over the 4-slot lease, ``--parallel 4``, run to
    the end; every item must have succeeded. Its final view."""
    r = cli(cp, "sweep", "submit", name, "--range", f"0-{items - 1}", "--parallel", "4", "--lease", "firesim_fpga:1",
            "--", sys.executable, "-c", ITEM, str(log), seconds, "{input}")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    v = finished(cp, name)
    assert v["state"] == "succeeded" and v["counts"]["succeeded"] == items, v
    return v


def max_overlap(log: Path) -> int:
    events = []
    for line in log.read_text().splitlines():
        kind, _i, t = line.split()
        events.append((float(t), 0 if kind == "end" else 1))
    now = peak = 0
    for _t, k in sorted(events):
        now += 1 if k else -1
        peak = max(peak, now)
    return peak


@pytest.mark.slow  # several seconds: left out of --quick
def test_forty_items_over_a_four_slot_lease_never_more_than_four_at_once(cp: ControlPlane, tmp_path: Path) -> None:
    log = tmp_path / "clock.log"
    clocked_sweep(cp, "forty", 40, "0.2", log)
    assert max_overlap(log) <= 4
    assert sorted(int(ln.split()[1]) for ln in log.read_text().splitlines() if ln.startswith("start")) == list(range(40))
    s = cli(cp, "sweep", "summary", "forty", "--json")
    assert s.exit_code == 0, s.stderr
    rows = json.loads(s.stdout)["rows"]
    assert len(rows) == 40 and all(r["status"] == "succeeded" and r["exit_code"] == 0 for r in rows)
    assert [r["result"]["square"] for r in rows] == [i * i for i in range(40)]
    assert all(r["usage_wall_s"] >= 0.2 and r["usage_max_rss_bytes"] > 0 for r in rows)
    csv = cli(cp, "sweep", "summary", "forty", "--csv")
    assert csv.exit_code == 0 and len(csv.stdout.splitlines()) == 41 and "result.square" in csv.stdout.splitlines()[0]
    # the same name and inputs adopts; other inputs are refused
    again = cli(cp, "sweep", "submit", "forty", "--range", "0-39", "--json", "--", "true")
    assert again.exit_code == 0 and json.loads(again.stdout)["adopted"] is True
    other = cli(cp, "sweep", "submit", "forty", "--range", "0-40", "--", "true")
    assert other.exit_code != 0 and "other inputs" in other.stderr


def fail_once(tmp_path: Path, bad: set[int]) -> list[str]:
    """Items in ``bad`` exit 1 their first time (a marker file remembers), the others succeed."""
    code = (
        "import os,sys,time,pathlib; i=int(os.environ['MERLIN_SWEEP_INDEX']); d=pathlib.Path(sys.argv[1]); time.sleep(0.1);"
        "m=d/f'tried-{i}'; first=not m.exists(); m.write_text('x');"
        "open(d/'runs.log','a').write(f'{i}\\n'); sys.exit(1 if first and i in {int(x) for x in sys.argv[2].split(',')} else 0)"
    )
    return [sys.executable, "-c", code, str(tmp_path), ",".join(map(str, sorted(bad)))]


def test_items_that_fail_once_succeed_on_their_second_attempt_with_retries_1(cp: ControlPlane, tmp_path: Path) -> None:
    cp.sweeps("submit", "retry1", command=fail_once(tmp_path, {2, 5, 7}), inputs=[str(i) for i in range(10)], parallel=4, retries=1)
    v = finished(cp, "retry1")
    assert v["state"] == "succeeded", v
    rows = cp.sweeps("summary", "retry1")["rows"]
    assert [r["attempts"] for r in rows] == [2 if i in (2, 5, 7) else 1 for i in range(10)]


def test_with_retries_0_exactly_three_fail_and_retry_failed_reruns_only_those(cp: ControlPlane, tmp_path: Path) -> None:
    cp.sweeps("submit", "retry0", command=fail_once(tmp_path, {1, 4, 8}), inputs=[str(i) for i in range(10)], parallel=4)
    v = finished(cp, "retry0")
    assert v["state"] == "failed" and v["counts"]["failed"] == 3 and {f["index"] for f in v["failures"]} == {1, 4, 8}
    s = cli(cp, "sweep", "summary", "retry0")
    assert s.exit_code == 1
    st = cli(cp, "sweep", "status", "retry0")
    assert "failed 3" in st.stdout and "next: merlin sweep retry retry0 --failed --state-root" in st.stderr  # a hint: a message, on stderr
    (tmp_path / "runs.log").write_text("")
    r = cli(cp, "sweep", "retry", "retry0", "--failed")
    assert r.exit_code == 0, r.stderr
    v = finished(cp, "retry0")
    assert v["state"] == "succeeded", v
    assert sorted(int(x) for x in (tmp_path / "runs.log").read_text().split()) == [1, 4, 8]
    assert cli(cp, "sweep", "summary", "retry0").exit_code == 0


def driver_pid(cp: ControlPlane, name: str) -> int | None:
    from merlin.atomic import read_holder

    who = read_holder(cp.layout.sweep_driver_lock(name)) or ""
    return int(who.split("pid ")[1].split(")")[0]) if "pid " in who else None


@pytest.mark.slow  # several seconds: left out of --quick
def test_sigkill_of_the_driver_three_times_runs_every_item_exactly_once(cp: ControlPlane, tmp_path: Path) -> None:
    log = tmp_path / "clock.log"
    cp.sweeps("submit", "killed", command=[sys.executable, "-c", ITEM, str(log), "0.15", "{input}"], inputs=[str(i) for i in range(40)], parallel=4)
    killed = []
    for k in range(3):
        until(lambda k=k: log.exists() and sum(ln.startswith("start") for ln in log.read_text().splitlines()) >= 8 * (k + 1))
        pid = until(lambda: driver_pid(cp, "killed"))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        until(lambda: not cp.sweeps("status", "killed", restart=False)["driver_alive"], timeout=10)
        cp.sweeps("status", "killed")  # the next look restarts it
    v = finished(cp, "killed")
    assert v["state"] == "succeeded", (v["counts"], v["failures"], [f["last_line"] for f in v["failures"]])
    starts = [int(ln.split()[1]) for ln in log.read_text().splitlines() if ln.startswith("start")]
    assert sorted(starts) == list(range(40)), "every item ran exactly once"
    assert max_overlap(log) <= 4
    assert len(set(killed)) == 3


def test_jobs_list_restarts_a_killed_driver(cp: ControlPlane, tmp_path: Path) -> None:
    log = tmp_path / "clock.log"
    cp.sweeps("submit", "look", command=[sys.executable, "-c", ITEM, str(log), "0.1", "{input}"], inputs=[str(i) for i in range(12)], parallel=2)
    pid = until(lambda: driver_pid(cp, "look"))
    os.kill(pid, signal.SIGKILL)
    until(lambda: not cp.sweeps("status", "look", restart=False)["driver_alive"], timeout=10)
    assert cli(cp, "ray", "jobs", "list").exit_code == 0
    v = finished(cp, "look")
    assert v["state"] == "succeeded" and v["counts"]["succeeded"] == 12


def test_cancel_midway_ends_running_items_and_starts_none_after(cp: ControlPlane, tmp_path: Path) -> None:
    from merlin.clusters import procs

    log, hold = tmp_path / "clock.log", tmp_path / "hold"
    hold.touch()  # the items run until it goes (a minute at most): cancelled while running, quick when resumed
    held = ("import os,sys,time; log,hold=sys.argv[1],sys.argv[2]; open(log,'a').write('start '+os.environ['MERLIN_SWEEP_INDEX']+'\\n');"
            "deadline=time.time()+60\nwhile os.path.exists(hold) and time.time()<deadline: time.sleep(0.05)")
    cp.sweeps("submit", "stop", command=[sys.executable, "-c", held, str(log), str(hold), "{input}"], inputs=[str(i) for i in range(20)], parallel=3)
    until(lambda: log.exists() and log.read_text().count("start") >= 3)
    r = cli(cp, "sweep", "cancel", "stop")
    assert r.exit_code == 0, r.stderr
    v = finished(cp, "stop")
    assert v["state"] == "cancelled"
    starts = log.read_text().count("start")
    time.sleep(1.0)
    assert log.read_text().count("start") == starts, "nothing starts after the cancel"
    assert starts <= 4
    for row in cp.sweeps("summary", "stop")["rows"]:
        if row["run_id"]:
            att = cp.get(row["run_id"]).attempts[-1]
            assert att.pid is None or not procs.alive(att.pid), f"item {row['index']} left running"
    assert cli(cp, "sweep", "summary", "stop").exit_code == 1
    # --failed is for failed and lost items: a cancelled sweep is resumed with --cancelled, as its status says
    refused = cli(cp, "sweep", "retry", "stop", "--failed")
    assert refused.exit_code == 2 and "no failed or lost items" in refused.stderr and "cancelled" in refused.stderr, refused.stderr
    hint = cli(cp, "sweep", "status", "stop").stderr
    assert f"sweep retry stop --cancelled --state-root {cp.root}" in hint, hint
    hold.unlink()
    r = cli(cp, "sweep", "retry", "stop", "--cancelled", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["retried"], r.stderr
    v = finished(cp, "stop")
    assert v["state"] == "succeeded" and v["counts"]["succeeded"] == 20, v["counts"]


def test_an_input_with_spaces_quotes_and_command_substitution_arrives_as_one_argument(cp: ControlPlane, tmp_path: Path) -> None:
    nasty = ["a b  c", "it's \"quoted\"", "$(touch pwned) `id` ; rm -rf x", "-x"]
    f = tmp_path / "inputs.txt"
    f.write_text("\n".join(nasty) + "\n")
    values = cp.sweeps("inputs", inputs_file=f)
    code = ("import json,os,sys; json.dump({'argv': json.dumps(sys.argv[1:]), 'env': os.environ['MERLIN_SWEEP_INPUT'], "
            "'sweep': os.environ['MERLIN_SWEEP_NAME'] + '#' + os.environ['MERLIN_SWEEP_INDEX']}, open(os.path.join(os.environ['MERLIN_RUN_DIR'],'result.json'),'w'))")
    r = cli(cp, "sweep", "submit", "nasty", "--inputs-file", str(f), "--", sys.executable, "-c", code, "{input}", "n={name}/{index}")
    assert r.exit_code == 0, r.stderr
    assert finished(cp, "nasty")["state"] == "succeeded"
    rows = cp.sweeps("summary", "nasty")["rows"]
    assert [json.loads(r["result"]["argv"]) for r in rows] == [[v, f"n=nasty/{i}"] for i, v in enumerate(values)]
    assert [r["result"]["env"] for r in rows] == nasty
    assert [r["result"]["sweep"] for r in rows] == [f"nasty#{i}" for i in range(len(nasty))]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_bad_inputs_are_one_line_errors(cp: ControlPlane, tmp_path: Path) -> None:
    for args, word in (
        (["--range", "9-1"], "invalid range"),
        (["--inputs", str(tmp_path / "none-*.yaml")], "no file matches"),
        (["--range", "0-3", "--inputs-file", str(tmp_path / "x")], "exactly one"),
    ):
        r = cli(cp, "sweep", "submit", "bad", *args, "--", "true")
        assert r.exit_code == 2 and word in r.stderr and "Traceback" not in r.stderr, r.stderr
    for bad in ("Bad Name", "abc\n", "a..b"):  # a trailing newline or '..' would name a directory no run id can come from
        r = cli(cp, "sweep", "submit", bad, "--range", "0-1", "--", "true")
        assert r.exit_code == 2 and "invalid sweep name" in r.stderr, (bad, r.stderr)
    assert cli(cp, "sweep", "status", "nope").exit_code == 4
    assert cli(cp, "sweep", "list", "--json").stdout.strip() == "[]"


def test_every_local_run_records_its_resource_use(cp: ControlPlane) -> None:
    code = "import time; b = bytearray(80 * 2**20); t = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(0.2)"
    rec = cp.submit([sys.executable, "-c", code], target="usage", workflow="w", wait=True, timeout=120)
    usage = rec.attempts[-1].usage
    assert usage is not None, rec
    assert usage["cpu_s"] >= 0.25 and usage["wall_s"] >= 0.5 and usage["max_rss_bytes"] >= 80 * 2**20, usage
    shown = json.loads(cli(cp, "ray", "jobs", "status", rec.run_id, "--json").stdout)
    assert shown["attempts"][-1]["usage"]["cpu_s"] == usage["cpu_s"]
    view = cli(cp, "ray", "jobs", "status", rec.run_id).stdout  # and for a person, one line
    line = next(x for x in view.splitlines() if "resource use" in x)
    assert f"CPU {usage['cpu_s']:.2f}s" in line and "peak RSS" in line and "MiB" in line, line


def test_client_map_runs_a_template_over_inputs(cp: ControlPlane, tmp_path: Path) -> None:
    from merlin.client import Client, Entrypoint, JobRequest
    from merlin.errors import RunFailed

    client = Client(cp.root)
    log = tmp_path / "clock.log"
    template = JobRequest("squares", Entrypoint.from_binary(sys.executable, ["-c", ITEM, str(log), "0.1", "{input}"]))
    sweep = client.map(template, range(6), parallel=2)
    st = sweep.wait(timeout=120)
    assert st["state"] == "succeeded" and st["counts"]["succeeded"] == 6
    assert [r["result"]["square"] for r in sweep.summary()["rows"]] == [i * i for i in range(6)]
    assert max_overlap(log) <= 2
    bad = client.map(JobRequest("fails", Entrypoint.from_binary("false")), ["a"], parallel=1)
    with pytest.raises(RunFailed):
        bad.wait(timeout=120)


@pytest.mark.slow  # several seconds: left out of --quick
def test_the_throttle_is_the_lease_slots_free_when_fewer_than_parallel(cp: ControlPlane, tmp_path: Path) -> None:
    """Someone else holds 2 of the 4 slots: a sweep asking for 4 at once runs at most 2 (the smaller of
    ``--parallel`` and the slots free to it), and all its items still succeed."""
    other = cp.leases.reserve(["firesim_fpga:2"])
    try:
        log = tmp_path / "clock.log"
        clocked_sweep(cp, "narrow", 8, "0.3", log)
        assert max_overlap(log) <= 2
    finally:
        cp.leases.release(other["lease_id"])


def test_memory_holds_each_item_to_its_limit(cp: ControlPlane) -> None:
    """``sweep submit --memory``: each item's run gets the limit; the item that goes over it fails
    MEMORY_LIMIT, the other succeeds. Input 0 allocates nothing; input 1, 200 MiB (and holds it 2 s)."""
    hog = "import sys, time; n = int(sys.argv[1]) * 200; b = bytearray(n * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(2 if n else 0)"
    r = cli(cp, "sweep", "submit", "mem", "--range", "0-1", "--parallel", "2", "--memory", "96MiB", "--", sys.executable, "-c", hog, "{input}")
    assert r.exit_code == 0, r.stderr
    v = finished(cp, "mem")
    assert v["counts"]["succeeded"] == 1 and v["counts"]["failed"] == 1, v
    rows = {row["input"]: row for row in json.loads(cli(cp, "sweep", "summary", "mem", "--json").stdout)["rows"]}
    over = cp.get(rows["1"]["run_id"])
    assert over.attempt is not None and over.attempt.error_type == "MEMORY_LIMIT", over.message
    assert cp.ledger.read_request(over.run_id).memory == 96 * 2**20 and rows["0"]["status"] == "succeeded", rows
