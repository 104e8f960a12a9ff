"""The artifact indexer always finishes: no FIFOs, devices or symlinks opened, one
filesystem, capped file count and bytes hashed; unsafe target directories are refused."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.ledger.artifacts import index_dir


def _tree(tmp_path: Path) -> Path:
    tdir = tmp_path / "target"
    (tdir / "sub").mkdir(parents=True)
    (tdir / "sub" / "plan.json").write_text("{}")
    (tdir / "notes.md").write_text("hi")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not an artifact")
    os.mkfifo(tdir / "pipe")  # opening this for reading would block forever
    (tdir / "link.txt").symlink_to(outside / "secret.txt")
    (tdir / "linkdir").symlink_to(outside, target_is_directory=True)
    from merlin.targetgen.layout import TARGET_LOCK_NAME  # the index spells TargetGen's lock names itself: held equal here

    for bookkeeping in (TARGET_LOCK_NAME, TARGET_LOCK_NAME + ".holder", TARGET_LOCK_NAME + ".submit", "state.json.lock", "x.holder", "out.json.tmp"):
        (tdir / bookkeeping).write_text("pid 1")
    return tdir


def test_index_skips_fifo_symlinks_and_lock_files(tmp_path: Path) -> None:
    tdir = _tree(tmp_path)
    started = time.monotonic()
    idx = index_dir("r-1", tdir, 1)
    assert time.monotonic() - started < 5
    assert [f.name for f in idx.files] == ["notes.md", "sub/plan.json"]
    assert all(f.sha256 and len(f.sha256) == 64 for f in idx.files)
    assert idx.truncated is False and idx.truncated_reason is None and idx.total_size == 4


def test_index_caps_files_and_bytes_and_says_why(tmp_path: Path) -> None:
    tdir = tmp_path / "t"
    tdir.mkdir()
    for i in range(5):
        (tdir / f"f{i}.txt").write_text("x" * 10)
    few = index_dir("r-1", tdir, 1, max_files=3)
    assert len(few.files) == 3 and few.truncated and "more than 3 files" in few.truncated_reason
    capped = index_dir("r-1", tdir, 1, max_hash_bytes=25)
    assert len(capped.files) == 5 and capped.truncated and "bytes" in capped.truncated_reason
    assert [bool(f.sha256) for f in capped.files] == [True, True, False, False, False]
    assert capped.total_size == 50
    stopped = index_dir("r-1", tdir, 1, should_stop=lambda: True)
    assert stopped.files == [] and stopped.truncated and "interrupted" in stopped.truncated_reason


def test_fetch_of_unhashed_entry_checks_size(tmp_path: Path) -> None:
    from merlin.ledger.artifacts import fetch

    tdir = tmp_path / "t"
    tdir.mkdir()
    (tdir / "big.bin").write_bytes(b"0123456789")
    idx = index_dir("r-1", tdir, 1, max_hash_bytes=1)
    assert idx.files[0].sha256 is None
    dest = fetch(idx, "big.bin", tmp_path / "out")
    assert dest.read_bytes() == b"0123456789"


def test_supervised_run_with_fifo_and_outside_symlink_is_indexed(tmp_path: Path) -> None:
    tdir = _tree(tmp_path)
    root = str(tmp_path / "s")
    res = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w",
                  "--target-dir", str(tdir), "--wait", "--", "true", timeout=60)
    assert res.returncode == 0, res.stderr
    run_id = res.stdout.strip()
    lst = run_cli("ray", "artifacts", "list", run_id, "--state-root", root, "--json")
    data = json.loads(lst.stdout)
    assert [f["name"] for f in data["files"]] == ["notes.md", "sub/plan.json"] and data["truncated"] is False
    assert (Path(root) / "runs" / run_id / "artifacts.json").is_file()


def test_unsafe_target_dirs_are_refused_at_submit(tmp_path: Path) -> None:
    root = tmp_path / "s"
    for bad in ("/", str(Path.home()), "/proc", "/etc/merlin-out", "/usr/local/x", "/dev"):
        res = run_cli("ray", "jobs", "submit", "--state-root", str(root), "--target", "demo", "--workflow", "w",
                      "--engine", "local", "--target-dir", bad, "--", "true")
        assert res.returncode == 2, (bad, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "--target-dir" in res.stderr, res.stderr
    assert ControlPlane(root).list_runs() == []


def test_each_run_keeps_its_artifacts_when_a_later_run_rewrites_the_shared_target_dir(tmp_path: Path) -> None:
    """Two runs on one target directory: the second rewrites (and appends to) the files of the
    first; both stay fetchable from the content-addressed store, stored once per digest."""
    tdir = tmp_path / "shared"
    tdir.mkdir()
    root = tmp_path / "s"
    cp = ControlPlane(root)

    def run(text: str) -> str:
        script = f"echo {text} > result.txt; echo {text} >> events.jsonl; echo same > constant.txt"
        rec = cp.submit(["sh", "-c", script], target="demo", workflow="w", engine="local", target_dir=tdir, workdir=tdir, wait=True, timeout=60)
        assert rec.status.value == "succeeded", rec.message
        return rec.run_id

    first, second = run("one"), run("two")
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    for run_id, out in ((first, out1), (second, out2)):
        res = run_cli("ray", "artifacts", "fetch", run_id, "result.txt", "--to", str(out), "--state-root", str(root))
        assert res.returncode == 0, res.stderr
        assert run_cli("ray", "artifacts", "fetch", run_id, "events.jsonl", "--to", str(out), "--state-root", str(root)).returncode == 0
    assert (out1 / "result.txt").read_text() == "one\n" and (out2 / "result.txt").read_text() == "two\n"
    assert (out1 / "events.jsonl").read_text() == "one\n" and (out2 / "events.jsonl").read_text() == "one\ntwo\n"
    # one file per digest under the state root, whatever number of runs share it
    blobs = [p for p in (root / "blobs" / "sha256").rglob("*") if p.is_file()]
    digests = {f.sha256 for r in (first, second) for f in cp.artifacts(r).files}
    assert sorted(p.name for p in blobs) == sorted(digests) and len(digests) == 4  # "one\n" (result and events of run 1) and constant.txt stored once
    assert (tdir / "events.jsonl").read_text() == "one\ntwo\n"  # the target directory itself was left alone

    # a genuine mismatch (the stored copy damaged): exit 1, one clear line, nothing copied
    entry = next(f for f in cp.artifacts(first).files if f.name == "result.txt")
    blob = root / "blobs" / "sha256" / entry.sha256[:2] / entry.sha256
    blob.write_text("tampered\n")
    bad = run_cli("ray", "artifacts", "fetch", first, "result.txt", "--to", str(tmp_path / "out3"), "--state-root", str(root))
    assert bad.returncode == 1, bad.stderr
    assert "checksum mismatch" in bad.stderr and "damaged" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out3" / "result.txt").exists()
