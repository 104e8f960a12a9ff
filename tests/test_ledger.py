"""The ledger: records, transitions, atomic locked updates, redaction, paths, schemas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merlin.errors import BadInput, ChecksumMismatch, NotFound
from merlin.ledger import Ledger, RunStatus, set_status
from merlin.ledger.paths import Layout, inside, new_run_id, resolve_state_root, validate_run_id
from merlin.ledger.status import TRANSITIONS, IllegalTransition, can_transition, check_transition
from merlin.ledger.text import REDACTED, plain, redact_argv, redact_env

REPO = Path(__file__).resolve().parent.parent


def make_run(ledger: Ledger, run_id: str = "demo-1", status: RunStatus = RunStatus.PENDING, **kw):
    from merlin.ledger.models import Attempt, RunRecord, RunRequest

    req = RunRequest(
        run_id=run_id, target="demo", workflow="w", source="test", engine="local", command=["true"],
        workdir="/", target_dir=str(ledger.root / "t" / run_id), env=kw.pop("env", {}),
    )
    rec = RunRecord(
        run_id=run_id, target="demo", workflow="w", source="test", engine="local", status=status, command=["true"],
        workdir="/", target_dir=req.target_dir, attempts=[Attempt(number=1, engine="local", status=status)], **kw,
    )
    return ledger.create_run(req, rec, cause="test")


# ---------------------------------------------------------------- statuses


def test_status_vocabulary_and_terminality() -> None:
    assert [s.value for s in RunStatus] == ["blocked", "waiting", "pending", "running", "succeeded", "failed", "cancelled", "lost"]
    assert {s for s in RunStatus if s.is_terminal()} == {
        RunStatus.BLOCKED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST,
    }
    assert {s for s in RunStatus if s.is_retryable()} == {RunStatus.BLOCKED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST}
    # every status has an entry in the table, and only retry leaves a terminal status (except blocked -> cancelled)
    assert set(TRANSITIONS) == set(RunStatus) | {None}
    for s in RunStatus:
        if s.is_terminal():
            assert TRANSITIONS[s] <= {RunStatus.PENDING, RunStatus.WAITING, RunStatus.CANCELLED}  # waiting: a retry queues for its lease again
    assert TRANSITIONS[RunStatus.SUCCEEDED] == frozenset()


@pytest.mark.parametrize(
    "old,new,ok",
    [
        ("pending", "running", True),
        ("running", "succeeded", True),
        ("running", "pending", False),
        ("cancelled", "failed", False),
        ("succeeded", "pending", False),
        ("failed", "pending", True),
        ("lost", "pending", True),
        ("blocked", "cancelled", True),
        ("blocked", "running", False),
        ("running", "running", True),
    ],
)
def test_transition_table(old: str, new: str, ok: bool) -> None:
    assert can_transition(old, new) is ok
    if not ok:
        with pytest.raises(IllegalTransition):
            check_transition("r", old, new)


def test_ledger_refuses_illegal_transition_and_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    make_run(ledger, status=RunStatus.RUNNING)
    ledger.update("demo-1", lambda r: set_status(r, RunStatus.CANCELLED, "cancelled"), cause="user")
    before = ledger.layout.record("demo-1").read_bytes()
    with pytest.raises(IllegalTransition):
        ledger.update("demo-1", lambda r: set_status(r, RunStatus.FAILED), cause="late supervisor")
    assert ledger.layout.record("demo-1").read_bytes() == before
    events = ledger.events("demo-1")
    assert [e["event"] for e in events] == ["created", "transition"]
    assert events[1]["from_status"] == "running" and events[1]["to_status"] == "cancelled" and events[1]["cause"] == "user"
    assert events[1]["time"].endswith("Z")


def test_update_without_change_does_not_rewrite(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    make_run(ledger)
    path = ledger.layout.record("demo-1")
    st = path.stat()
    time.sleep(0.01)
    ledger.update("demo-1", lambda r: None, cause="nothing")
    ledger.read_record("demo-1")
    ledger.list_raw()
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_ino == st.st_ino


# -------------------------------------------------------- paths and text


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", "", "AB", "x" * 200, "a\x00b", "/abs", "ok/../../x", "a..b"])
def test_bad_run_ids_never_become_paths(bad: str, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        validate_run_id(bad)
    with pytest.raises(BadInput):
        Layout(tmp_path).record(bad)


def test_new_run_ids_are_valid_and_unique() -> None:
    ids = {new_run_id("My Target/../x") for _ in range(50)}
    assert len(ids) == 50
    for rid in ids:
        assert validate_run_id(rid) == rid and rid.startswith("my-target-x-")


def test_cluster_name_cannot_escape_or_collide(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    assert lay.cluster_record("default") == tmp_path / "cluster" / "bootstrap.json"
    assert lay.cluster_record("gpu") == tmp_path / "cluster" / "gpu.json"
    for bad in ("../x", "bootstrap", "a/b"):
        with pytest.raises(BadInput):
            lay.cluster_record(bad)


def test_inside_refuses_escapes(tmp_path: Path) -> None:
    base = tmp_path / "t"
    (base / "sub").mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", base / "link")
    assert inside(base, "sub/a.json") == (base / "sub" / "a.json").resolve()
    for bad in ("../secret", "/etc/passwd", "sub/../../secret", "link", ""):
        with pytest.raises(BadInput):
            inside(base, bad)


def test_state_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MERLIN_STATE_ROOT", str(tmp_path / "env"))
    assert resolve_state_root() == tmp_path / "env"
    assert resolve_state_root(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("MERLIN_STATE_ROOT")
    assert resolve_state_root() == (Path.cwd() / "build/generated/ray").resolve()


def test_redaction_of_secret_looking_names() -> None:
    env = {"GITHUB_TOKEN": "ghp_x", "AWS_SECRET_ACCESS_KEY": "k", "DB_PASSWORD": "p", "api_key": "a", "PATH_HINT": "ok"}
    red = redact_env(env)
    assert red == {"GITHUB_TOKEN": REDACTED, "AWS_SECRET_ACCESS_KEY": REDACTED, "DB_PASSWORD": REDACTED, "api_key": REDACTED, "PATH_HINT": "ok"}
    assert redact_argv(["env", "MY_TOKEN=abc", "LEVEL=3", "python", "x.py"]) == ["env", f"MY_TOKEN={REDACTED}", "LEVEL=3", "python", "x.py"]


def test_messages_are_plain_and_bounded(tmp_path: Path) -> None:
    assert plain("\x1b[31mred\x1b[0m and \x1b]8;;http://x\x07link\x1b]8;;\x07") == "red and link"
    long = plain("x" * 5000)
    assert len(long) == 1000 and long.endswith("...")
    ledger = Ledger(tmp_path)
    make_run(ledger)
    rec = ledger.update("demo-1", lambda r: setattr(r, "message", "\x1b[1mbold\x1b[0m" + "y" * 3000), cause="t")
    raw = ledger.layout.record("demo-1").read_text()
    assert "\x1b" not in raw and len(rec.message) == 1000


def test_secrets_never_reach_disk(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    make_run(ledger, env={"SERVICE_TOKEN": "hunter2-token", "MODE": "fast"}, metadata={"db_password": "hunter2-pw", "n": 1})
    ledger.update("demo-1", lambda r: [{"event": "note", "cause": "c", "detail": {"API_KEY": "hunter2-key"}}], cause="t")
    for p in ledger.layout.run_dir("demo-1").rglob("*"):
        if p.is_file():
            assert "hunter2" not in p.read_text(), p
    req = json.loads(ledger.layout.request("demo-1").read_text())
    assert req["env"] == {"SERVICE_TOKEN": REDACTED, "MODE": "fast"}


def test_unknown_run_is_not_found(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    with pytest.raises(NotFound):
        ledger.read_record("nope-123")
    with pytest.raises(NotFound):
        ledger.update("nope-123", lambda r: None, cause="x")


def test_duplicate_run_id_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    make_run(ledger)
    with pytest.raises(BadInput):
        make_run(ledger)


def test_list_raw_is_newest_first_filters_and_skips_damaged(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    for i in range(3):
        make_run(ledger, f"run-{i}")
        time.sleep(0.002)
    ledger.update("run-1", lambda r: set_status(r, RunStatus.RUNNING), cause="t")
    (ledger.layout.runs / "broken-1").mkdir()
    (ledger.layout.runs / "broken-1" / "run_record.json").write_text("{not json")
    assert [d["run_id"] for d in ledger.list_raw()] == ["run-2", "run-1", "run-0"]
    assert [d["run_id"] for d in ledger.list_raw(status=["running"])] == ["run-1"]


# ---------------------------------------------------------------- schemas


def test_committed_schemas_match_models() -> None:
    from merlin.records import schemas

    produced = schemas()
    committed = {p.name for p in (REPO / "docs" / "records").glob("*.schema.json")}
    assert committed == set(produced), "run `python -m merlin.records docs/records`"
    for name, schema in produced.items():
        on_disk = json.loads((REPO / "docs" / "records" / name).read_text())
        assert on_disk == schema, f"docs/records/{name} is stale: run `python -m merlin.records docs/records`"


def test_written_records_validate_against_published_schemas(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    ledger = Ledger(tmp_path)
    make_run(ledger)
    ledger.update("demo-1", lambda r: set_status(r, RunStatus.RUNNING, "running"), cause="t")
    docs = REPO / "docs" / "records"
    jsonschema.validate(json.loads(ledger.layout.record("demo-1").read_text()), json.loads((docs / "run_record.schema.json").read_text()))
    jsonschema.validate(json.loads(ledger.layout.request("demo-1").read_text()), json.loads((docs / "run_request.schema.json").read_text()))
    ev_schema = json.loads((docs / "run_event.schema.json").read_text())
    for ev in ledger.events("demo-1"):
        jsonschema.validate(ev, ev_schema)


# --------------------------------------------------------- artifacts


def test_artifact_index_and_fetch(tmp_path: Path) -> None:
    from merlin.ledger.artifacts import fetch, index_dir

    t = tmp_path / "target"
    (t / "reports").mkdir(parents=True)
    (t / "plan.json").write_text('{"a": 1}')
    (t / "reports" / "run.log").write_text("log line\n")
    (t / "notes.md").write_text("# hi")
    (t / "blob.bin").write_bytes(b"\x00\x01")
    os.symlink("/etc/hostname", t / "escape-link")
    idx = index_dir("demo-1", t, 1)
    names = {f.name: f.kind for f in idx.files}
    assert names == {"plan.json": "json", "reports/run.log": "log", "notes.md": "markdown", "blob.bin": "other"}
    assert idx.total_size == sum(f.size for f in idx.files)
    dest = fetch(idx, "reports/run.log", tmp_path / "out")
    assert dest.read_text() == "log line\n" and dest == (tmp_path / "out" / "reports" / "run.log").resolve()
    with pytest.raises(BadInput):
        fetch(idx, "../target/plan.json", tmp_path / "out")
    with pytest.raises(NotFound):
        fetch(idx, "missing.json", tmp_path / "out")
    (t / "plan.json").write_text('{"a": 2}')  # changed after indexing: checksum refuses it
    with pytest.raises(ChecksumMismatch, match="changed since it was indexed"):  # exit 1: the input was fine
        fetch(idx, "plan.json", tmp_path / "out2")
    assert not (tmp_path / "out2" / "plan.json").exists()


# ------------------------------------------------------ concurrency / crash

WORKER = r"""
import sys
from merlin.ledger import Ledger
ledger = Ledger(sys.argv[1])
n = int(sys.argv[2])
me = sys.argv[3]
def bump(r):
    r.metadata = {**r.metadata, "counter": int(r.metadata.get("counter", 0)) + 1, "last": me}
    return [{"event": "note", "cause": f"worker {me}", "detail": {"i": 1}}]
