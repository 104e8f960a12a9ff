"""Ray's own Slurm template (``srun ray symmetric-run ... -- python job.py``), run safely.

Why a PID namespace: symmetric-run ends every node's part with a bare ``ray stop``
(ray/scripts/symmetric_run.py, line 265: a bare ``ray stop``, run by ``subprocess.run`` in its
``finally:``). ``ray stop`` walks ``psutil.process_iter()`` (ray/scripts/scripts.py,
line 1379) and terminates every process whose name or command line matches
``RAY_PROCESSES`` (ray/autoscaler/_private/constants.py, line 124: raylet, gcs_server,
``ray::`` workers, dashboard, agents...). Outside a namespace that is every Ray on the
machine, other people's included. Here each srun task runs as PID 1 of its own PID
namespace with its own /proc (``unshare --pid --fork --mount-proc --kill-child``), so
that scan sees only the task's own processes; the namespace, not symmetric-run, is what
protects the other Ray on this machine. ``isolation_problem()`` proves it before the
template ever runs: a decoy whose command line matches ``RAY_PROCESSES`` runs outside,
and what ``ray stop`` would scan from inside a namespace must not show it.

Two adaptations for one machine (the test Slurm's two nodes share one host's
interfaces; on a real cluster neither is needed):

* symmetric-run decides "am I the head?" by looking for the head's address among the
  host's interface addresses (``psutil.net_if_addrs()``); both nodes share them, and the
  nodes' addresses 127.0.0.11/.12 are on no interface. ``NODE_SHIM`` adds the task's own
  Slurm NodeAddr to what ``psutil.net_if_addrs()`` returns, as a real node's NIC would.
* the nodes share one port space, so each task gets its own free ports for the
  per-node services (the head's come from ``--address`` and its own options).

Everything else is the template: ``ray symmetric-run --address HEAD:PORT --min-nodes 2
RAY_START_OPTIONS -- python -c JOB``, with Ray's defaults (no token auth), the dashboard
on 127.0.0.1, and the same resources, usage-stats and metrics settings merlin's nodes get.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

NODE_SHIM = '''\
"""Run `ray symmetric-run ARGS...` as on a node whose NIC carries NODE_ADDR (argv[1])."""
import socket
import sys

import psutil

node_addr = sys.argv[1]
host_addrs = psutil.net_if_addrs


def with_node_addr():
    addrs = host_addrs()
    entry = type(next(iter(addrs.values()))[0])  # psutil's own address record
    addrs["slurm-node"] = [entry(socket.AF_INET, node_addr, "255.0.0.0", None, None)]
    return addrs


psutil.net_if_addrs = with_node_addr
sys.argv = ["ray", "symmetric-run", *sys.argv[2:]]
from ray.scripts.scripts import main  # noqa: E402

main()
'''

#: PID 1 of one srun task's namespace: run the template's command, then list what is left
NODE_SCRIPT = """\
#!/bin/bash
# PID 1 of this task's own PID namespace (unshare --pid --fork --mount-proc).
i=$SLURM_PROCID
node=$SLURMD_NODENAME
addr=$(scontrol show node -o "$node" | sed 's/.*NodeAddr=\\([^ ]*\\).*/\\1/')
tmp=/tmp/sym-$SLURM_JOB_ID-$i
rm -rf "$tmp"; mkdir -m 700 "$tmp"
# Ray's default temp dir becomes $tmp/ray and its ~/.ray (token file) $tmp/.ray: nothing
# of the machine's shared /tmp/ray or /root/.ray is read or written.
export HOME=$tmp PATH={bindir}:$PATH RAY_TMPDIR=$tmp RAY_USAGE_STATS_ENABLED=0 RAY_enable_metrics_collection=0
AGENT_HTTP=({agent_http}); AGENT_GRPC=({agent_grpc}); METRICS=({metrics}); RUNTIME_ENV=({runtime_env})
NODE_MANAGER=({node_manager}); OBJECT_MANAGER=({object_manager}); MIN_WORKER=({min_worker}); MAX_WORKER=({max_worker})
echo "sym-pid-namespace $node pid=$$ processes_visible=$(ls -d /proc/[0-9]* | wc -l)"
{py} {shim} "$addr" --address "$SYM_HEAD:{gcs}" --min-nodes 2 \\
  --num-cpus=1 --object-store-memory={object_store} \\
  --dashboard-host=127.0.0.1 --dashboard-port={dashboard} --ray-client-server-port={client} \\
  --dashboard-agent-listen-port=${{AGENT_HTTP[$i]}} --dashboard-agent-grpc-port=${{AGENT_GRPC[$i]}} \\
  --metrics-export-port=${{METRICS[$i]}} --runtime-env-agent-port=${{RUNTIME_ENV[$i]}} \\
  --node-manager-port=${{NODE_MANAGER[$i]}} --object-manager-port=${{OBJECT_MANAGER[$i]}} \\
  --min-worker-port=${{MIN_WORKER[$i]}} --max-worker-port=${{MAX_WORKER[$i]}} \\
  -- {py} -c {job}
