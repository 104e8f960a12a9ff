#!/usr/bin/env python3
"""`merlin ray jobs list` with active Ray rows to refresh (issue 19: fresh rows).

`jobs list` asks the engines about the active rows it shows and waits at most 0.3 s
(cli/jobs_cmd.py FRESH_BUDGET); rows not answered for in time are marked stale. The figure:
the default table over 1,000 runs, 5 of them running on a Ray cluster whose Jobs API accepts
connections and never replies; the baseline, in the same run: the same listing with those
5 rows finished (nothing to ask). Target: <= baseline + 0.3 s. Needs no Ray. Exits 1 on FAIL.

``--live``: the 5 are real runs (``sleep``) on a private live Ray head, beside the 1,000; every
row must come back answered (none marked stale), and the same target applies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from _common import MERLIN, fabricate_runs, interleaved, private_cluster, report, temp_root

RUNS = 7
N = 1000
ACTIVE = 5


def _ledger(active: bool, port: int) -> list[str]:
    """A state root of N runs; with ``active``, the newest ACTIVE Ray runs are running on a silent cluster."""
    from merlin.ledger.models import ClusterPorts, ClusterRecord
    from merlin.ledger.store import Ledger

    root = temp_root("merlin-bench-fresh-")
    fabricate_runs(root, N)
    url = f"http://127.0.0.1:{port}"
    ray_runs = sorted((p for p in (root / "runs").iterdir() if int(p.name.split("-")[1]) % 2), reverse=True)[:ACTIVE]
    for d in ray_runs:
        rec = json.loads((d / "run_record.json").read_text())
        if active:
            rec["status"] = rec["attempts"][-1]["status"] = "running"
        rec["cluster"]["address"] = url
        (d / "run_record.json").write_text(json.dumps(rec))
    Ledger(root).write_cluster(
        ClusterRecord(
            name="default",
            kind="local",
            status="active",
            host="127.0.0.1",
            address=url,
            dashboard_url=url,
            temp_dir=str(root / "tmp"),
            ports=ClusterPorts(gcs=port, dashboard=port),
        )
    )
    return [*MERLIN, "ray", "jobs", "list", "--state-root", str(root)]


def live() -> int:
    """The 5 active rows are real runs on a private live head; the baseline, a copy of the same
    state root with those 5 rows finished."""
    root = temp_root("merlin-bench-fresh-live-")
    fabricate_runs(root, N)
    copy = root.parent / "baseline"
    try:
        with private_cluster(root) as (cp, _rec):  # type: ignore[misc]
            runs = [cp.submit(["sleep", "600"], target="fresh", workflow="live", engine="ray") for _ in range(ACTIVE)]
            for r in runs:
                _until_running(cp, r.run_id)
            shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.lock"))
            for r in runs:
                path = copy / "runs" / r.run_id / "run_record.json"
                rec = json.loads(path.read_text())
                rec["status"] = rec["attempts"][-1]["status"] = "succeeded"
                path.write_text(json.dumps(rec))
            ours_cmd = [*MERLIN, "ray", "jobs", "list", "--state-root", str(root)]
            base_cmd = [*MERLIN, "ray", "jobs", "list", "--state-root", str(copy)]
            shown = subprocess.run(ours_cmd, capture_output=True, text=True, check=True)
            stale = "stale" in shown.stdout + shown.stderr
            ours, base = interleaved(ours_cmd, base_cmd, runs=RUNS)
            for r in runs:
                cp.cancel(r.run_id)
        rows = [
            (f"jobs list ({N} runs, {ACTIVE} running on a live Ray head)", ours, base, "<= baseline + 0.300 s, none stale", ours <= base + 0.3 and not stale)
        ]
        return report(f"jobs list with live rows to refresh vs without (median of {RUNS}, same run; stale rows: {'yes' if stale else 'none'})", rows)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def _until_running(cp, run_id: str) -> None:
    import time

    deadline = time.monotonic() + 120
    while cp.status(run_id).status.value != "running":
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not start on the private head")
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", action="store_true", help="the active rows are real runs on a private live Ray head")
    if ap.parse_args().live:
        return live()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections are accepted by the kernel; nothing ever replies
    port = silent.getsockname()[1]
    ours_cmd, base_cmd = _ledger(True, port), _ledger(False, port)
    try:
        ours, base = interleaved(ours_cmd, base_cmd, runs=RUNS)
        rows = [(f"jobs list ({N} runs, {ACTIVE} running on a silent Ray cluster)", ours, base, "<= baseline + 0.300 s", ours <= base + 0.3)]
        return report(f"jobs list with rows to refresh vs without (median of {RUNS}, same run)", rows)
    finally:
        silent.close()
        for cmd in (ours_cmd, base_cmd):
            shutil.rmtree(Path(cmd[-1]).parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
