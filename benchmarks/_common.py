"""Shared helpers for the Ray benchmarks: timing, a private cluster, fabricated runs.

Every benchmark measures merlin and its baseline in the same process run, on
the same machine state, and prints one table: ours, baseline, target, PASS/FAIL.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
MERLIN = [PY, "-m", "merlin"]
RAY = str(Path(PY).parent / "ray")

sys.path.insert(0, str(REPO / "src"))


def upstream_cli() -> Path | None:
    """Upstream merlin's CLI, ``tools/merlin.py`` of the checkout ``$MERLIN_UPSTREAM`` names
    (benchmarks/README.md says how to make one), or None: the baseline is absent."""
    root = os.environ.get("MERLIN_UPSTREAM")
    if not root:
        return None
    cli = Path(root).expanduser() / "tools" / "merlin.py"
    if not cli.is_file():
        raise SystemExit(f"MERLIN_UPSTREAM={root}: no tools/merlin.py there; see benchmarks/README.md for how to make the checkout")
    return cli


def say_baseline(cli: Path | None) -> None:
    """One line naming the upstream baseline, or saying it is absent (merlin is still measured)."""
    if cli is None:
        print("baseline: upstream merlin absent (set MERLIN_UPSTREAM=DIR to a checkout, see benchmarks/README.md); measuring merlin alone")
    else:
        print(f"baseline: upstream merlin at {cli.parent.parent}")


def env() -> dict[str, str]:
    """The measured commands' environment.

    PYTHONDONTWRITEBYTECODE is dropped: Ray's modules come precompiled from
    its wheel, merlin's editable sources would otherwise be recompiled on
    every start. With Python's normal bytecode cache both sides start from
    .pyc files, as they do on a user's machine (the warm-up run writes them).
    """
    e = dict(os.environ)
    e["NO_COLOR"] = "1"
    e["COLUMNS"] = "200"
    e.pop("RAY_ADDRESS", None)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    return e


LAST_CPU: list[float] = [0.0]


def wall(argv: Sequence[str], *, check: bool = True) -> float:
    """Wall seconds of one run; its CPU seconds (user+sys, children included) go to LAST_CPU."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(), cwd=REPO)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if check and res.returncode != 0:
        raise SystemExit(f"benchmark command failed ({res.returncode}): {' '.join(argv)}\n{res.stderr.decode()[-2000:]}")
    return elapsed


def median_wall(argv: Sequence[str], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        wall(argv)
    return statistics.median(wall(argv) for _ in range(runs))


def interleaved(a: Sequence[str], b: Sequence[str], runs: int, warmup: int = 1, cpu: dict | None = None) -> tuple[float, float]:
    """Median walls of two commands measured alternately (fair under noisy load).

    ``cpu``, if given, receives the median CPU seconds of each as "a" and "b"."""
    for _ in range(warmup):
        wall(a)
        wall(b)
    sa, sb, ca, cb = [], [], [], []
    for _ in range(runs):
        sa.append(wall(a))
        ca.append(LAST_CPU[0])
        sb.append(wall(b))
        cb.append(LAST_CPU[0])
    if cpu is not None:
        cpu["a"], cpu["b"] = statistics.median(ca), statistics.median(cb)
    return statistics.median(sa), statistics.median(sb)


def report(title: str, rows: list[tuple[str, float, float, str, bool]]) -> int:
    """rows: (what, ours_s, baseline_s, target text, ok). Prints the table, returns the exit code."""
    print(title)
    print(f"{'measure':44} {'merlin (s)':>11} {'baseline (s)':>13}  {'target':34} result")
    for what, ours, base, target, ok in rows:
        b = f"{base:13.3f}" if base == base else f"{'-':>13}"  # NaN -> '-'
        print(f"{what:44} {ours:11.3f} {b}  {target:34} {'PASS' if ok else 'FAIL'}")
    failed = [r for r in rows if not r[4]]
    print("overall:", "PASS" if not failed else f"FAIL ({len(failed)} of {len(rows)})")
    return 1 if failed else 0


@contextmanager
def private_cluster(root: Path, num_cpus: int = 2, resources: dict[str, float] | None = None) -> Iterator[object]:
    """A real local Ray head on free ports under ``root`` (with custom ``resources``), stopped on exit."""
    from merlin.clusters.net import free_ports
    from merlin.controlplane import ControlPlane
    from merlin.errors import RunFailed

    cp = ControlPlane(root)
    for attempt in range(1, 4):  # on a loaded machine Ray's raylet can miss its fixed 30 s start-up window
        port, dash = free_ports(2)
        sys.stderr.write("starting a private Ray cluster...\n")
        try:
            rec, _ = cp.start_local_cluster(
                "default", port=port, dashboard_port=dash, num_cpus=num_cpus, object_store_memory=200 * 1024 * 1024, resources=resources,
                progress=lambda m: sys.stderr.write(m + "\n"),
            )
            break
        except RunFailed as exc:
            if attempt == 3:
                raise
            sys.stderr.write(f"Ray did not start (attempt {attempt} of 3, load {os.getloadavg()[0]:.1f}): {exc.message[:200]}\n")
    try:
        yield cp, rec
    finally:
        cp.stop_cluster("default", grace=3.0, force=True)  # a private head: its runs end with it


def temp_root(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix)) / "state"


def fabricate_runs(root: Path, n: int) -> None:
    """Write ``n`` realistic finished runs (request, record, events) straight to disk.

    Records come from the real models so the files are what merlin writes;
    the bulk write skips fsync (this is benchmark set-up, not the ledger).
    """
    from datetime import datetime, timedelta

    from merlin.atomic import dump_json
    from merlin.ledger.models import Attempt, ClusterRef, RunEvent, RunRecord, RunRequest

    statuses = ["succeeded", "failed", "cancelled", "lost", "blocked"]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        run_id = f"bench-{i:06d}-{(i * 2654435761) % 16**6:06x}"
        t = base + timedelta(seconds=i)
        status = statuses[i % len(statuses)]
        engine = "ray" if i % 2 else "local"
        target_dir = str(runs / run_id / "target")
        cmd = [PY, "-c", f"print({i})"]
        req = RunRequest(run_id=run_id, target=f"target-{i % 17}", workflow="bench", source="bench", engine=engine,
                         command=cmd, workdir=str(REPO), target_dir=target_dir, created_at=t,
                         cluster="default" if engine == "ray" else None)
        att = Attempt(number=1, engine=engine, status=status, submission_id=f"merlin-{run_id}-1", submitted_at=t,
                      start_time=t, end_time=t + timedelta(seconds=3), exit_code=0 if status == "succeeded" else 1)
        rec = RunRecord(run_id=run_id, target=req.target, workflow="bench", source="bench", engine=engine, status=status,
                        command=cmd, workdir=str(REPO), target_dir=target_dir, attempts=[att], created_at=t, updated_at=t,
                        observed_at=t, message=f"{status}; see `merlin ray jobs status {run_id}`",
                        cluster=ClusterRef(name="default", address="http://127.0.0.1:8265") if engine == "ray" else None)
        d = runs / run_id
        d.mkdir(exist_ok=True)
        (d / "run_request.json").write_text(dump_json(req.model_dump(mode="json")))
        (d / "run_record.json").write_text(dump_json(rec.model_dump(mode="json")))
        ev = RunEvent(run_id=run_id, event="created", to_status=status, cause="bench", time=t)
        (d / "events.jsonl").write_text(json.dumps(ev.model_dump(mode="json", exclude_none=True), sort_keys=True) + "\n")
