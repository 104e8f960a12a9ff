"""Sweeps (docs/sweeps.md, issue 18's "Speed"): N items of S seconds over K slots, each figure beside its
baseline, measured in the same run.

- local: merlin's sweep on the local engine beside the ideal N x S / K (target <= 1.25x);
- slurm: ``sbatch --wait --array=0-(N-1)%K --wrap 'sleep S'`` on the 2-node Slurm here (scripts/services)
  beside merlin's sweep on a merlin cluster in a Slurm allocation of both nodes, each item a Ray job on it
  (target: merlin <= 1.0x the array's makespan; the cluster's start is shown apart);
- ray: a private Ray head on free loopback ports with a custom resource ``slot: K``: N jobs submitted at once
  with Ray's ``JobSubmissionClient`` and ``entrypoint_resources={"slot": 1}`` beside merlin's sweep
  (``--parallel K``) on that head (target <= 1.1x);
- every part: the driver's own CPU seconds per item (its ``getrusage(RUSAGE_SELF)``: not the supervisors it forks).

A makespan runs from the submit to the moment the last item is known to have ended: the array's
``sbatch --wait`` returning, the last Ray job's ``end_time``, merlin's driver exiting (it exits once it has
recorded every item's end). The Slurm part holds ``/tmp/merlin-slurm-helpers.lock`` throughout.

``python benchmarks/bench_sweeps.py [--only local|slurm|ray] [--items N] [--seconds S] [--slots K] [--lease]``
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MERLIN, PY, env, private_cluster

SLURM_LOCK = "/tmp/merlin-slurm-helpers.lock"
Row = tuple[str, float, float, str, bool]


def merlin_sweep(cp, name: str, a: argparse.Namespace, **kw) -> dict:
    """Submit the sweep, run its driver to the end in the foreground (the same driver the CLI detaches)."""
    import resource

    t0 = time.monotonic()
    cp.sweeps("submit", name, command=["sleep", str(a.seconds)], inputs=[str(i) for i in range(a.items)], parallel=a.slots, start_driver=False, **kw)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run([PY, "-m", "merlin.cli.sweep_driver", str(cp.root), name], capture_output=True, text=True, env=env())
    makespan = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the driver and what it reaped: the supervisors it forked, their commands
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"driver CPU ([\d.]+)s", res.stdout)
    v = cp.sweeps("status", name, restart=False)
    if v["state"] != "succeeded":
        sys.stderr.write(f"sweep {name}: {v['state']} {v['counts']} {[f['last_line'] for f in v.get('failures', [])][:3]}\n{res.stdout[-500:]}{res.stderr[-1500:]}\n")
    return {"makespan": makespan, "cpu": float(m.group(1)) if m else float("nan"), "total_cpu": total, "state": v["state"]}


def part_local(a: argparse.Namespace) -> list[Row]:
    from merlin.controlplane import ControlPlane

    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(Path(tmp) / "state")
        leases = []
        if a.lease:
            cp.leases.define([{"id": f"slot-{i}", "pool": "bench"} for i in range(a.slots)])
            leases = ["bench:1"]
        got = merlin_sweep(cp, "bench", a, leases=leases)
    ideal = a.items * a.seconds / a.slots
    what = f"local: {a.items} x {a.seconds}s over {a.slots}{' (lease)' if a.lease else ''}"
    return [
        (f"{what} (vs ideal)", got["makespan"], ideal, f"<= 1.25x ({got['makespan'] / ideal:.2f}x)", got["state"] == "succeeded" and got["makespan"] <= 1.25 * ideal),
        ("local: driver CPU per item", got["cpu"] / a.items, float("nan"), "reported", True),
        ("local: CPU per item, driver+supervisor+command", got["total_cpu"] / a.items, float("nan"), "reported", True),
    ]


def slurm_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "Slurm is not installed"
    res = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=30)
    up = [ln for ln in res.stdout.splitlines() if ln.split()[-1].rstrip("*") in ("idle", "alloc", "mix", "comp")]
    return None if res.returncode == 0 and len(up) >= 2 else f"Slurm is not up with 2 nodes ({(res.stdout + res.stderr).strip()[:160]!r}); scripts/services status"


def merlin_cli(argv: list[str], root: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*MERLIN, *argv, "--state-root", str(root)], capture_output=True, text=True, env=env(), timeout=timeout)


def part_slurm(a: argparse.Namespace) -> list[Row]:
    from merlin.controlplane import ControlPlane

    why = slurm_problem()
    if why:
        print(f"slurm: not measured: {why}")
        return []
    with open(SLURM_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        t0 = time.monotonic()
        arr = subprocess.run(["sbatch", "--wait", "--parsable", f"--array=0-{a.items - 1}%{a.slots}", "--job-name=merlin-bench-array",
                              "-o", "/dev/null", "-e", "/dev/null", "--wrap", f"sleep {a.seconds}"], capture_output=True, text=True, timeout=3600)  # fmt: skip
        array_s = time.monotonic() - t0
        if arr.returncode != 0:
            print(f"slurm: the array failed: {arr.stderr.strip()[:300]}")
            return []
        root = Path(tempfile.mkdtemp(prefix="merlin-bench-sweeps-")) / "state"
        try:
            t1 = time.monotonic()
            res = merlin_cli(["ray", "cluster", "start", "--kind", "slurm", "--name", "sw", "--nodes", "2", "--wait", "--object-store-memory", str(100 * 2**20)], root)
            start_s = time.monotonic() - t1
            if res.returncode != 0:
                print(f"slurm: merlin's cluster did not start: {res.stderr.strip()[-400:]}")
                return [("slurm: array (sbatch --wait)", array_s, float("nan"), "baseline", True)]
            got = merlin_sweep(ControlPlane(root), "onslurm", a, engine="ray", cluster="sw")
        finally:
            merlin_cli(["ray", "cluster", "stop", "--name", "sw", "--force"], root, timeout=300)
            shutil.rmtree(root.parent, ignore_errors=True)
    what = f"slurm: {a.items} x {a.seconds}s, %{a.slots}"
    return [
        (f"{what} (vs the array)", got["makespan"], array_s, f"<= 1.0x ({got['makespan'] / array_s:.2f}x)", got["state"] == "succeeded" and got["makespan"] <= array_s),
        ("slurm: merlin's cluster start (apart)", start_s, float("nan"), "reported", True),
        ("slurm: driver CPU per item", got["cpu"] / a.items, float("nan"), "reported", True),
    ]


def ray_baseline(rec, a: argparse.Namespace) -> float:
    """N jobs at once through Ray's SDK, one ``slot`` each; the makespan to the last job's ``end_time``."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from merlin.clusters.auth import headers_for

    client = JobSubmissionClient(rec.address, headers=headers_for(rec.auth, rec.name) or None)
    t0, wall0 = time.monotonic(), time.time()
    ids = [client.submit_job(entrypoint=f"sleep {a.seconds}", entrypoint_resources={"slot": 1}) for _ in range(a.items)]
    want = set(ids)
    while True:
        jobs = {j.submission_id: j for j in client.list_jobs() if j.submission_id in want}
        if len(jobs) == len(want) and all(j.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED) for j in jobs.values()):
            break
        time.sleep(0.5)
    bad = [j for j in jobs.values() if j.status != JobStatus.SUCCEEDED]
    if bad:
        print(f"ray: {len(bad)} baseline jobs did not succeed: {bad[0].message}")
    last = max(j.end_time or 0 for j in jobs.values()) / 1000.0
    return last - wall0 if last else time.monotonic() - t0


