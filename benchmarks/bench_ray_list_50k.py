#!/usr/bin/env python3
"""`merlin ray jobs list` over 50,000 recorded runs, beside `ray job list`, same run.

Targets (issue 7): the default view (newest 50 rows) <= 0.3 s and <= 80 MiB
peak RSS; `--json` of all 50,000 runs <= 1.5 s. Measured with the run index
warm (the first listing builds it) and, for information, with a cold index
(deleted before each run) and with no index at all (MERLIN_RUN_INDEX=0).

`ray job list` runs against a private cluster started for this benchmark; it
holds only the jobs Ray itself knows (the 50,000 runs are fabricated records
written straight to the ledger, as merlin writes them: submitting 50,000 real
jobs is beyond a 2-core machine), so it is the floor of Ray's own CLI, not a
like-for-like listing. MERLIN_BENCH_STATE=DIR writes the runs there once and
reuses them next time. Exits 1 on FAIL.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import MERLIN, RAY, env, private_cluster, report, temp_root

N = int(os.environ.get("MERLIN_BENCH_RUNS", "50000"))
RUNS = 7


def measure(argv: list[str], extra_env: dict[str, str] | None = None, before=None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one run."""
    if before:
        before()
    e = env()
    if extra_env:
        e.update(extra_env)
    start = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e)
    _pid, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(argv)}\n{err[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def median(argv: list[str], runs: int = RUNS, **kw) -> tuple[float, float]:
    measure(argv, **kw)  # warm-up (builds the index, writes bytecode)
    samples = [measure(argv, **kw) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def fabricate(root: Path, n: int) -> None:
    """``n`` finished runs: one record made by the real models, varied per run, written without fsync."""
    from _common import fabricate_runs

    fabricate_runs(root, 1)
    runs = root / "runs"
    (template_dir,) = list(runs.iterdir())
    record = json.loads((template_dir / "run_record.json").read_text())
    request = (template_dir / "run_request.json").read_text()
    shutil.rmtree(template_dir)
    statuses = ["succeeded", "failed", "cancelled", "lost", "blocked"]
    for i in range(n):
        run_id = f"bench-{i:06d}-{(i * 2654435761) % 16**6:06x}"
        rec = copy.deepcopy(record)
        rec["run_id"] = run_id
        rec["status"] = rec["attempts"][0]["status"] = statuses[i % len(statuses)]
        stamp = f"2026-01-{1 + i // 86400:02d}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z"
        rec["created_at"] = rec["updated_at"] = rec["observed_at"] = stamp
        rec["target"] = f"target-{i % 17}"
        rec["message"] = f"{rec['status']}; see `merlin ray jobs status {run_id}`"
        d = runs / run_id
        d.mkdir()
        (d / "run_record.json").write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
        (d / "run_request.json").write_text(request)


def main() -> int:
    reuse = os.environ.get("MERLIN_BENCH_STATE")  # a state root of N runs from an earlier run, kept
    root = Path(reuse) if reuse else temp_root("merlin-bench-list50k-")
    try:
        if not (root / "runs").is_dir():
            sys.stderr.write(f"writing {N} runs...\n")
            fabricate(root, N)
        with private_cluster(root) as (_cp, rec):
            ours = [*MERLIN, "ray", "jobs", "list", "--state-root", str(root)]
            ray_list = [RAY, "job", "list", "--address", rec.address]
            view, view_mib = median(ours)
            as_json, json_mib = median([*ours, "--json"], runs=3)
            from merlin.clusters.auth import ray_start_env

            ray_s, ray_mib = median(ray_list, runs=3, extra_env=ray_start_env(rec.auth))  # the cluster's token, as merlin uses it
            drop_index = lambda: shutil.rmtree(root / "index", ignore_errors=True)  # noqa: E731
            cold, cold_mib = median(ours, runs=3, before=drop_index)
            scan, scan_mib = median(ours, runs=3, extra_env={"MERLIN_RUN_INDEX": "0"})
            scan_json, _ = median([*ours, "--json"], runs=3, extra_env={"MERLIN_RUN_INDEX": "0"})
        rows = [
            (f"jobs list, newest 50 of {N}", view, ray_s, "<= 0.300 s", view <= 0.3),
            (f"  peak RSS MiB (ray job list: {ray_mib:.0f})", view_mib, float("nan"), "<= 80 MiB", view_mib <= 80),
            (f"jobs list --json, all {N}", as_json, ray_s, "<= 1.500 s", as_json <= 1.5),
            ("  peak RSS MiB [info]", json_mib, float("nan"), "(no target)", True),
            ("jobs list, index rebuilt each run [info]", cold, ray_s, f"(no target; {cold_mib:.0f} MiB)", True),
            ("jobs list, no index (full scan) [info]", scan, ray_s, f"(no target; {scan_mib:.0f} MiB)", True),
            ("jobs list --json, no index [info]", scan_json, ray_s, "(no target)", True),
        ]
        return report(f"merlin ray jobs list over {N} runs vs `ray job list` (median of {RUNS}; baseline column: ray job list)", rows)
    finally:
        if not reuse:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
