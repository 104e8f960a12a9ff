"""The run index: a cache of run summaries that `jobs list` orders and counts by.

It is never the truth: a missing, stale or damaged index is rebuilt from the
records, a SIGKILL in the middle of writing it leaves a usable listing, and a
listing prints the same with and without it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.ledger import Ledger, RunStatus, set_status
from merlin.ledger.index import RunIndex, row_id
from merlin.ledger.paths import Layout
from test_ledger import make_run


def _ids(ledger: Ledger, status: list[str] | None = None) -> list[str]:
    return [d["run_id"] for d, _raw in ledger.list_entries(status)]


def _scan_ids(ledger: Ledger, status: list[str] | None = None) -> list[str]:
    return [d["run_id"] for d, _raw in ledger.scan_entries(status)]


def _ledger_with_runs(root: Path, n: int = 6) -> Ledger:
    ledger = Ledger(root)
    for i in range(n):
        make_run(ledger, f"run-{i}")
    ledger.update("run-1", lambda r: set_status(r, RunStatus.RUNNING), cause="t")
    return ledger


def test_missing_index_is_built_and_matches_a_full_scan(tmp_path: Path) -> None:
    ledger = _ledger_with_runs(tmp_path)
    idx = Layout(tmp_path).index / "runs.json"
    idx.unlink(missing_ok=True)
    assert _ids(ledger) == _scan_ids(ledger) == [f"run-{i}" for i in reversed(range(6))]
    assert idx.is_file(), "listing builds the index"
    assert _ids(ledger, ["running"]) == _scan_ids(ledger, ["running"]) == ["run-1"]
    entries = ledger.list_entries()
    assert len(entries) == 6 and [d["run_id"] for d, _ in entries[:2]] == ["run-5", "run-4"]
    # the bytes are the record's own
    assert entries[:1][0][1] == ledger.layout.record("run-5").read_bytes()


def test_stale_index_follows_new_runs_status_changes_and_removals(tmp_path: Path) -> None:
    ledger = _ledger_with_runs(tmp_path)
    assert len(ledger.list_entries()) == 6  # index built
    make_run(ledger, "run-new")
    ledger.update("run-2", lambda r: set_status(r, RunStatus.RUNNING), cause="t")
    import shutil

    shutil.rmtree(ledger.layout.run_dir("run-3"))
    assert _ids(ledger) == _scan_ids(ledger)
    assert "run-new" in _ids(ledger) and "run-3" not in _ids(ledger)
    assert _ids(ledger, ["running"]) == _scan_ids(ledger, ["running"]) == ["run-2", "run-1"]


def test_damaged_or_foreign_index_is_rebuilt(tmp_path: Path) -> None:
    ledger = _ledger_with_runs(tmp_path)
    path = Layout(tmp_path).index / "runs.json"
    ledger.list_entries()
    ghost = json.dumps({"version": 1, "count": 1, "journal_ino": 0, "journal_offset": 0, "runs_mtime_ns": 0}) + "\nx\tghost\trunning\n"
    cut_short = path.read_text()[:-20]  # a torn body: the count no longer matches
    for junk in ("{half", json.dumps({"version": 999, "count": 0}) + "\n", ghost, cut_short):
        path.write_text(junk)
        # a foreign index with a journal it does not know is rebuilt too (journal inode differs)
        assert _ids(ledger) == _scan_ids(ledger), junk


def test_a_replaced_journal_means_a_full_rebuild(tmp_path: Path) -> None:
    ledger = _ledger_with_runs(tmp_path)
    ledger.list_entries()
    journal = Layout(tmp_path).index / "changed"
    journal.unlink()
    # a write the old journal never saw, on a run the index already holds: only a rebuild finds it
    raw = json.loads(ledger.layout.record("run-4").read_text())
    raw["status"] = "running"
    ledger.layout.record("run-4").write_text(json.dumps(raw))
    journal.write_text("")
    assert _ids(ledger, ["running"]) == _scan_ids(ledger, ["running"]) == ["run-4", "run-1"]


def test_journal_restarts_once_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import merlin.ledger.index as index

    monkeypatch.setattr(index, "JOURNAL_MAX", 64)
    ledger = _ledger_with_runs(tmp_path, n=10)
    assert _ids(ledger) == _scan_ids(ledger)
    assert (Layout(tmp_path).index / "changed.old").exists()
    make_run(ledger, "run-after")
    assert _ids(ledger)[0] == "run-after" and _ids(ledger) == _scan_ids(ledger)


INDEX_WRITER = r"""
import sys
from pathlib import Path
from merlin.ledger.index import RunIndex
idx = RunIndex(Path(sys.argv[1]))
print("ready", flush=True)
while True:
    idx.rebuild()
