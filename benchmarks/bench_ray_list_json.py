#!/usr/bin/env python3
"""`merlin ray jobs list --json` over 10,000 recorded runs.

Target (issue 4): median wall <= 1.5 s. Baseline, same run: `ray job list`
on a private cluster (Ray's own listing, which holds only its few jobs).
Exits 1 on FAIL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from _common import MERLIN, RAY, env, fabricate_runs, interleaved, private_cluster, report, temp_root

RUNS = 5
N = 10_000


def main() -> int:
    root = temp_root("merlin-bench-json-")
    try:
        sys.stderr.write(f"writing {N} run records...\n")
        fabricate_runs(root, N)
        ours_cmd = [*MERLIN, "ray", "jobs", "list", "--json", "--state-root", str(root)]
        out = subprocess.run(ours_cmd, capture_output=True, text=True, env=env(), check=True)
        count = len(json.loads(out.stdout))
        assert count == N, f"listed {count} runs, expected {N}"
        with private_cluster(root) as (cp, rec):
            from merlin.clusters.auth import ray_start_env

            os.environ.update(ray_start_env(rec.auth))  # Ray's CLI reads the cluster's token from the environment
            ours, base = interleaved(ours_cmd, [RAY, "job", "list", "--address", rec.address], runs=RUNS)
        rows = [(f"jobs list --json ({N} runs, all printed)", ours, base, "<= 1.500 s", ours <= 1.5)]
        return report(f"merlin ray jobs list --json over {N} runs (median of {RUNS})", rows)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
