#!/usr/bin/env python3
"""Refresh the status of 100 Ray runs in one command: `merlin ray jobs list --refresh`.

Target (issue 4): <= 2 s. Baseline, same run: Ray's CLI asks one run per
process (`ray job status ID`); we time it on 10 runs and scale to 100.

Set-up: 100 short jobs are submitted through merlin (in batches, so a
2-core machine is not flooded) and left to finish in Ray; the ledger still
says 'pending'. Each measured refresh starts from that same state (the
records are restored between samples), so every sample really moves 100
runs to 'succeeded' (record write, event, kept log, artifact index).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time

from _common import MERLIN, RAY, private_cluster, report, temp_root, wall

N = 100
BATCH = 10
SAMPLES = 3


def main() -> int:
    root = temp_root("merlin-bench-refresh-")
    try:
        with private_cluster(root) as (cp, rec):
            client = cp.engine("ray").client(rec)  # merlin's REST client, with the cluster's token
            ids = []
            for _ in range(0, N, BATCH):
                batch = [cp.submit(["true"], target="bench", workflow="refresh", engine="ray").run_id for _ in range(BATCH)]
                ids += batch
                subs = {f"merlin-{rid}-1" for rid in batch}
                while True:
                    done = {j.submission_id for j in client.list_jobs() if j.submission_id in subs and j.terminal}
                    if done == subs:
                        break
                    time.sleep(0.5)
                sys.stderr.write(f"{len(ids)}/{N} jobs finished in Ray\n")
            assert all(cp.get(r).status.value == "pending" for r in ids)
            snapshot = {}
            for rid in ids:
                d = cp.layout.run_dir(rid)
                snapshot[rid] = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}

            def restore() -> None:
                for rid, files in snapshot.items():
                    d = cp.layout.run_dir(rid)
                    for p in list(d.iterdir()):
                        if p.is_file() and p.name not in files:
                            p.unlink()
                    shutil.rmtree(d / "logs", ignore_errors=True)
                    for name, data in files.items():
                        (d / name).write_bytes(data)

            samples = []
            for _ in range(SAMPLES):
                restore()
                samples.append(wall([*MERLIN, "ray", "jobs", "list", "--refresh", "--state-root", str(root)]))
                states = {cp.get(r).status.value for r in ids}
                assert states == {"succeeded"}, states
            ours = statistics.median(samples)
            from merlin.clusters.auth import ray_start_env

            os.environ.update(ray_start_env(rec.auth))  # Ray's CLI reads the token from the environment
            per_run = statistics.median(wall([RAY, "job", "status", "--address", rec.address, f"merlin-{rid}-1"]) for rid in ids[:10])
            base = per_run * N
        rows = [(f"refresh {N} Ray runs (jobs list --refresh)", ours, base, "<= 2.000 s", ours <= 2.0)]
        code = report(f"status of {N} Ray runs in one command (median of {SAMPLES}); baseline = `ray job status` x {N} "
                      f"({per_run:.3f} s each, measured on 10)", rows)
        return code
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