for i in range(n):
    for rid in ("shared-a", "shared-b"):
        ledger.update(rid, bump, cause=f"worker {me}")
"""


@pytest.mark.slow  # several processes, seconds even on a quiet machine
def test_sixteen_processes_update_the_same_runs(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    make_run(ledger, "shared-a")
    make_run(ledger, "shared-b")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    n = 15
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(n), str(i)]) for i in range(16)]
    assert [p.wait(timeout=240) for p in procs] == [0] * 16
    for rid in ("shared-a", "shared-b"):
        rec = ledger.read_record(rid)
        assert rec.metadata["counter"] == 16 * n  # no lost update
        lines = ledger.layout.events(rid).read_text().splitlines()
        parsed = [json.loads(line) for line in lines]  # every line is whole JSON
        assert sum(1 for e in parsed if e["event"] == "note") == 16 * n
        assert len({e["pid"] for e in parsed if e["event"] == "note"}) == 16


KILLER = r"""
import sys
from merlin.ledger import Ledger
ledger = Ledger(sys.argv[1])
i = 0
while True:
    i += 1
    ledger.update("victim-1", lambda r: setattr(r, "metadata", {"i": i, "pad": "x" * (i % 5000)}), cause="loop")
"""


def test_sigkill_during_writes_leaves_parseable_records(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    make_run(ledger, "victim-1")
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    progress = []
    for delay in (0.05, 0.1, 0.15, 0.2, 0.25):
        ledger.update("victim-1", lambda r: setattr(r, "metadata", {}), cause="reset before the next writer")
        p = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
        # kill mid-writes, not before the writer started: wait (bounded) for its first update
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            if ledger.read_record("victim-1").metadata.get("i", 0):
                break
            time.sleep(0.02)
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        rec = ledger.read_record("victim-1")  # parses and validates
        assert rec.run_id == "victim-1"
        progress.append(int(rec.metadata.get("i", 0)))
        json.loads(ledger.layout.request("victim-1").read_text())
        ledger.events("victim-1")  # a torn last line is tolerated
    assert max(progress) > 0, "the writer never got going; the test proved nothing"
    # the lock is released by the kernel when its holder dies: a fresh update works at once
    ledger.update("victim-1", lambda r: setattr(r, "metadata", {"after": True}), cause="after kill")
    assert ledger.read_record("victim-1").metadata == {"after": True}
    assert [d["run_id"] for d in ledger.list_raw()] == ["victim-1"]
