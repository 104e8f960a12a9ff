"""Ray on the local 2-node Slurm: merlin vs Ray's own ``symmetric-run`` template.

Measures, in one run:
1. ``merlin ray cluster start --kind slurm --nodes 2 --wait`` + ``jobs submit`` to the
   run's first log line (target: <= 1.2x the symmetric-run template's time);
2. processes left after ``cluster stop`` (merlin: 0), and whether a bystander Ray
   on the same machine survived;
3. ``merlin ray cluster status`` of the Slurm cluster (target: <= 0.5 s).

The baseline is an sbatch of ``srun ray symmetric-run --address HEAD:PORT --min-nodes 2
-- python job.py``. It is only run with ``--baseline`` and only when no other Ray
runs on this machine: symmetric-run refuses to start beside any Ray (and its
last step is a bare ``ray stop``, which would end every Ray on the node --
other people's too). Where it cannot run, the table says why instead of a number.

    .venv/bin/python benchmarks/bench_slurm.py [--baseline]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MERLIN, PY, RAY, env  # noqa: E402

FIRST_LINE = "merlin-bench-first-line"
JOB = f"import sys; print('{FIRST_LINE}', flush=True)"


def other_rays() -> int:
    """Ray processes on this machine not started by this benchmark (read-only look at /proc)."""
    from merlin.clusters import procs

    return sum(1 for p in procs.all_procs() if p.name in ("raylet", "gcs_server"))


def run(argv: list[str], root: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """merlin ARGV --state-root ROOT (before a `--`: after it, it would be the run's command)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    argv = argv[:cut] + ["--state-root", str(root)] + argv[cut:]
    return subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=timeout)


def merlin_start_to_first_line(root: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = run(MERLIN + ["ray", "cluster", "start", "--kind", "slurm", "--name", "bench", "--nodes", "2", "--wait", "--object-store-memory", str(100 * 1024 * 1024)], root)
    if res.returncode != 0:
        raise SystemExit(f"cluster start failed: {res.stderr[-1500:]}")
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


def baseline(tmp: Path) -> tuple[str, str]:
    """Ray's symmetric-run template, or the reason it cannot run here."""
    if other_rays():
        return "not run", f"{other_rays()} other Ray processes on this machine: symmetric-run refuses ('Ray is already started on this node') and its bare `ray stop` would end them"
    script = tmp / "symmetric.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n"
        f"#SBATCH --output={tmp}/sym-%j.out\n"
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)\n'
        "addr=$(scontrol show node -o \"$head\" | sed 's/.*NodeAddr=\\([^ ]*\\).*/\\1/')\n"
        f'srun --nodes=2 --ntasks=2 {RAY} symmetric-run --address "$addr:46379" --min-nodes 2 --num-cpus=1 '
        f"--object-store-memory={100 * 1024 * 1024} -- {PY} -c \"{JOB}\"\n"
    )
    t0 = time.perf_counter()
    job = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True).stdout.strip()
    while time.perf_counter() - t0 < 600:
        out = tmp / f"sym-{job}.out"
        if out.exists() and FIRST_LINE in out.read_text(errors="replace"):
            return f"{time.perf_counter() - t0:.1f} s", ""
        state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
        if state in ("FAILED", "COMPLETED", "CANCELLED", "TIMEOUT"):
            return "failed", (out.read_text(errors="replace")[-300:] if out.exists() else state)
        time.sleep(0.2)
    subprocess.run(["scancel", job])
    return "timeout", "no first line in 600 s"


def main() -> None:
    if shutil.which("sbatch") is None:
        raise SystemExit("Slurm is not installed; see scripts/services")
    with tempfile.TemporaryDirectory(prefix="merlin-bench-slurm-") as tmpd:
        tmp = Path(tmpd)
        root = tmp / "state"
        from merlin.clusters.net import free_ports, probe
        from merlin.controlplane import ControlPlane

        bystander_cp = ControlPlane(tmp / "bystander")
        port, dash = free_ports(2)
        by, _ = bystander_cp.start_local_cluster("bystander", port=port, dashboard_port=dash, num_cpus=1, object_store_memory=100 * 1024 * 1024)
        left = None
        try:
            ours, _ = merlin_start_to_first_line(root)
            status = status_seconds(root)
            left = stop_leftovers(root)
            survived = probe(by.address).state != "down"  # "auth": it answers and wants its token
            base, why = baseline(tmp) if "--baseline" in sys.argv else ("not run", "pass --baseline (needs a machine with no other Ray)")
        finally:
            if left is None:  # a measurement failed: never leave the allocation behind
                run(MERLIN + ["ray", "cluster", "stop", "--name", "bench"], root, timeout=300)
            bystander_cp.stop_cluster("bystander", grace=2.0)
    print(f"{'measure':44} {'merlin':>10} {'baseline':>12}  target")
    print(f"{'start --nodes 2 --wait -> first log line':44} {ours:>9.1f}s {base:>12}  <= 1.2x baseline")
    if why:
        print(f"  baseline: {why}")
    print(f"{'processes left after stop':44} {left:>10} {'-':>12}  0  {'PASS' if left == 0 else 'FAIL'}")
    print(f"{'bystander Ray survived':44} {str(survived):>10} {'-':>12}  True  {'PASS' if survived else 'FAIL'}")
    print(f"{'cluster status (median of 5)':44} {status:>9.2f}s {'-':>12}  <= 0.5 s  {'PASS' if status <= 0.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
