#!/usr/bin/env python3
"""`merlin ray jobs status RUN_ID` on a live Ray run vs `ray job status SUBMISSION_ID`, same run.

Target (issue 7): <= 0.3 s. merlin's status refreshes: it asks the cluster
(one GET of Ray's Jobs REST API, no `import ray`), records the observation
under the run's lock, and renders the record. A run still running is served
from its raw JSON (no pydantic: `observe.status_json`). CPU seconds are printed
too: on a shared 2-core machine the wall figure mostly measures the others' load. Baseline, same run,
measured alternately: Ray's own CLI asking the same cluster about the same
submission. Starts a private Ray cluster; exits 1 on FAIL.

A second, informational row: the same command on a run Ray keeps PENDING (it
asks for a resource no node has). `jobs status` of a run that is not running
yet also shows the first reason `jobs why` finds, which for a pending Ray run
asks Ray's own layer (the job and `/api/cluster_status`); a running run never
pays for it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

from _common import MERLIN, RAY, interleaved, private_cluster, report, temp_root

RUNS = 11


def main() -> int:
    root = temp_root("merlin-bench-status-")
    try:
        with private_cluster(root) as (cp, rec):
            # both sides present the cluster's token (token auth is the default): Ray's CLI reads it from the environment
            from merlin.clusters.auth import ray_start_env

            os.environ.update(ray_start_env(rec.auth))
            run = cp.submit(["sleep", "600"], target="bench", workflow="status", engine="ray")
            deadline = time.monotonic() + 120
            while cp.status(run.run_id).status.value != "running":
                if time.monotonic() > deadline:
                    raise SystemExit(f"the run did not start: {cp.get(run.run_id).message}")
                time.sleep(0.3)
            ours_cmd = [*MERLIN, "ray", "jobs", "status", run.run_id, "--state-root", str(root)]
            ray_cmd = [RAY, "job", "status", "--address", rec.address, run.attempt.submission_id]
            cpu: dict = {}
            pending = cp.submit(["true"], target="bench", workflow="pending", engine="ray", resources={"bench_slot": 1})
            try:
                ours, base = interleaved(ours_cmd, ray_cmd, runs=RUNS, cpu=cpu)
                observed = cp.get(run.run_id)
                assert observed.status.value == "running" and observed.observed_at is not None
                pend_cmd = [*MERLIN, "ray", "jobs", "status", pending.run_id, "--state-root", str(root)]
                pend_ray = [RAY, "job", "status", "--address", rec.address, pending.attempt.submission_id]
                ours_p, base_p = interleaved(pend_cmd, pend_ray, runs=RUNS)
                assert any(c["layer"] == "ray" for c in cp.why(pending.run_id)), "the pending run's reasons include Ray's own layer"
            finally:
                cp.cancel(run.run_id)
                cp.cancel(pending.run_id)
        rows = [
            ("jobs status RUN_ID (live Ray run, refreshes)", ours, base, "<= 0.300 s", ours <= 0.3),
            ("  CPU seconds (user+sys) [info]", cpu["a"], cpu["b"], "(no target)", True),
            ("jobs status of a PENDING Ray run (+ Ray's layer) [info]", ours_p, base_p, "(no target)", True),
        ]
        return report(f"status of one live Ray run, median of {RUNS} (alternating); baseline = `ray job status`", rows)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
