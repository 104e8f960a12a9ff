"""The env launcher (``python -m merlin.envs.launch``) on a warm env: it becomes the command
(exec: the command has the launcher's pid, no Python stays between), imports no builder and
starts no process, and keeps every guarantee: the ready marker checked, the user mark held
while the command runs, the env's bin first on PATH, VIRTUAL_ENV set, PYTHONPATH and the
user site off, the command's exit code and signal its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merlin.envs.build import ensure
from merlin.envs.cache import EnvCache
from tests.wheelhouse import runtime_for, wheelhouse  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow
PROBE = 'echo "pid=$$"; echo "path0=${PATH%%:*}"; echo "venv=$VIRTUAL_ENV"; echo "pp=${PYTHONPATH-unset}"; echo "nous=$PYTHONNOUSERSITE"; read line'


@pytest.fixture
def warm(wheelhouse: Path, tmp_path: Path) -> tuple[EnvCache, str, Path]:
    rt = runtime_for(wheelhouse, "mlnprobe==1.0")
    cache = EnvCache(tmp_path / "cache")
    env_dir, eid, how = ensure(rt, cache)
    assert how == "built"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(rt))
    return cache, eid, spec


def launcher(cache: EnvCache, spec: Path, *extra: str) -> list[str]:
    return [sys.executable, "-X", "importtime", "-m", "merlin.envs.launch", "--spec", str(spec), "--cache", str(cache.root), *extra, "--"]


def test_a_warm_launch_execs_the_command_with_the_env_and_imports_no_builder(warm: tuple[EnvCache, str, Path], tmp_path: Path) -> None:
    cache, eid, spec = warm
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": "/nowhere"}
    proc = subprocess.Popen([*launcher(cache, spec, "--report", str(report)), "sh", "-c", PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    seen = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(5))
    try:
        assert seen["pid"] == str(proc.pid), "the command replaced the launcher: no Python stays in between"
        assert seen["path0"] == str(cache.env_dir(eid) / "bin") and seen["venv"] == str(cache.env_dir(eid))
        assert seen["pp"] == "unset" and seen["nous"] == "1"
        marks = [json.loads(f.read_text()) for f in cache.users_dir(eid).iterdir() if not f.name.startswith(".")]
        assert [m["pid"] for m in marks] == [proc.pid] and cache.live_users(eid), "the user mark names the command while it runs"
        assert json.loads(report.read_text())["cache"] == "hit"
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.read().splitlines() if line.startswith("import time:")}  # type: ignore[union-attr]
    assert "merlin.envs.cache" in imported, "the importtime listing is the launcher's"
    for heavy in ("merlin.envs.build", "subprocess", "argparse", "importlib.metadata", "uuid", "tempfile"):
        assert heavy not in imported, f"a warm launch imported {heavy}"
    assert cache.live_users(eid) == [] and not list(cache.users_dir(eid).iterdir()), "the mark lapsed with the command and was swept"


def test_a_warm_launch_passes_the_commands_exit_code_and_signal(warm: tuple[EnvCache, str, Path]) -> None:
    cache, _eid, spec = warm
    assert subprocess.run([*launcher(cache, spec, "--quiet"), "sh", "-c", "exit 7"], capture_output=True).returncode == 7
    proc = subprocess.Popen([*launcher(cache, spec, "--quiet"), "sleep", "60"], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    missing = subprocess.run([*launcher(cache, spec, "--quiet"), "no-such-command-here"], capture_output=True, text=True)
    assert missing.returncode == 127 and "merlin-env: cannot start no-such-command-here" in missing.stderr


def test_a_bad_launcher_line_is_argparses_error(warm: tuple[EnvCache, str, Path]) -> None:
    cache, _eid, spec = warm
    bad = subprocess.run([sys.executable, "-m", "merlin.envs.launch", "--spec", str(spec), "--", "true"], capture_output=True, text=True)
    assert bad.returncode == 2 and "the following arguments are required: --cache" in bad.stderr
    odd = subprocess.run([sys.executable, "-m", "merlin.envs.launch", "--spec", str(spec), "--cache", str(cache.root), "--frob", "x", "--", "true"],
                         capture_output=True, text=True)  # fmt: skip
    assert odd.returncode == 2 and "unrecognized arguments: --frob x" in odd.stderr


# ---------------------------------------------------------------- the warm path before the launcher (merlin.envs.warm)


def test_a_warm_env_runs_the_command_from_sh_with_no_python_at_all(warm: tuple[EnvCache, str, Path], tmp_path: Path) -> None:
    from merlin.envs.warm import warm_prefix

    cache, eid, spec = warm
    report = tmp_path / "report.json"
    rt = json.loads(spec.read_text())
    # the launcher's interpreter does not exist: the command can run only if no Python is started
    argv = [*warm_prefix(rt, str(cache.root), report=str(report), quiet=False), "/nonexistent/python", "-m", "merlin.envs.launch", "--spec", str(spec),
            "--cache", str(cache.root), "--report", str(report), "--", "sh", "-c", PROBE]  # fmt: skip
    assert argv[:2] == ["/bin/sh", "-c"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": "/x"})
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    seen = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(5))
    try:
        assert seen["pid"] == str(proc.pid), "sh became the command"
        assert seen["path0"] == str(cache.env_dir(eid) / "bin") and seen["venv"] == str(cache.env_dir(eid))
        assert seen["pp"] == "unset" and seen["nous"] == "1"
        assert [u["pid"] for u in cache.live_users(eid)] == [proc.pid], "the user mark names the command while it runs"
        assert json.loads(report.read_text()) == {"state": "ready", "env_id": eid, "cache": "hit", "cache_dir": str(cache.root)}
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read().strip() == f"merlin-env: environment {eid} (cache hit)", "the line the engine reads where no report can be written"
    assert cache.live_users(eid) == [] and not list(cache.users_dir(eid).iterdir()), "the mark lapsed with the command and was swept"


def test_the_warm_path_hands_anything_else_to_the_launcher(warm: tuple[EnvCache, str, Path], wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from merlin.envs import warm as warm_mod

    cache, _eid, spec = warm
    rt = json.loads(spec.read_text())
    tail = ["-m", "merlin.envs.launch", "--spec", str(spec), "--cache", str(cache.root), "--quiet", "--", "sh", "-c", "echo ran"]
    real = uname = os.uname()
    monkeypatch.setattr(warm_mod.os, "uname", lambda: os.uname_result((uname.sysname, uname.nodename, uname.release, uname.version, "sparc64")))
    other_kind = warm_mod.warm_prefix(rt, str(cache.root), report=None, quiet=True)
    monkeypatch.undo()
    assert os.uname() == real
    missing = subprocess.run([*other_kind, "/nonexistent/python", *tail], capture_output=True, text=True)
    assert missing.returncode == 127, "another platform's node never takes the submitter's env: it reaches the launcher (here: none)"
    assert subprocess.run([*other_kind, sys.executable, *tail], capture_output=True, text=True).stdout == "ran\n"
    # an env not built yet: the launcher builds it
    rt2 = runtime_for(wheelhouse, "mlnprobe==2.0")
    spec2 = tmp_path / "spec2.json"
    spec2.write_text(json.dumps(rt2))
    cold = warm_mod.warm_prefix(rt2, str(cache.root), report=None, quiet=False)
    built = subprocess.run([*cold, sys.executable, "-m", "merlin.envs.launch", "--spec", str(spec2), "--cache", str(cache.root), "--", "mlnprobe-cli"],
                           capture_output=True, text=True)  # fmt: skip
    assert built.returncode == 0 and built.stdout == "mlnprobe 2.0\n", built.stderr
    assert "(built)" in built.stderr
    # no warm path where it cannot be exact: a cache the node expands, a working dir to copy
    assert warm_mod.warm_prefix(rt, "$TMPDIR/merlin-envs", report=None, quiet=True) == []
    assert warm_mod.warm_prefix({**rt, "working_dir": "abc"}, str(cache.root), report=None, quiet=True) == []


def test_a_measured_warm_run_hands_the_prepared_command_to_the_measurer(warm: tuple[EnvCache, str, Path], tmp_path: Path) -> None:
    from merlin.envs.launch import read_usage
    from merlin.envs.warm import warm_prefix

    cache, eid, spec = warm
    usage = tmp_path / "usage.json"
    prefix = warm_prefix(json.loads(spec.read_text()), str(cache.root), report=None, quiet=True, usage=str(usage))
    argv = [*prefix, sys.executable, "-m", "merlin.envs.launch", "--spec", str(spec), "--cache", str(cache.root), "--usage", str(usage), "--quiet", "--",
            "sh", "-c", 'echo "$VIRTUAL_ENV"; exit 3']  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 3 and done.stdout.strip() == str(cache.env_dir(eid)), done.stderr
    measured = read_usage(usage)
    assert measured is not None and measured["wall_s"] >= 0 and measured["max_rss_bytes"] > 0, "the command's resource use, as main's launcher records it"


def test_a_memory_limit_holds_on_the_warm_path_and_through_the_launcher(warm: tuple[EnvCache, str, Path]) -> None:
    """Ray's jobs get the run's limit from the launcher: from the warm path's measurer and from the
    launcher that prepared the env itself (the cold path, and nodes given the spec inline)."""
    from merlin.envs.launch import MEMORY_LINE
    from merlin.envs.warm import warm_prefix

    cache, _eid, spec = warm
    hog = ["python", "-c", "import time; x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(30)"]
    limit = str(96 * 2**20)
    tail = [sys.executable, "-m", "merlin.envs.launch", "--spec", str(spec), "--cache", str(cache.root), "--memory", limit, "--quiet", "--", *hog]
    prefix = warm_prefix(json.loads(spec.read_text()), str(cache.root), report=None, quiet=True, memory=int(limit))
    assert "--memory" in prefix[2]  # the warm script hands the prepared command to the launcher as a memory watch
    for argv in ([*prefix, *tail], tail):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == -9 and done.stderr.count(MEMORY_LINE) == 1, (argv[:3], done.returncode, done.stderr)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_measured_command_killed_by_a_signal_ends_the_measurer_by_that_signal(sig: signal.Signals, tmp_path: Path) -> None:
    """An OOM kill (SIGKILL) must read as the signal, not as exit 1: a run's failure class comes from it."""
    usage = tmp_path / "usage.json"
    argv = [sys.executable, "-m", "merlin.envs.launch", "--usage", str(usage), "--quiet", "--", "sh", "-c", f"kill -{int(sig)} $$"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == -sig, done.stderr
    assert "Traceback" not in done.stderr


def test_another_hosts_long_lapsed_mark_is_swept_and_a_recent_one_still_counts(tmp_path: Path) -> None:
    """A shared cache holds other hosts' user marks, which this host cannot judge by pid: one touched
    within STALE_AFTER counts as a user; one past it no longer counts; one past FORGET_AFTER is removed
    (they piled up forever, one per run on every host)."""
    from merlin.envs import cache as cache_mod

    cache = EnvCache(tmp_path / "cache")
    users = cache.users_dir("e" * 64)
    users.mkdir(parents=True)
    now = time.time()
    for name, age in (("recent", 60), ("lapsed", cache_mod.STALE_AFTER + 60), ("forgotten", cache_mod.FORGET_AFTER + 60)):
        mark = users / f"elsewhere-{name}"
        mark.write_text(json.dumps({"host": "elsewhere.invalid", "pid": 4242, "pid_start": 1.0, "name": name}))
        os.utime(mark, (now - age, now - age))
    live = cache.live_users("e" * 64)
    assert [u["name"] for u in live] == ["recent"]
    assert sorted(p.name for p in users.iterdir()) == ["elsewhere-lapsed", "elsewhere-recent"]


def test_a_snapshot_zips_to_the_same_bytes_every_time_with_its_files_at_the_top_and_their_modes(tmp_path: Path) -> None:
    """What a cluster whose nodes do not see the state root gets as the job's working dir (a Ray package):
    one snapshot is one zip, byte for byte (a package already in the cluster's GCS is not sent again)."""
    import io
    import stat
    import zipfile

    from merlin.envs.snapshot import snapshot, zip_of
    from merlin.ledger.paths import Layout

    layout = Layout(tmp_path / "state")
    src = tmp_path / "code"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "data.txt").write_text("data\n")
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "run.sh").chmod(0o755)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    sid = snapshot(src, layout.blob, layout.snapshots)
    first = zip_of(layout.snapshot(sid), layout.blobs)
    os.utime(src / "run.sh", (0, 0))  # times never reach the zip
    assert zip_of(layout.snapshot(snapshot(src, layout.blob, layout.snapshots)), layout.blobs) == first
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        assert zf.namelist() == ["pkg/data.txt", "run.sh"]  # at the top, .git left out
        assert stat.S_IMODE(zf.getinfo("run.sh").external_attr >> 16) == 0o755
        assert zf.read("pkg/data.txt") == b"data\n"
