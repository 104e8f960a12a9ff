#!/usr/bin/env python3
"""Client CPU of 50 `./merlin ray jobs submit` beside Ray's SDK submitting 50 in one process, same run.

Target (issue 15): the CPU the client side spends (user+sys of the client
processes, children included) on 50 CLI submissions of a trivial command is
<= 3x what Ray's SDK spends submitting the same 50 with
``JobSubmissionClient.submit_job`` in one Python process (its imports
included). merlin's figure includes ./merlin's wrapper, its imports, and
writing each run's request, record and events; the SDK writes nothing. Before
issue 15 it was about 6.7x, half of a submit's imports being pydantic's.

Starts a private Ray head on free ports; ``--rounds N`` alternates the two
sides N times and takes the median. Exits 1 on FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from _common import PY, REPO, env, private_cluster, report, temp_root

N = 50
TARGET = 3.0
WRAPPER = str(REPO / "merlin")

SDK = r"""
import json, os, sys
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1], headers=json.loads(os.environ["MERLIN_BENCH_HEADERS"]) or None)
ids = [client.submit_job(entrypoint="true") for _ in range(int(sys.argv[2]))]
assert len(set(ids)) == int(sys.argv[2]), ids
"""


def measured(argvs: Sequence[Sequence[str]], extra_env: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of running each argv in turn: user+sys of the processes and their children."""
    e = {**env(), **(extra_env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for argv in argvs:
        res = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e, cwd=REPO)
        if res.returncode != 0:
            raise SystemExit(f"benchmark command failed ({res.returncode}): {' '.join(argv)}\n{res.stderr.decode()[-2000:]}")
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="alternate CLI and SDK this many times; medians are reported")
    ap.add_argument("-n", type=int, default=N, help=f"submissions per side and round (default {N})")
    args = ap.parse_args()
    root = temp_root("merlin-bench-cli-submit-")
    try:
        with private_cluster(root) as (cp, rec):
            from merlin.clusters.auth import headers_for

            sdk_env = {"MERLIN_BENCH_HEADERS": json.dumps(headers_for(rec.auth, rec.name) or {})}
            cli = [WRAPPER, "ray", "jobs", "submit", "--engine", "ray", "--target", "bench", "--workflow", "cli-submit",
                   "--state-root", str(root), "--", "true"]
            sdk = [PY, "-c", SDK, rec.address]
            measured([cli])  # warm-up: bytecode caches on both sides, the first connection to the head
            measured([[*sdk, "1"]], sdk_env)
            ours_cpu, base_cpu, ours_wall, base_wall = [], [], [], []
            for _ in range(args.rounds):
                cpu, wall = measured([cli] * args.n)
                ours_cpu.append(cpu)
                ours_wall.append(wall)
                cpu, wall = measured([[*sdk, str(args.n)]], sdk_env)
                base_cpu.append(cpu)
                base_wall.append(wall)
            submitted = len(cp.list_runs())
        assert submitted == 1 + args.rounds * args.n, submitted  # the warm-up and every measured submission recorded
        ours, base = statistics.median(ours_cpu), statistics.median(base_cpu)
        ratio = ours / base
        rows = [
            (f"client CPU, {args.n} CLI submits vs SDK", ours, base, f"<= {TARGET:g}x baseline (ratio {ratio:.2f}x)", ratio <= TARGET),
            ("  CPU per submission [info]", ours / args.n, base / args.n, "(no target)", True),
            ("  wall, all submissions [info]", statistics.median(ours_wall), statistics.median(base_wall), "(no target)", True),
        ]
        print(f"ratio (CLI / SDK client CPU): {ratio:.2f}x, target <= {TARGET:g}x")
        return report(
            f"{args.n} x `./merlin ray jobs submit --engine ray -- true` vs Ray SDK submit_job x{args.n} in one process "
            f"(median of {args.rounds} round(s), pid {os.getpid()})",
            rows,
        )
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
