#!/usr/bin/env python3
"""200 submits and waits of a trivial command through `merlin.client` in one process, beside
Ray's own `JobSubmissionClient` doing the same on the same head, in the same run.

Target (issue 17): wall <= 1.05x Ray's and client CPU (the process's user+sys) <= 1.5x.

Each side is one process running waves (``--window`` jobs submitted, then waited for)
until ``--jobs`` have run. The two processes run at the same time on the same head
(each imports and warms up first, then both start on one signal), so whatever load the
machine has falls on both alike. Both submit the same job (merlin's entrypoint, exporting as
many values of the job's own as merlin gives a run, and a runtime_env with no variables). merlin polls with ``wait_all`` (one
refresh per round: each unfinished job asked by its id, over one kept-open connection; since
2026-12-08 its rounds start 20 ms apart and grow to 0.2 s), Ray with ``get_job_status`` per job
every 0.2 s. ``--jobs`` 200 is the issue's figure; fewer for a quick run. merlin's
figures include writing each run's request, record and events to its ledger and
keeping each run's log. Starts a private Ray cluster (or uses the active cluster
``default`` of ``--state-root``); exits 1 on FAIL.

    .venv/bin/python benchmarks/bench_client.py [--jobs 200] [--window 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import PY, private_cluster, report, temp_root

POLL = 0.2
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def side_ours(root: Path) -> Callable[[int], None]:
    from merlin.client import Client, Entrypoint, JobRequest, JobStatus, wait_all

    client = Client(state_root=root, cluster="default")
    request = JobRequest(None, Entrypoint.from_binary("true"), target="bench", workflow="client")

    def wave(n: int) -> None:
        statuses = wait_all([client.submit(request) for _ in range(n)], timeout=1800)
        assert statuses == [JobStatus.SUCCEEDED] * n, statuses

    return wave


def side_theirs(root: Path) -> Callable[[int], None]:
    from ray.job_submission import JobSubmissionClient

    from merlin.clusters.auth import headers_for
    from merlin.controlplane import ControlPlane
    from merlin.engines.ray_engine import entrypoint_for

    rec = ControlPlane(root).ledger.read_cluster("default")
    ray = JobSubmissionClient(rec.address, headers=headers_for(rec.auth, rec.name))

    # the same job merlin submits: its entrypoint (export as many values of the job's own as merlin's
    # MERLIN_RUN_ID, ..._ATTEMPT, ..._RUN_DIR, ..._TARGET_DIR, ..._STATE_ROOT, cd to the working
    # directory, exec the command) and a runtime_env with no env_vars of its own: the figures compare the
    # clients, not two kinds of job (Ray starts jobs that each have a runtime env of their own later)
    cwd = str(Path.cwd().resolve())
    counter = iter(range(10**9))

    def entrypoint() -> str:
        n = next(counter)
        return entrypoint_for(["true"], cwd, {f"BENCH_VAR_{i}": str(root / f"job-{n}" / f"var-{i}") for i in range(5)})

    def wave(n: int) -> None:
        left = {ray.submit_job(entrypoint=entrypoint(), runtime_env={"env_vars": {}}) for _ in range(n)}
        deadline = time.monotonic() + 1800
        while left:
            time.sleep(POLL)
            for sid in list(left):
                status = ray.get_job_status(sid).value
                if status in TERMINAL:
                    assert status == "SUCCEEDED", (sid, status)
                    left.discard(sid)
            assert time.monotonic() < deadline, f"{len(left)} Ray jobs never ended"

    return wave


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_side(side: str, root: Path, jobs: int, window: int) -> None:
    """One side, in its own process: warm up, say ready, wait for go, run the waves, print the figures."""
    wave = side_ours(root) if side == "ours" else side_theirs(root)
    wave(2)  # warm-up: imports, connections, the first job's start
    print("ready", flush=True)
    sys.stdin.readline()
    c0, t0 = cpu_seconds(), time.perf_counter()
    done = 0
    while done < jobs:
        n = min(window, jobs - done)
        wave(n)
        done += n
        sys.stderr.write(f"{side}: {done}/{jobs}\n")
    print(json.dumps({"wall": time.perf_counter() - t0, "cpu": cpu_seconds() - c0}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--window", type=int, default=20, help="jobs in flight at once on each side (a wave)")
    ap.add_argument("--state-root", type=Path, help="use the active cluster 'default' of this state root (default: start a private one)")
    ap.add_argument("--side", choices=("ours", "theirs"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        run_side(args.side, args.state_root, args.jobs, args.window)
        return 0
    root = args.state_root or temp_root("merlin-bench-client-")
    try:
        with existing_cluster(root) if args.state_root else private_cluster(root, num_cpus=4):
            figures = both_sides(root, args.jobs, args.window)
        ours, theirs = figures["ours"], figures["theirs"]
        wr, cr = ours["wall"] / theirs["wall"], ours["cpu"] / theirs["cpu"]
        rows = [
            (f"wall, {args.jobs} submits + waits", ours["wall"], theirs["wall"], f"<= 1.05x baseline (now {wr:.2f}x)", wr <= 1.05),
            ("  client CPU seconds (user+sys)", ours["cpu"], theirs["cpu"], f"<= 1.5x baseline (now {cr:.2f}x)", cr <= 1.5),
        ]
        return report(f"merlin.client vs Ray's JobSubmissionClient: {args.jobs} trivial jobs each, waves of {args.window}, same head, same time", rows)
    finally:
        if not args.state_root:
            shutil.rmtree(root.parent, ignore_errors=True)


def both_sides(root: Path, jobs: int, window: int) -> dict[str, dict[str, float]]:
    procs = {
        side: subprocess.Popen(
            [PY, __file__, "--side", side, "--state-root", str(root), "--jobs", str(jobs), "--window", str(window)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for side in ("ours", "theirs")
    }
    try:
        for side, p in procs.items():
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", f"{side} did not start"
        for p in procs.values():
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        out = {}
        for side, p in procs.items():
            assert p.stdout is not None
            out[side] = json.loads(p.stdout.readline())
            if p.wait() != 0:
                raise SystemExit(f"the {side} side failed ({p.returncode})")
        return out
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()


@contextmanager
def existing_cluster(root: Path) -> Iterator[None]:
    from merlin.controlplane import ControlPlane

    rec = ControlPlane(root).ledger.read_cluster("default")
    if rec is None or rec.status.value != "active":
        raise SystemExit(f"no active cluster 'default' under {root}")
    yield


if __name__ == "__main__":
    sys.exit(main())
