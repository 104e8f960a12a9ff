#!/usr/bin/env python3
"""`merlin ray jobs submit --engine ray` vs `ray job submit --no-wait`, same entrypoint, same cluster.

Target (issue 4): merlin is no slower than Ray's own CLI (median wall of one
submission, measured alternately). merlin's figure includes writing the run
request, record and events. Starts a private Ray cluster; exits 1 on FAIL.
"""

from __future__ import annotations

import shutil
import sys

from _common import MERLIN, RAY, interleaved, private_cluster, report, temp_root

RUNS = 11


def main() -> int:
    root = temp_root("merlin-bench-submit-")
    try:
        with private_cluster(root) as (cp, rec):
            ours_cmd = [*MERLIN, "ray", "jobs", "submit", "--engine", "ray", "--target", "bench", "--workflow", "submit",
                        "--state-root", str(root), "--", "true"]
            ray_cmd = [RAY, "job", "submit", "--no-wait", "--address", rec.address, "--", "true"]
            cpu: dict = {}
            ours, base = interleaved(ours_cmd, ray_cmd, runs=RUNS, cpu=cpu)
            submitted = len(cp.list_runs())
        assert submitted == RUNS + 1, submitted  # one warm-up + the measured ones
        rows = [
            ("jobs submit --engine ray -- true", ours, base, "<= baseline (ray job submit --no-wait)", ours <= base),
            ("  CPU seconds (user+sys) [info]", cpu["a"], cpu["b"], "(no target)", True),
        ]
        return report(f"one submission, median of {RUNS} (alternating)", rows)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
