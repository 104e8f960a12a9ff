"""Ray on the local 2-node Slurm: merlin vs Ray's own ``symmetric-run`` template.

Measures, in one run:
1. ``merlin ray cluster start --kind slurm --nodes 2 --wait`` + ``jobs submit`` to the
   run's first log line (target: <= 1.2x the symmetric-run template's time);
2. processes left after ``cluster stop`` (merlin: 0), and whether a bystander Ray
   on the same machine survived;
3. ``merlin ray cluster status`` of the Slurm cluster (target: <= 0.5 s).

The baseline is Ray's template, an sbatch of ``srun ray symmetric-run --address HEAD:PORT
--min-nodes 2 -- python job.py`` (``--baseline``). symmetric-run's last step on every node
is a bare ``ray stop`` (ray/scripts/symmetric_run.py:265), which outside a namespace ends
every Ray process on the machine, other people's included; so each srun task runs as PID 1
of its own PID namespace with its own /proc, which is checked first (``_symmetric_run.py``
says how, and what it adapts for two nodes on one machine). The namespace, not
symmetric-run, is what lets the bystander Ray survive it. Every Slurm command of this
benchmark should run under ``flock /tmp/merlin-slurm-helpers.lock`` on a shared machine.

    .venv/bin/python benchmarks/bench_slurm.py [--baseline] [--rounds N]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MERLIN, PY, env
from _symmetric_run import Baseline, isolation_problem, run_template

FIRST_LINE = "merlin-bench-first-line"
JOB = f"import sys; print('{FIRST_LINE}', flush=True)"
OBJECT_STORE = 100 * 1024 * 1024


def run(argv: list[str], root: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """merlin ARGV --state-root ROOT (before a `--`: after it, it would be the run's command)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    argv = argv[:cut] + ["--state-root", str(root)] + argv[cut:]
    return subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=timeout)