echo "sym-exit $node $?"
# what symmetric-run left in this namespace (shell builtins only: no process of our own)
left=0
for d in /proc/[0-9]*; do
  p=${{d#/proc/}}
  [ "$p" = 1 ] && continue
  read -r stat < "$d/stat" 2>/dev/null || continue
  rest=${{stat#*) }}; state=${{rest%% *}}
  [ "$state" = Z ] && continue
  read -r comm < "$d/comm" 2>/dev/null
  echo "sym-left $node pid=$p $comm"
  left=$((left + 1))
done
echo "sym-leftover $node $left"
rm -rf "$tmp"
"""

BATCH_SCRIPT = """\
#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=10
#SBATCH --output={out}
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
export SYM_HEAD=$(scontrol show node -o "$head" | sed 's/.*NodeAddr=\\([^ ]*\\).*/\\1/')
srun --nodes=2 --ntasks=2 --ntasks-per-node=1 unshare --pid --fork --mount-proc --kill-child /bin/bash {node_script}
"""

WORKER_PORTS = 20


@dataclass
class Baseline:
    """What the template did: seconds to its first line, and per node what it left."""

    first_line_s: float | None = None
    ended_s: float | None = None
    state: str = ""
    leftovers: dict[str, int] = field(default_factory=dict)
    left_names: list[str] = field(default_factory=list)
    namespace_pids: dict[str, int] = field(default_factory=dict)
    outside_left: int = 0
    output_tail: str = ""


#: inside the namespace: list what ``ray stop`` would scan (``psutil.process_iter()``, as
#: ray/scripts/scripts.py does, and /proc itself); exit 3 if it shows the outside decoy
#: (argv[1]) or anything the probe did not start (more than itself and its shell)
PROBE = """
import os, sys
import psutil
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
seen = sorted(p.pid for p in psutil.process_iter())
ray_like = [p.pid for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[-1] == "log_monitor.py"]
print(pids, seen, ray_like)
sys.exit(3 if int(sys.argv[1]) in pids + seen or ray_like or len(pids) > 2 or len(seen) > 2 else 0)
"""


def isolation_problem(py: str) -> str | None:
    """None if a process inside ``unshare --pid --fork --mount-proc`` cannot see (so ``ray
    stop`` there cannot end) a Ray-looking process outside; else why the baseline must not run.

    A decoy whose command line matches Ray's ``log_monitor.py`` runs outside; a probe in the
    namespace lists what ``ray stop`` would scan (``psutil.process_iter()``, and /proc) and
    must see neither the decoy nor anything it did not start. merlin never runs ``ray stop``
    itself, not even here: the template's own, inside each namespace, is the only one."""
    decoy = subprocess.Popen([py, "-c", "import time; time.sleep(120)", "log_monitor.py"])
    try:
        time.sleep(0.3)
        inner = f"{shlex.quote(py)} -c {shlex.quote(PROBE)} {decoy.pid}"
        try:
            res = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "/bin/sh", "-c", inner], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unshare failed: {exc}"
        if res.returncode == 3:
            return f"the namespace's /proc is not private (it lists {res.stdout.strip()[:200]}, decoy {decoy.pid})"
        if res.returncode != 0:
            return f"unshare --pid --fork --mount-proc failed (needs root/CAP_SYS_ADMIN): {res.stderr.strip()[-200:]}"
        if decoy.poll() is not None:
            return "the decoy outside the namespace ended"
        return None
    finally:
        decoy.kill()
        decoy.wait()


def free_range(n: int, avoid: set[int]) -> int:
    """The first port of ``n`` consecutive ports free right now (workers' range)."""
    import random
    import socket

    while True:
        base = random.randrange(30000, 60000 - n)
        if avoid & set(range(base, base + n)):
            continue
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()


def write_scripts(tmp: Path, py: str, first_line_job: str, object_store: int) -> Path:
    from merlin.clusters.net import free_ports

    ports = free_ports(3 + 6 * 2)
    gcs, dashboard, client = ports[:3]
    per = ports[3:]
    low = [free_range(WORKER_PORTS, avoid=set(ports)) for _ in range(2)]
    while low[1] in range(low[0] - WORKER_PORTS + 1, low[0] + WORKER_PORTS):
        low[1] = free_range(WORKER_PORTS, avoid=set(ports))
    shim = tmp / "sym_node.py"
    shim.write_text(NODE_SHIM)
    node = tmp / "sym_node.sh"
    node.write_text(
        NODE_SCRIPT.format(
            bindir=Path(py).parent,
            py=py,
            shim=shim,
            job=shlex.quote(first_line_job),
            gcs=gcs,
            dashboard=dashboard,
            client=client,
            object_store=object_store,
            agent_http=f"{per[0]} {per[1]}",
            agent_grpc=f"{per[2]} {per[3]}",
            metrics=f"{per[4]} {per[5]}",
            runtime_env=f"{per[6]} {per[7]}",
            node_manager=f"{per[8]} {per[9]}",
            object_manager=f"{per[10]} {per[11]}",
            min_worker=f"{low[0]} {low[1]}",
            max_worker=f"{low[0] + WORKER_PORTS - 1} {low[1] + WORKER_PORTS - 1}",
        )
    )
    batch = tmp / "symmetric.sbatch"
    batch.write_text(BATCH_SCRIPT.format(out=tmp / "sym-%j.out", node_script=node))
    return batch


def leftover_outside(job: str) -> int:
    """Processes anywhere on the machine still naming the template's temp dirs (read-only)."""
    from merlin.clusters import procs

    mark = f"/tmp/sym-{job}-"
    return sum(1 for p in procs.all_procs() if p.state not in ("Z", "X") and mark in procs.cmdline(p.pid))


def run_template(tmp: Path, py: str, first_line: str, first_line_job: str, object_store: int, timeout: float = 420) -> Baseline:
    """sbatch the template; the time to its first line, then wait for the job to end and
    read what each namespace's PID 1 listed as left."""
    batch = write_scripts(tmp, py, first_line_job, object_store)
    out = Baseline()
    t0 = time.perf_counter()
    job = subprocess.run(["sbatch", "--parsable", str(batch)], capture_output=True, text=True, check=True).stdout.strip()
    log = tmp / f"sym-{job}.out"
    try:
        while time.perf_counter() - t0 < timeout:
            text = log.read_text(errors="replace") if log.exists() else ""
            if out.first_line_s is None and first_line in text:
                out.first_line_s = time.perf_counter() - t0
            state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
            if state in ("FAILED", "COMPLETED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY") or (not state and text):
                out.state = state or "ended"
                out.ended_s = time.perf_counter() - t0
                break
            time.sleep(0.2)
        else:
            out.state = "timeout"
    finally:
        if out.state in ("", "timeout"):
            subprocess.run(["scancel", job])
            time.sleep(2)
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["sym-leftover"] and len(parts) == 3:
            out.leftovers[parts[1]] = int(parts[2])
        elif parts[:1] == ["sym-left"]:
            out.left_names.append(" ".join(parts[1:]))
        elif parts[:1] == ["sym-pid-namespace"]:
            out.namespace_pids[parts[1]] = int(parts[2].split("=")[1])
    out.outside_left = leftover_outside(job)
    out.output_tail = text[-1500:]
    return out


if __name__ == "__main__":  # the isolation check alone: `python benchmarks/_symmetric_run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    print(isolation_problem(sys.executable) or "isolated: `ray stop` in the namespace left the outside decoy alive")
