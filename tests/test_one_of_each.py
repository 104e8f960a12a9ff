"""One of each: one clock, one state-machine helper, one process identity, one bundle describer."""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.process_support import wait_until

SRC = Path(__file__).resolve().parents[1] / "src" / "merlin"


@functools.cache
def _function_names() -> dict[str, frozenset[str]]:
    """Each module under src/merlin (relative path) -> the names of the functions it defines (at any depth), parsed once."""
    return {
        str(path.relative_to(SRC)): frozenset(n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.FunctionDef))
        for path in sorted(SRC.rglob("*.py"))
    }


def _defs(name: str) -> list[str]:
    """Every module under src/merlin that defines a function called ``name`` (at any depth)."""
    return [path for path, names in _function_names().items() if name in names]


# ------------------------------------------------------------------ the clock


def test_one_clock() -> None:
    assert _defs("utcnow") == ["clock.py"] and _defs("iso") == ["clock.py"]
    assert _defs("_now") == [] and _defs("parse_ts") == []


def test_clock_text_is_the_fixed_width_form_and_parses_back() -> None:
    from datetime import UTC, datetime

    from merlin import clock

    ts = 1_767_225_600.5  # 2026-01-01T00:00:00.5Z
    assert clock.iso(ts) == "2026-01-01T00:00:00.500000+00:00"
    assert clock.iso(1_767_225_600) == "2026-01-01T00:00:00.000000+00:00"  # fixed width: sorts as text
    assert clock.parse(clock.iso(ts)) == ts and clock.parse("2026-01-01T00:00:00.5Z") == ts and clock.parse(None) is None
    now = clock.utcnow()
    assert now.tzinfo is UTC and abs((datetime.now(UTC) - now).total_seconds()) < 5


def test_one_poll_backoff_short_first_then_longer_up_to_its_bound() -> None:
    """``clock.pauses`` is how long each sleep of a poll lasts; the waits, the follow, the file lock,
    the mkdir lock and a lease's waiter all take theirs from it (none multiplies its own delay)."""
    import itertools
    import re

    from merlin import clock

    assert [round(x, 4) for x in itertools.islice(clock.pauses(0.02, 0.2), 8)] == [0.02, 0.03, 0.045, 0.0675, 0.1013, 0.1519, 0.2, 0.2]
    assert list(itertools.islice(clock.pauses(0.001, 0.05, 2), 8)) == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05]
    assert list(itertools.islice(clock.pauses(5.0, 0.5), 2)) == [0.5, 0.5]  # never longer than the bound
    for rel in ("control/lifecycle.py", "engines/local.py", "client/core.py", "atomic.py", "dirlock.py", "leases/book.py", "engines/local_supervisor.py"):
        text = (SRC / rel).read_text()
        assert "pauses(" in text and not re.search(r"(pause|delay) = min\([^)]*\* 1?\.?[0-9]", text), rel


def test_records_and_the_lease_book_share_the_clock() -> None:
    from merlin import clock
    from merlin.leases import book
    from merlin.ledger import models

    assert models.utcnow is clock.utcnow and book.iso is clock.iso


# ------------------------------------------------------------------ the bundle describer


def test_one_bundle_describer() -> None:
    hits = [p for p in sorted(SRC.rglob("*.py")) if """['pool']}:{b['count']}" + "".join(""" in p.read_text(encoding="utf-8")]
    assert [str(p.relative_to(SRC)) for p in hits] == ["leases/policy.py"]
    from merlin.control.leased import waiting_message
    from merlin.leases.policy import describe
    from merlin.leases.waiter import waiting_on

    bundles = [{"pool": "fpga", "count": 2, "labels": {"z": "1", "board": "vcu118"}}, {"pool": "host", "count": 1}]
    assert describe(bundles) == "fpga:2,board=vcu118,z=1 + host:1"
    lease = {"lease_id": "L-1", "bundles": bundles}
    assert waiting_message(lease, []) == "waiting for lease L-1 (fpga:2,board=vcu118,z=1 + host:1): queued"
    assert waiting_on(lease, []) == "lease fpga:2,board=vcu118,z=1 + host:1, queued"


# ------------------------------------------------------------------ the state machines