def merlin_start_to_first_line(root: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = run(MERLIN + ["ray", "cluster", "start", "--kind", "slurm", "--name", "bench", "--nodes", "2", "--wait", "--object-store-memory", str(OBJECT_STORE)], root)
    if res.returncode != 0:
        outs = sorted((root / "cluster" / "state" / "bench").glob("job-*.out"))  # gone with the temp dir: show it now
        tail = outs[-1].read_text(errors="replace")[-3000:] if outs else "(no job output)"
        raise SystemExit(f"cluster start failed: {res.stderr[-1500:]}\njob output:\n{tail}")
    sub = run(MERLIN + ["ray", "jobs", "submit", "--engine", "ray", "--cluster", "bench", "--target", "bench", "--workflow", "first", "--json", "--", PY, "-c", JOB], root)
    if sub.returncode != 0:
        raise SystemExit(f"submit failed: {sub.stderr[-1500:]}")
    import json

    run_id = json.loads(sub.stdout)["run_id"]
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(root)
    while True:
        try:
            if FIRST_LINE in cp.logs(run_id):
                break
        except Exception:
            pass
        if time.perf_counter() - t0 > 900:
            raise SystemExit("no first log line within 900 s")
        time.sleep(0.1)
    return time.perf_counter() - t0, {"run_id": run_id}


def status_seconds(root: Path, n: int = 5) -> float:
    walls = []
    for _ in range(n):
        t = time.perf_counter()
        run(MERLIN + ["ray", "cluster", "status", "--name", "bench"], root)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def stop_leftovers(root: Path) -> int:
    from merlin.clusters import procs
    from merlin.clusters.slurm import SlurmBackend
    from merlin.ledger.store import Ledger

    b = SlurmBackend(Ledger(root))
    rec = Ledger(root).read_cluster("bench")
    b._load_handshake(rec)
    snapshot = b._members(rec)
    res = run(MERLIN + ["ray", "cluster", "stop", "--name", "bench"], root)
    if res.returncode != 0:
        raise SystemExit(f"stop failed: {res.stderr[-800:]}")
    left = {p for p in snapshot if procs.alive(p)}
    left |= {p.pid for p in procs.all_procs() if p.state not in ("Z", "X") and any(d in procs.cmdline(p.pid) for d in rec.node_temp_dirs)}
    return len(left)


def baseline(tmp: Path) -> tuple[Baseline | None, str]:
    """Ray's symmetric-run template in per-task PID namespaces, or why it was not run."""
    why = isolation_problem(PY)
    if why:
        return None, f"not run: {why}; outside a namespace its bare `ray stop` would end every Ray here"
    return run_template(tmp, PY, FIRST_LINE, JOB, OBJECT_STORE), ""


def rounds() -> int:
    """``--rounds N``: merlin and the template measured alternately N times (medians shown)."""
    if "--rounds" in sys.argv:
        return max(1, int(sys.argv[sys.argv.index("--rounds") + 1]))
    return 1


def main() -> None:
    if shutil.which("sbatch") is None:
        raise SystemExit("Slurm is not installed; see scripts/services")
    ours: list[float] = []
    lefts: list[int] = []
    bases: list[Baseline] = []
    status = float("nan")
    why = "pass --baseline to run Ray's symmetric-run template beside it"
    with tempfile.TemporaryDirectory(prefix="merlin-bench-slurm-") as tmpd:
        tmp = Path(tmpd)
        from merlin.clusters.net import free_ports, probe
        from merlin.controlplane import ControlPlane

        bystander_cp = ControlPlane(tmp / "bystander")
        port, dash = free_ports(2)
        by, _ = bystander_cp.start_local_cluster("bystander", port=port, dashboard_port=dash, num_cpus=1, object_store_memory=OBJECT_STORE)
        survived = base_survived = True
        try:
            for i in range(rounds()):
                root = tmp / f"state-{i}"
                left = None
                try:
                    ours.append(merlin_start_to_first_line(root)[0])
                    if i == 0:
                        status = status_seconds(root)
                    left = stop_leftovers(root)
                    lefts.append(left)
                finally:
                    if left is None:  # a measurement failed: never leave the allocation behind
                        run(MERLIN + ["ray", "cluster", "stop", "--name", "bench"], root, timeout=300)
                survived = survived and probe(by.address).state != "down"  # "auth": it answers and wants its token
                if "--baseline" in sys.argv:
                    (tmp / f"sym-{i}").mkdir()
                    base, why = baseline(tmp / f"sym-{i}")
                    if base is None:
                        break
                    bases.append(base)
                    base_survived = base_survived and probe(by.address).state != "down"
        finally:
            bystander_cp.stop_cluster("bystander", grace=2.0)
    print_table(ours, status, lefts, survived, bases, why, base_survived)


def print_table(ours: list[float], status: float, lefts: list[int], survived: bool, bases: list[Baseline], why: str, base_survived: bool) -> None:
    mine = statistics.median(ours)
    firsts = [b.first_line_s for b in bases if b.first_line_s is not None]
    first = statistics.median(firsts) if bases and len(firsts) == len(bases) else None
    first_txt = f"{first:.1f}s" if first is not None else "not run" if not bases else "failed"
    ratio = f"  {mine / first:.2f}x  {'PASS' if mine <= 1.2 * first else 'FAIL'}" if first else ""
    left = max(lefts)
    n = f" (median of {len(ours)})" if len(ours) > 1 else ""
    print(f"{'measure':50} {'merlin':>10} {'baseline':>12}  target")
    print(f"{'start --nodes 2 --wait -> first log line' + n:50} {mine:>9.1f}s {first_txt:>12}  <= 1.2x baseline{ratio}")
    if len(ours) > 1:
        print(f"  each round: merlin {', '.join(f'{x:.1f}' for x in ours)} s; template {', '.join(f'{b.first_line_s or 0:.1f}' for b in bases)} s")
    if not bases:
        print(f"  baseline: {why}")
    elif first is None:
        bad = next(b for b in bases if b.first_line_s is None)
        print(f"  baseline failed ({bad.state}): ...{bad.output_tail[-600:]}")
    base_left = "-" if not bases else str(max(sum(b.leftovers.values()) + b.outside_left for b in bases))
    print(f"{'processes left after stop':50} {left:>10} {base_left:>12}  0  {'PASS' if left == 0 else 'FAIL'}")
    by_base = "-" if not bases else f"{base_survived}*"
    print(f"{'bystander Ray survived':50} {str(survived):>10} {by_base:>12}  True  {'PASS' if survived else 'FAIL'}")
    print(f"{'cluster status (median of 5, first round)':50} {status:>9.2f}s {'-':>12}  <= 0.5 s  {'PASS' if status <= 0.5 else 'FAIL'}")
    for base in bases:
        per_node = ", ".join(f"{n} {k}" for n, k in sorted(base.leftovers.items())) or "none reported"
        print(
            f"  baseline: job {base.state} after {base.ended_s or 0:.0f} s; left inside each node's PID namespace "
            f"when symmetric-run returned: {per_node}; outside the namespaces: {base.outside_left}"
        )
        for name in base.left_names:
            print(f"    left: {name}")
    if bases:
        print("  * the bystander survived only because each srun task ran in its own PID namespace with its own /proc:")
        print("    symmetric-run ends with a bare `ray stop` (ray/scripts/symmetric_run.py:265), which scans every")
        print("    process on the machine (ray/scripts/scripts.py:1379) and would have ended the bystander too.")
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"  load average at the end: {' '.join(load)} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
