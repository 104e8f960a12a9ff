"""Sweeps (docs/sweeps.md): makespan of 200 items of 0.2 s over 4 slots on the local engine, beside
the ideal (200 x 0.2 / 4 = 10 s; target <= 1.25x), and the driver's CPU seconds per item.

``python benchmarks/bench_sweeps.py [--items N] [--seconds S] [--slots K] [--lease]``
(the Slurm array and Ray SDK baselines are not measured yet)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=0.2)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--lease", action="store_true", help="throttle through a lease of --slots slots as well")
    a = ap.parse_args()
    from merlin.atomic import read_holder
    from merlin.controlplane import ControlPlane

    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(tmp) / "state")
        leases = []
        if a.lease:
            cp.leases.define([{"id": f"slot-{i}", "pool": "bench"} for i in range(a.slots)])
            leases = ["bench:1"]
        t0 = time.monotonic()
        cp.sweeps("submit", "bench", command=["sleep", str(a.seconds)], inputs=[str(i) for i in range(a.items)], parallel=a.slots, leases=leases)
        cpu = 0.0
        pid = None
        while True:
            v = cp.sweeps("status", "bench", restart=False)
            who = read_holder(cp.layout.sweep_driver_lock("bench")) or ""
            if "pid " in who:
                pid = int(who.split("pid ")[1].split(")")[0])
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                except OSError:
                    pass
            if v["state"] != "running":
                break
            time.sleep(0.05)
        makespan = time.monotonic() - t0
    ideal = a.items * a.seconds / a.slots
    print(f"local sweep, {a.items} items of {a.seconds}s over {a.slots} slots{' (lease)' if a.lease else ''}: "
          f"makespan {makespan:.2f}s, ideal {ideal:.2f}s, ratio {makespan / ideal:.2f}x (target <= 1.25x); state {v['state']}")
    print(f"driver CPU: {cpu:.2f}s, {cpu / a.items * 1000:.1f} ms per item (last sample)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if v["state"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