def test_every_table_is_a_machine_and_keeps_its_moves() -> None:
    from merlin.leases.states import LEASE_TRANSITIONS, LEASES, IllegalLeaseTransition, LeaseState, check_lease_transition
    from merlin.ledger.status import CLUSTER_TRANSITIONS, CLUSTERS, RUNS, TRANSITIONS, ClusterStatus, IllegalTransition, RunStatus, check_transition
    from merlin.ledger.sweep_states import ITEM_TRANSITIONS, ITEMS
    from merlin.statemachine import Machine
    from merlin.targetgen.vocab import TASK_TRANSITIONS, TASKS, TaskState

    for machine, table in ((RUNS, TRANSITIONS), (CLUSTERS, CLUSTER_TRANSITIONS), (LEASES, LEASE_TRANSITIONS), (TASKS, TASK_TRANSITIONS), (ITEMS, ITEM_TRANSITIONS)):
        assert isinstance(machine, Machine) and machine.moves == table
        states = [None, *machine.states]
        for old in states:
            for new in machine.states:
                assert machine.can(old, new) == (new in table[old] or (machine.noop_is_move and old == new)), (old, new)
    # runs and tasks take a no-op; clusters and leases only where the table says so
    assert RUNS.can("running", "running") and TASKS.can("completed", "completed")
    assert not CLUSTERS.can("active", "active") and not LEASES.can("granted", "granted")
    assert {s for s in RunStatus if s.is_terminal()} == {"blocked", "succeeded", "failed", "cancelled", "lost"}
    assert {s for s in ClusterStatus if s.is_terminal()} == {"stopped", "failed", "expired"}
    assert {s for s in LeaseState if s.is_terminal()} == {s for s in LeaseState if not LEASE_TRANSITIONS[s]}
    assert TASKS.is_terminal(TaskState.COMPLETED) and not TASKS.is_terminal("blocked")

    with pytest.raises(IllegalTransition) as run_err:
        check_transition("r-1", "succeeded", "running")
    assert str(run_err.value) == "run r-1: illegal status change succeeded -> running (another process changed it first; look at it again)"
    assert run_err.value.code == "illegal_transition" and run_err.value.exit_code == 3 and run_err.value.run_id == "r-1"
    with pytest.raises(IllegalLeaseTransition, match=r"^lease L-1: illegal state change expired -> granted$"):
        check_lease_transition("L-1", "expired", "granted")
    with pytest.raises(AssertionError, match="task t1: illegal task state change completed -> planned"):
        TASKS.check("t1", "completed", "planned")


def test_a_table_missing_a_state_is_refused() -> None:
    from merlin.ledger.status import TRANSITIONS, RunStatus
    from merlin.statemachine import Machine

    partial = {k: v for k, v in TRANSITIONS.items() if k != RunStatus.LOST}
    with pytest.raises(ValueError, match="lost"):
        Machine(RunStatus, partial, terminal=(), noop_is_move=False, noun="run")


# ------------------------------------------------------------------ process identity


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"])


def test_one_process_identity() -> None:
    assert not (SRC / "leases" / "procinfo.py").exists()
    readers = [p for p in sorted(SRC.rglob("*.py")) if re.search(r"/proc/\{|\.create_time\(\)", p.read_text(encoding="utf-8"))]
    # procs.py lists process trees through psutil and keeps their starts in procid's unit
    assert [str(p.relative_to(SRC)) for p in readers] == ["clusters/procs.py", "procid.py"]


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="the fast read is Linux's /proc")
def test_the_proc_read_equals_psutils_identity() -> None:
    import psutil

    from merlin import procid
    from merlin.clusters import procs

    proc = _sleeper()
    try:
        seen = wait_until(lambda: procid.look(proc.pid))
        assert not seen.zombie
        assert seen.start == pytest.approx(psutil.Process(proc.pid).create_time(), abs=1e-6)
        assert procid._look_psutil(proc.pid) == pytest.approx(seen, abs=1e-6)  # where there is no /proc
        assert procid.ticks(seen.start) == procs.proc_info(proc.pid).start_ticks == procs.start_of(proc.pid)
        assert procid.look(os.getpid()).start == pytest.approx(psutil.Process().create_time(), abs=1e-6)
    finally:
        proc.kill()
        proc.wait()
    assert procid.look(proc.pid) is None and not procid.alive(proc.pid)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="old cluster records hold Linux /proc clock ticks")