"""


def test_sigkill_during_index_writes_leaves_a_usable_listing(tmp_path: Path) -> None:
    ledger = _ledger_with_runs(tmp_path, n=40)
    expected = _scan_ids(ledger)
    script = tmp_path / "writer.py"
    script.write_text(INDEX_WRITER)
    path = Layout(tmp_path).index / "runs.json"
    for delay in (0.05, 0.1, 0.2, 0.3):
        p = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        head, *lines = path.read_text().splitlines()
        assert json.loads(head)["count"] == len(lines) == 40  # never half an index: atomic replace
        assert _ids(ledger) == expected
    leftovers = [n for n in os.listdir(Layout(tmp_path).index) if n not in ("runs.json", "changed")]
    assert len(leftovers) <= 4, f"temp files pile up: {leftovers}"


def _ages_as_of_now(table: str) -> str:
    return re.sub(r"[ ━─]+", " ", re.sub(r"\b\d+[smh] ago\b", "AGE", table))


def test_cli_listing_identical_with_and_without_index(tmp_path: Path) -> None:
    root = tmp_path / "state"
    ledger = _ledger_with_runs(root, n=8)
    for args in (["ray", "jobs", "list"], ["ray", "jobs", "list", "--limit", "3"], ["ray", "jobs", "list", "--status", "running"],
                 ["ray", "jobs", "list", "--json"], ["ray", "jobs", "list", "--json", "--limit", "2"]):
        with_index = run_cli(*args, "--state-root", str(root))
        without = run_cli(*args, "--state-root", str(root), env={"MERLIN_RUN_INDEX": "0"})
        assert with_index.returncode == without.returncode == 0, with_index.stderr + without.stderr
        # the two listings run a moment apart: an age may tick ("0s ago", then "1s ago") and widen its column
        assert _ages_as_of_now(with_index.stdout) == _ages_as_of_now(without.stdout) and with_index.stderr == without.stderr, args
    assert row_id(RunIndex(root).rows()[0]) == "run-7"
    assert ledger.list_raw()[0]["run_id"] == "run-7"


def test_json_listing_prints_stored_bytes_unparsed_and_skips_broken_records(tmp_path: Path) -> None:
    """`jobs list --json` streams the records' own bytes (with no status filter the
    index path parses none of them) and prints exactly what the parsed listing holds,
    even when records were damaged by hand after the index saw them."""
    root = tmp_path / "state"
    ledger = _ledger_with_runs(root, n=6)
    assert len(ledger.list_entries()) == 6  # index built while every record was whole
    ledger.layout.record("run-2").write_text("{not json")
    ledger.layout.record("run-3").write_text("")
    ledger.layout.record("run-4").write_text('{"truncated": ')
    spaced = ledger.layout.record("run-0")
    spaced.write_text("\n  " + spaced.read_text().rstrip("\n") + "  \n\n")  # still one JSON object, odd shape

    def as_array(raws: list[bytes]) -> str:
        return (b"[\n" + b",\n".join(r.rstrip(b"\n") for r in raws) + b"\n]\n").decode("utf-8")

    for args, status, n in (([], None, 0), (["--limit", "2"], None, 2), (["--status", "running"], ["running"], 0),
                            (["--status", "succeeded", "--status", "running"], ["succeeded", "running"], 0)):
        res = run_cli("ray", "jobs", "list", "--json", *args, "--state-root", str(root))
        assert res.returncode == 0, res.stderr
        entries = ledger.list_entries(status)
        parsed = entries[:n] if n else list(entries)  # the parsing path, as --json printed it before
        assert res.stdout == as_array([raw for _d, raw in parsed]), args
        assert [d["run_id"] for d in json.loads(res.stdout)] == [d["run_id"] for d, _raw in parsed]
    listed = json.loads(run_cli("ray", "jobs", "list", "--json", "--state-root", str(root)).stdout)
    assert [d["run_id"] for d in listed] == ["run-5", "run-1", "run-0"]
    scan = run_cli("ray", "jobs", "list", "--json", "--state-root", str(root), env={"MERLIN_RUN_INDEX": "0"})
    assert json.loads(scan.stdout) == listed  # a full scan skips the same broken records
    assert run_cli("ray", "jobs", "list", "--json", "--state-root", str(root), "--status", "running").stdout == run_cli(
        "ray", "jobs", "list", "--json", "--state-root", str(root), "--status", "running", env={"MERLIN_RUN_INDEX": "0"}).stdout
    empty = run_cli("ray", "jobs", "list", "--json", "--state-root", str(tmp_path / "none"))
    assert empty.returncode == 0 and empty.stdout == "[\n]\n"