def part_ray(a: argparse.Namespace) -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="merlin-bench-sweeps-ray-")) / "state"
    try:
        with private_cluster(root, num_cpus=4, resources={"slot": float(a.slots)}) as (cp, rec):
            base = ray_baseline(rec, a)
            got = merlin_sweep(cp, "onray", a, engine="ray")
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    what = f"ray: {a.items} x {a.seconds}s over {a.slots}"
    return [
        (f"{what} (vs Ray's SDK, slot resource)", got["makespan"], base, f"<= 1.1x ({got['makespan'] / base:.2f}x)", got["state"] == "succeeded" and got["makespan"] <= 1.1 * base),
        ("ray: driver CPU per item", got["cpu"] / a.items, float("nan"), "reported", True),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("local", "slurm", "ray"), action="append", help="run only this part (repeatable; default: all)")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=0.2)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--lease", action="store_true", help="local: throttle through a lease of --slots slots as well")
    a = ap.parse_args()
    parts = a.only or ["local", "slurm", "ray"]
    load0 = os.getloadavg()[0]
    rows: list[Row] = []
    for name, fn in (("local", part_local), ("slurm", part_slurm), ("ray", part_ray)):
        if name in parts:
            rows += fn(a)
    print(f"{'measure':48} {'merlin (s)':>11} {'baseline (s)':>13}  {'target':26} result")
    for what, ours, base, target, ok in rows:
        b = f"{base:13.3f}" if base == base else f"{'-':>13}"
        print(f"{what:48} {ours:11.3f} {b}  {target:26} {'PASS' if ok else 'FAIL'}")
    print(f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores")
    print(json.dumps({"rows": [{"what": r[0], "merlin_s": None if r[1] != r[1] else round(r[1], 4), "baseline_s": None if r[2] != r[2] else round(r[2], 4), "ok": r[4]} for r in rows]}))
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
