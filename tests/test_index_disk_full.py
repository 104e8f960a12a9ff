"""A full disk under the run index's journal (index/changed) while the records' disk has room.

The index is a cache: a journal line that could not be written (none, or a torn
part of one) is never an error of the write whose record is in place (exit 0,
never the environment's 75), never read as a run id, and the next listing is
rebuilt from the records. The index directory is its own small tmpfs, so the
ENOSPC hits exactly the journal append (skipped where mounting is not allowed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.ledger import Ledger, RunStatus, set_status
from merlin.ledger.index import note_changed
from merlin.ledger.paths import Layout
from test_ledger import make_run
from test_reliability import fill, tmpfs

PAGE = 4096


@pytest.fixture
def full_index(tmp_path: Path):
    """A state root whose index/ is a 1 MiB tmpfs of its own."""
    root = tmp_path / "state"
    mnt = Layout(root).index
    mnt.mkdir(parents=True)
    with tmpfs(mnt, "size=1m,mode=0700"):
        yield root


def journal_lines(root: Path) -> list[str]:
    path = Layout(root).index / "changed"
    return path.read_text().splitlines() if path.exists() else []


def pad_journal(root: Path, run_id: str, size: int) -> None:
    """Whole journal lines naming ``run_id`` (and empty ones) until the journal is ``size`` bytes."""
    journal = Layout(root).index / "changed"
    room = size - journal.stat().st_size
    line = run_id + "\n"
    with journal.open("a") as fh:
        fh.write(line * (room // len(line)) + "\n" * (room % len(line)))
    assert journal.stat().st_size == size


def listed(root: Path) -> dict[str, str]:
    res = run_cli("ray", "jobs", "list", "--json", "--state-root", str(root))
    assert res.returncode == 0, res.stderr
    return {r["run_id"]: r["status"] for r in json.loads(res.stdout)}


def test_submit_on_a_full_index_disk_succeeds_and_the_listing_rebuilds(full_index: Path) -> None:
    root = full_index
    cp = ControlPlane(root)
    first = cp.submit(["true"], target="demo", workflow="w", engine="local", wait=True, timeout=60)
    assert listed(root) == {first.run_id: "succeeded"}  # index and journal in place
    pad_journal(root, first.run_id, PAGE)  # the next line needs a page the full tmpfs does not have
    assert listed(root) == {first.run_id: "succeeded"}
    filler = fill(Layout(root).index)
    try:
        res = run_cli("ray", "jobs", "submit", "--target", "demo", "--workflow", "w", "--engine", "local", "--wait",
                      "--state-root", str(root), "--json", "--", sys.executable, "-c", "print('ok')")
        assert res.returncode == 0, res.stderr  # the record was written: a full index disk is no error of the submit
        second = json.loads(res.stdout)["run_id"]
        assert cp.get(second).status == RunStatus.SUCCEEDED
        # the journal that could not take the line was dropped (freeing its page, so later notes
        # may start a new one): whatever is in it now is whole lines naming real runs
        assert set(journal_lines(root)) <= {first.run_id, second}
        # listing while the index disk is still full: rebuilt from the records (its save fails quietly)
        assert listed(root) == {first.run_id: "succeeded", second: "succeeded"}
        cli = run_cli("ray", "jobs", "list", "--state-root", str(root))
        assert cli.returncode == 0 and second in cli.stdout and "Traceback" not in cli.stderr
    finally:
        filler.unlink()
    third = cp.submit(["true"], target="demo", workflow="w", engine="local", wait=True, timeout=60)
    assert listed(root) == {first.run_id: "succeeded", second: "succeeded", third.run_id: "succeeded"}
    assert set(journal_lines(root)) <= {first.run_id, second, third.run_id}


def test_a_short_journal_write_leaves_no_torn_line_and_no_stale_status(full_index: Path) -> None:
    """The journal ends 5 bytes before a page boundary on a full tmpfs: the next append
    writes 5 bytes and stops. Nothing of it may be read as a run id, and the change it
    announced must show at the next listing."""
    root = full_index
    ledger = Ledger(root)
    for i in range(3):
        make_run(ledger, f"run-{i}")
    assert [d["run_id"] for d, _ in ledger.list_entries()] == ["run-2", "run-1", "run-0"]
    journal = Layout(root).index / "changed"
    pad_journal(root, "run-0", PAGE - 5)
    ledger.list_entries()  # the index has read the journal up to here
    filler = fill(Layout(root).index)
    try:
        ledger.update("run-1", lambda r: set_status(r, RunStatus.RUNNING), cause="t")  # its note is cut short
        assert not journal.exists()  # dropped, not left with 'run-1' cut to 5 bytes
        # the index's own status column (what a status filter counts by) has the change
        assert [d["run_id"] for d, _ in ledger.list_entries(["running"])] == ["run-1"]
    finally:
        filler.unlink()
    ledger.update("run-2", lambda r: set_status(r, RunStatus.RUNNING), cause="t")
    assert [d["run_id"] for d, _ in ledger.list_entries(["running"])] == ["run-2", "run-1"]
    assert [d["run_id"] for d, _ in ledger.list_entries(["pending"])] == ["run-0"]
    assert journal_lines(root) == ["run-2"]


def test_a_torn_tail_glued_to_the_next_line_is_never_taken_as_a_run_id(tmp_path: Path) -> None:
    """A writer that died between its short write and dropping the journal left a tail
    without a newline; the next append glues its id to it. The listing rebuilds instead."""
    root = tmp_path / "state"
    ledger = Ledger(root)
    for i in range(3):
        make_run(ledger, f"run-{i}")
    assert len(ledger.list_entries()) == 3
    with open(Layout(root).index / "changed", "ab") as fh:
        fh.write(b"run-")  # the torn tail
    ledger.update("run-0", lambda r: set_status(r, RunStatus.RUNNING), cause="t")  # appends "run-0\n" after it
    assert journal_lines(root)[-1] == "run-run-0"
    # a status filter counts by the index's status column: run-0's change must be in it
    assert [d["run_id"] for d, _ in ledger.list_entries(["running"])] == ["run-0"]
    assert len(ledger.list_entries(["pending"])) == 2 and len(ledger.list_entries()) == 3


def test_note_changed_never_raises_when_the_index_cannot_be_written(tmp_path: Path) -> None:
    """index/ is a file (cannot be created): the note drops what it can and returns."""
    root = tmp_path / "state"
    ledger = Ledger(root)
    make_run(ledger, "run-0")
    import shutil

    shutil.rmtree(Layout(root).index)
    Layout(root).index.write_text("not a directory")
    note_changed(root, "run-0")  # no exception
    assert [d["run_id"] for d, _ in ledger.list_entries()] == ["run-0"]
