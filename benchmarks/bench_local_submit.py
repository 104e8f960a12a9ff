#!/usr/bin/env python3
"""A local run from the CLI, whole: ``./merlin ray jobs submit --engine local --wait -- true``, N times.

merlin (the default): the CLI forks the run's supervisor (``LocalEngine.detach_supervisor``).
Baseline, same run, alternated: ``MERLIN_SUPERVISOR_FORK=0``, a new interpreter that imports merlin
for each supervisor, as every local run was started before. Measured: the machine's CPU over each
side's N runs (``/proc/stat``: the supervisors are detached, so no rusage of ours counts them; run
it on a quiet machine) and the wall time. Target: CPU <= 0.75x and wall <= 1.0x of the baseline.
Exits 1 on FAIL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from _common import REPO, env, report, temp_root

WRAPPER = str(REPO / "merlin")


def busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / os.sysconf("SC_CLK_TCK")


def side(n: int, root: str, fork: bool) -> tuple[float, float]:
    e = {**env(), "MERLIN_STATE_ROOT": root, "MERLIN_SUPERVISOR_FORK": "1" if fork else "0"}
    argv = [WRAPPER, "ray", "jobs", "submit", "--engine", "local", "--target", "bench", "--workflow", "local-submit", "--wait", "--", "true"]
    cpu0, t0 = busy_seconds(), time.perf_counter()
    for _ in range(n):
        res = subprocess.run(argv, env=e, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if res.returncode != 0:
            raise SystemExit(f"submit failed ({res.returncode}): {res.stderr.decode()[-2000:]}")
    return busy_seconds() - cpu0, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="runs per side and round (default 30)")
    ap.add_argument("--rounds", type=int, default=3, help="alternate the sides this many times; medians are reported")
    args = ap.parse_args()
    root = temp_root("merlin-bench-local-submit-")
    try:
        side(2, str(root), True)  # warm-up: bytecode caches, the state root's layout
        side(2, str(root), False)
        ours, base = [], []
        for _ in range(args.rounds):
            ours.append(side(args.n, str(root), True))
            base.append(side(args.n, str(root), False))
        cpu, bcpu = statistics.median(c for c, _ in ours), statistics.median(c for c, _ in base)
        wall, bwall = statistics.median(w for _, w in ours), statistics.median(w for _, w in base)
        rows = [
            (f"machine CPU, {args.n} local runs (submit --wait)", cpu, bcpu, f"<= 0.75x baseline ({cpu / bcpu:.2f}x)", cpu <= 0.75 * bcpu),
            (f"wall, {args.n} local runs (submit --wait)", wall, bwall, f"<= 1.0x baseline ({wall / bwall:.2f}x)", wall <= bwall),
            ("  CPU per run [info]", cpu / args.n, bcpu / args.n, "(no target)", True),
        ]
        code = report(f"{args.n} x `./merlin ray jobs submit --engine local --wait -- true`: forked supervisor vs a new interpreter "
                      f"(MERLIN_SUPERVISOR_FORK=0), median of {args.rounds} alternated rounds, load {os.getloadavg()[0]:.1f}", rows)
        sys.stdout.flush()
        return code
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