def test_records_written_by_the_old_code_are_judged_right() -> None:
    """A start recorded by each old writer (leases: float seconds; runs and clusters: psutil
    centiseconds; clusters before psutil: clock ticks since boot) names the live process, and
    the same record shifted by a few seconds does not (a reused pid)."""
    import psutil

    from merlin import procid
    from merlin.clusters import procs
    from merlin.leases.waiter import gone

    proc = _sleeper()
    try:
        wait_until(lambda: procid.look(proc.pid))
        raw = Path(f"/proc/{proc.pid}/stat").read_bytes()
        boot_ticks = int(raw[raw.rindex(b")") + 2 :].split()[19])
        btime = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        lease_form = btime + boot_ticks / os.sysconf("SC_CLK_TCK")  # the old leases/procinfo.start_time
        cluster_form = int(round(psutil.Process(proc.pid).create_time() * 100))  # the old clusters/procs.start_ticks
        for recorded, shifted in ((lease_form, lease_form + 5.0), (cluster_form, cluster_form + 500), (boot_ticks, boot_ticks + 500)):
            assert procid.alive(proc.pid, recorded) and procs.alive(proc.pid, recorded), recorded
            assert not procid.alive(proc.pid, shifted) and not procs.alive(proc.pid, shifted), shifted
        meta = {"lease_waiter_pid": proc.pid, "lease_waiter_start": lease_form, "lease_waiter_host": __import__("socket").gethostname(), "lease_waiter_attempt": 1}
        assert gone("waiting", meta, 1) is None
        assert gone("waiting", {**meta, "lease_waiter_start": lease_form - 8.0}, 1) == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert gone("waiting", meta, 1) == proc.pid


def test_the_boot_time_is_read_again_so_a_long_lived_process_agrees_with_a_fresh_one() -> None:
    """The kernel's boot time moves (whole seconds, stepped or slewed clocks): a process that kept
    the first one it read judged live processes dead against starts a fresh process recorded (CI
    saw a Ray head's GCS and raylet called gone while they ran). The clock cannot be stepped here
    (other work shares the machine), so the stale read is planted where procid keeps its last read."""
    from merlin import procid

    proc = _sleeper()
    try:
        fresh = wait_until(lambda: procid.look(proc.pid)).start
        btime, hz = procid._boot_and_hz() or (0.0, 100)
        procid._boot_read = (time.monotonic() - procid._BOOT_TTL - 1, (btime - 7, hz))  # read long ago, 7 s off
        assert procid.look(proc.pid).start == pytest.approx(fresh, abs=1e-6), "the old read is not used"
        assert procid.alive(proc.pid, fresh + 1.0) and procid.alive(proc.pid, fresh - 1.0), "the boot time's own truncation"
        assert not procid.alive(proc.pid, fresh + procid.SLACK + 1), "a start further off is another process"
    finally:
        proc.kill()
        proc.wait()


def test_a_zombie_is_not_alive() -> None:
    from merlin import procid

    proc = _sleeper()
    proc.kill()
    assert wait_until(lambda: (s := procid.look(proc.pid)) is None or s.zombie, timeout=10)
    assert not procid.alive(proc.pid)
    proc.wait()
    mine = procid.start_time(os.getpid())
    assert mine is not None and mine <= time.time() and procid.start_ticks(os.getpid()) == procid.ticks(mine)


def test_no_source_module_is_over_600_lines() -> None:
    """Rooms stay small (issue 15): a module over 600 lines is several modules. A state machine that is one
    unit may be longer only if its module docstring says so (none is, today)."""
    src = Path(__file__).resolve().parent.parent / "src" / "merlin"
    over = {}
    for path in src.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > 600 and "one unit" not in (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""):
            over[str(path.relative_to(src))] = lines
    assert over == {}


# ------------------------------------------------------------------ the age renderer


def test_one_age_renderer_in_durations() -> None:
    """merlin.durations.ago renders every "... ago" (the CLI's tables, `merlin envs`, the gateway's page);
    no other module keeps a table of units to render one."""
    from merlin.durations import ago

    assert [ago(s) for s in (0, 12.9, 59, 60, 4 * 60 + 59, 3 * 3600, 2 * 86400 + 5)] == ["0s ago", "12s ago", "59s ago", "1m ago", "4m ago", "3h ago", "2d ago"]
    assert ago(-3) == "0s ago" and ago(None) == "-" and ago(240, suffix="") == "4m"
    assert ago(5405.4, exact=True) == "1h30m5s ago" and ago(-1, exact=True) == "0s ago"
    units = [str(p.relative_to(SRC)) for p in sorted(SRC.rglob("*.py")) if '("d", 86400)' in p.read_text(encoding="utf-8")]
    assert units == ["durations.py"]
    for rel, name in (("cli/common.py", "age"), ("gateway/page.py", "age"), ("cli/envs_cmd.py", "_ago")):
        fn = next(n for n in ast.walk(ast.parse((SRC / rel).read_text(encoding="utf-8"))) if isinstance(n, ast.FunctionDef) and n.name == name)
        called = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        assert "ago" in called, f"{rel}:{name} renders an age itself"


