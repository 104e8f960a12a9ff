#!/usr/bin/env python3
"""`merlin ray jobs list` over 1,000 recorded runs vs `ray job list` on the same cluster.

Targets (issue 4): median wall <= 0.3 s, and <= half of `ray job list`,
for the default table (newest 50) and for every row (`--limit 0`, which
`ray job list` always prints). Also printed, for information: the listing as
JSON. Starts a private Ray cluster on free ports; exits 1 on FAIL.
"""

from __future__ import annotations

import shutil
import sys

from _common import MERLIN, RAY, fabricate_runs, interleaved, median_wall, private_cluster, report, temp_root

RUNS = 11
N = 1000


def main() -> int:
    root = temp_root("merlin-bench-list-")
    try:
        fabricate_runs(root, N)
        with private_cluster(root) as (cp, rec):
            ours_cmd = [*MERLIN, "ray", "jobs", "list", "--state-root", str(root)]
            ray_cmd = [RAY, "job", "list", "--address", rec.address]
            ours, base = interleaved(ours_cmd, ray_cmd, runs=RUNS)
            all_rows = median_wall([*ours_cmd, "--limit", "0"], runs=RUNS)
            as_json = median_wall([*ours_cmd, "--json"], runs=5)
        rows = [
            (f"jobs list ({N} runs, table of newest 50)", ours, base, "<= 0.300 s and <= 0.5 x baseline", ours <= 0.3 and ours <= 0.5 * base),
            (f"jobs list --limit 0 (all {N} rows)", all_rows, base, "<= 0.300 s and <= 0.5 x baseline", all_rows <= 0.3 and all_rows <= 0.5 * base),
            (f"jobs list --json ({N} runs) [info]", as_json, base, "(no target)", True),
        ]
        return report(f"merlin ray jobs list vs `ray job list` (median of {RUNS}, same cluster)", rows)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
