#!/usr/bin/env python3
"""How long `cluster stop` takes for a local Ray head, beside the same head ended the way a
scheduler's cancel ends it, in the same run.

merlin ends a head's processes in Ray's order (its autoscaler monitor, then its raylet, then the
rest: ``merlin.clusters.teardown.STOP_FIRST``). The baseline signals every process of the head at
once (SIGTERM, then SIGKILL after the same 5 s grace), as merlin did before and as `scancel` does:
the GCS, raylet, monitor and runtime env agent then wait for one another and outlive SIGTERM.
Ray's own `ray stop` is no baseline here: it ends every Ray on the machine.

Each round starts a private head (free ports, its own temp dir) twice: once for each way to end
it. Target: merlin's stop at most 2 s (median) and under half the baseline's.

    .venv/bin/python benchmarks/bench_cluster_stop.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from contextlib import contextmanager

from _common import report, temp_root


@contextmanager
def head(root):
    """A private head under ``root``; whatever is left of it is stopped on the way out, even on an error."""
    from merlin.clusters.net import free_ports
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(root)
    port, dash = free_ports(2)
    try:
        cp.start_local_cluster("default", port=port, dashboard_port=dash, num_cpus=1, object_store_memory=100 * 1024 * 1024)
        yield cp
    finally:
        rec = cp.ledger.read_cluster("default")
        if rec is not None and rec.status.value != "stopped":
            cp.stop_cluster("default", grace=1.0, force=True)


def ours(root) -> float:
    with head(root) as cp:
        t0 = time.perf_counter()
        cp.stop_cluster("default", grace=5.0)
        return time.perf_counter() - t0


def all_at_once(root) -> float:
    from merlin.clusters import procs

    with head(root) as cp:
        rec = cp.ledger.read_cluster("default")
        members = cp.cluster_backend(rec.kind)._members(rec)
        t0 = time.perf_counter()
        procs.terminate(members, grace=5.0)  # no stages: every process signalled at once
        return time.perf_counter() - t0  # the head's record is then stopped on the way out (nothing left to end)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    mine, base = [], []
    for i in range(args.rounds):
        roots = temp_root(f"merlin-bench-stop-{i}-"), temp_root(f"merlin-bench-stop-base-{i}-")
        try:
            mine.append(ours(roots[0]))
            base.append(all_at_once(roots[1]))
        finally:
            for r in roots:
                shutil.rmtree(r.parent, ignore_errors=True)
        sys.stderr.write(f"round {i + 1}: merlin {mine[-1]:.2f} s, all at once {base[-1]:.2f} s\n")
    m, b = statistics.median(mine), statistics.median(base)
    rows = [(f"local head stop, median of {args.rounds}", m, b, f"<= 2 s and <= 0.5x (now {m / b:.2f}x)", m <= 2.0 and m <= 0.5 * b)]
    return report("cluster stop of a local Ray head: in Ray's order vs every process at once", rows)


if __name__ == "__main__":
    sys.exit(main())