def test_the_three_ages_read_as_before() -> None:
    from merlin import clock
    from merlin.cli import envs_cmd
    from merlin.cli.common import age

    now = time.time()
    stamp = clock.iso(now - 250)
    assert age(stamp, now=now) == "4m ago" and age(None) == "-" and age("yesterday") == "yesterday"
    assert age(None, seconds=7300, suffix="") == "2h"
    assert age(stamp.replace("+00:00", "Z"), now=now) == age(stamp.replace("+00:00", ""), now=now) == "4m ago"  # a naive time is UTC
    assert envs_cmd._ago(now - 5405) in ("1h30m5s ago", "1h30m6s ago") and envs_cmd._ago(None) == "-" and envs_cmd._ago(0) == "-"
    assert clock.since(stamp, now) == pytest.approx(250, abs=1e-3) and clock.since(now - 9, now) == pytest.approx(9)
    assert clock.since("not a time") is None and clock.since(None) is None and clock.since(0) is None
    pytest.importorskip("mcp", reason="the gateway extra is not installed")
    from merlin.gateway import page

    assert page.age(clock.iso(time.time() - 3 * 3600 - 60)) == "3h" and page.age(None) == "-" and page.age("garbage") == "-"


# ------------------------------------------------------------------ run environment paths


def test_one_rule_rebases_run_environment_paths(tmp_path: Path) -> None:
    """A runtime.yaml (`--env-file`) and an overlay's `runtime:` read their paths by one rule."""
    import yaml

    from merlin.cli.env_file import read_env_file
    from merlin.spec.run_environment import rebase
    from merlin.targetgen.bundle import runtime_section

    (tmp_path / "conf").mkdir()
    here = (tmp_path / "conf").resolve()
    fields = {"requirements": "req.txt", "lock": "../uv.lock", "working_dir": "src", "find_links": ["wheels", "https://example.invalid/w"], "python": "3.12"}
    (here / "runtime.yaml").write_text(yaml.safe_dump(fields), encoding="utf-8")
    from_file = read_env_file(here / "runtime.yaml")
    from_overlay = runtime_section(fields, here)
    want = {
        "requirements": str(here / "req.txt"),
        "lock": str(here.parent / "uv.lock"),
        "working_dir": str(here / "src"),
        "find_links": [str(here / "wheels"), "https://example.invalid/w"],
        "python": "3.12",
    }
    assert from_overlay == want
    assert from_file == {"requirements_file": want["requirements"], "lock_file": want["lock"], "working_dir": want["working_dir"], "find_links": want["find_links"], "python": "3.12"}
    assert rebase("find_links", "wheels", here) == [str(here / "wheels")] and rebase("find_links", None, here) == []
    assert rebase("working_dir", 7, here) == 7 and rebase("packages", ["x"], here) == ["x"]
    for rel in ("cli/env_file.py", "targetgen/bundle.py"):
        assert '"://"' not in (SRC / rel).read_text(encoding="utf-8"), f"{rel} rebases paths itself"


# ------------------------------------------------------------------ signals from outside


def test_one_rule_for_signals_from_outside() -> None:
    """Which signals end a replica from outside (an infrastructure end) is said once, in ledger/failures.py."""
    import signal

    from merlin.ledger.failures import OUTSIDE_SIGNALS, ended_from_outside

    assert OUTSIDE_SIGNALS == {signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
    assert ended_from_outside(-signal.SIGKILL) and ended_from_outside(-signal.SIGTERM)
    assert not ended_from_outside(-signal.SIGSEGV) and not ended_from_outside(1) and not ended_from_outside(0) and not ended_from_outside(None)
    sets = [str(p.relative_to(SRC)) for p in sorted(SRC.rglob("*.py")) if re.search(r"\{signal\.SIG\w+, signal\.SIG", p.read_text(encoding="utf-8"))]
    assert sets == ["ledger/failures.py"]
    for rel in ("engines/local_supervisor.py", "engines/ray_gang.py"):
        assert "ended_from_outside(" in (SRC / rel).read_text(encoding="utf-8"), rel


def test_no_module_level_name_is_defined_and_never_used() -> None:
    """Dead code stays out: every undecorated module-level function or class under src/merlin is named
    somewhere else (the sources, the tests, the benchmarks, the scripts, pyproject's entry points).
    Decorated ones are registered by their decorator (Typer commands, validators)."""
    root = SRC.parents[1]
    files = [*SRC.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "benchmarks").rglob("*.py"), *(root / "scripts").rglob("*.py"), root / "pyproject.toml"]
    counts: dict[str, int] = {}
    for f in files:
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", f.read_text(encoding="utf-8")):
            counts[word] = counts.get(word, 0) + 1
    dead = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.decorator_list:
                if not node.name.startswith("__") and counts.get(node.name, 0) <= 1:
                    dead.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert dead == [], "defined and never used:\n" + "\n".join(dead)
