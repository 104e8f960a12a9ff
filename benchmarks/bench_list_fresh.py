#!/usr/bin/env python3
"""`merlin ray jobs list` with active Ray rows whose cluster never answers (issue 19: fresh rows).

`jobs list` asks the engines about the active rows it shows and waits at most 0.3 s
(cli/jobs_cmd.py FRESH_BUDGET); rows not answered for in time are marked stale. The figure:
the default table over 1,000 runs, 5 of them running on a Ray cluster whose Jobs API accepts
connections and never replies; the baseline, in the same run: the same listing with those
5 rows finished (nothing to ask). Target: <= baseline + 0.3 s. Needs no Ray. Exits 1 on FAIL.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

from _common import MERLIN, fabricate_runs, interleaved, report, temp_root

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
    Ledger(root).write_cluster(ClusterRecord(name="default", kind="local", status="active", host="127.0.0.1", address=url, dashboard_url=url,
                                             temp_dir=str(root / "tmp"), ports=ClusterPorts(gcs=port, dashboard=port)))
    return [*MERLIN, "ray", "jobs", "list", "--state-root", str(root)]


def main() -> int:
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
