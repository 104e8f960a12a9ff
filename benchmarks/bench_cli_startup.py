#!/usr/bin/env python3
"""CLI start-up: `./merlin --help` wall time against named baselines, same run.

Target (issue 2): median under 0.3 s. Baselines printed beside it:
`python -c pass` (the interpreter floor) and `ray --help` (Ray's own CLI).
Exits 1 if the target is missed.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 15
TARGET_S = 0.3


def median_wall(argv: list[str], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd=REPO)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    python = str(REPO / ".venv" / "bin" / "python")
    rows = [
        ("./merlin --help", median_wall([str(REPO / "merlin"), "--help"])),
        ("./merlin targetgen --help", median_wall([str(REPO / "merlin"), "targetgen", "--help"])),
        ("baseline: python -c pass", median_wall([python, "-c", "pass"])),
    ]
    ray = shutil.which("ray", path=str(REPO / ".venv" / "bin"))
    if ray:
        rows.append(("baseline: ray --help", median_wall([ray, "--help"], runs=5)))
    ok = rows[0][1] < TARGET_S
    print(f"{'command':32} {'median wall (s)':>16}")
    for name, value in rows:
        print(f"{name:32} {value:16.3f}")
    print(f"target: ./merlin --help < {TARGET_S:.1f} s -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
