"""One Ray node inside a Slurm (or PBS) allocation: run by merlin's batch script.

``python -m merlin.clusters.slurm_node head|worker --state-dir D --index I ...``

Why a helper and not a bash one-liner: it picks this node's ports from the
allocation's block and checks each for collisions on the node, gives the node
a short private temp dir, passes the allocation's CPUs/GPUs/memory to Ray
(never Ray's own detection), runs ``ray start --block`` as its child (so the
scheduler's SIGTERM ends Ray's whole tree), and writes the handshake files
merlin waits on: ``head.json`` (address and ports, once GCS answers) and
``node-<I>.json`` (pids). The head's helper is also the idle watchdog.

Standard library only (plus merlin's small procs/net helpers, and ``Layout`` for the ledger's paths).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from merlin.clusters.port_plan import NODE_PORTS

#: ports per node: 11 named + a worker range
PORTS_PER_NODE = 64
WORKER_PORTS = 40
BLOCK_LO, BLOCK_HI = 20000, 60000
NAMED = NODE_PORTS  # the ports of a node's block, in order
HANDSHAKE_TIMEOUT = 300.0
#: seconds within which a worker's `ray start --block` that exits is taken as a failed join and
#: started again: Ray gives a node a fixed 30 s to register ("node timed out during startup"),
#: which a loaded host misses; a worker that has run this long has joined
JOIN_WINDOW = 90.0
#: tries of a worker's `ray start` before its helper gives up and says so in its handshake file
JOIN_TRIES = 5
#: how many times the head's `ray start` is started in all when it exits before its jobs API answers
#: (Ray's 30 s registration window missed on a loaded host; CI met it twice in a row on an SSH head)
HEAD_TRIES = 3
#: the file merlin writes beside the handshake files: inventory host -> {pool: items}
HOSTED_ITEMS = "hosted_items.json"


def block_base(job_id: str, nodes: int, attempt: int = 0) -> int:
    """A per-allocation port block derived from the job id (so two allocations rarely meet)."""
    span = PORTS_PER_NODE * max(nodes, 1)
    slots = (BLOCK_HI - BLOCK_LO) // span
    seq = int("".join(ch for ch in job_id if ch.isdigit()) or "0")
    return BLOCK_LO + ((seq * 7919 + attempt) % slots) * span


def node_ports(base: int, index: int) -> dict[str, int]:
    start = base + index * PORTS_PER_NODE
    ports = {name: start + i for i, name in enumerate(NAMED)}
    ports["min_worker"] = start + len(NAMED) + 1
    ports["max_worker"] = ports["min_worker"] + WORKER_PORTS - 1
    return ports


def all_ports(ports: dict[str, int]) -> list[int]:
    out = [ports[n] for n in NAMED]
    return out + list(range(ports["min_worker"], ports["max_worker"] + 1))


def pick_ports(job_id: str, nodes: int, index: int, host: str) -> dict[str, int]:
    """This node's ports from the allocation's block; moves to another block on any collision."""
    from merlin.clusters.net import port_free

    for attempt in range(64):
        ports = node_ports(block_base(job_id, nodes, attempt), index)
        busy = [p for p in all_ports(ports) if not port_free(p, host)]
        if not busy:
            return ports
        print(f"merlin: ports {busy[:5]} busy on this node; trying the next block", file=sys.stderr, flush=True)
    raise SystemExit("merlin: no free port block on this node")


def slurm_node_info(node: str) -> dict[str, str]:
    if not (shutil.which("scontrol") and os.environ.get("SLURM_JOB_ID")):
        return {}
    out = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True, text=True).stdout
    return dict(w.split("=", 1) for w in out.split() if "=" in w)


def node_addr(node: str) -> str:
    """``NodeAddr`` of a Slurm node (``scontrol show node -o``); the name resolved elsewhere."""
    addr = slurm_node_info(node).get("NodeAddr")
    if addr:
        return addr
    try:
        return socket.gethostbyname(node)
    except OSError:
        return node


def allocation_resources(node: str = "") -> dict[str, float]:
    """CPUs, GPUs and memory Slurm/PBS gave this node (cgroup v2 limits are not Ray's to guess).

    Without ``--mem`` Slurm sets no SLURM_MEM_PER_NODE; the node's configured
    RealMemory is then the ceiling, still the scheduler's number, not Ray's."""
    env = os.environ
    cpus = env.get("SLURM_CPUS_ON_NODE") or env.get("NCPUS") or env.get("MERLIN_NODE_CPUS")
    gpus = env.get("SLURM_GPUS_ON_NODE") or env.get("MERLIN_NODE_GPUS")
    if gpus is None and env.get("CUDA_VISIBLE_DEVICES") not in (None, "", "NoDevFiles"):
        gpus = str(len(env["CUDA_VISIBLE_DEVICES"].split(",")))
    mem_mb = env.get("SLURM_MEM_PER_NODE") or env.get("MERLIN_NODE_MEM_MB")
    if not mem_mb and node:
        real = slurm_node_info(node).get("RealMemory", "")
        mem_mb = real if real.isdigit() and int(real) > 1 else None
    out: dict[str, float] = {"num_cpus": float(cpus or 1), "num_gpus": float(gpus or 0)}
    if mem_mb:
        out["memory"] = float(mem_mb) * 1024 * 1024
    return out


def node_names(node: str, addr: str) -> set[str]:
    """The names an inventory item's ``host`` may give this node: its Slurm node name
    (or ssh host), its NodeAddr, and the machine's host names."""
    fqdn = socket.getfqdn()
    return {node, addr, socket.gethostname(), socket.gethostname().split(".")[0], fqdn} - {""}


def hosted_resources(path: str | None, names: set[str]) -> dict[str, float]:
    """Ray custom resources for the inventory items attached to this node: one unit per
    item, named by its pool (the same rule as a local cluster's, merlin.leases.runs)."""
    if not path:
        return {}
    try:
        by_host = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for host in sorted(names & set(by_host)):
        for pool, count in by_host[host].items():
            out[pool] = out.get(pool, 0.0) + float(count)
    return out


def node_files(state_dir: Path) -> list[dict]:
    """The ``node-<i>.json`` handshake files in ``state_dir`` (each node's pids, temp dir,
    address), by index; a file being written or unreadable is skipped."""
    out = []
    for f in sorted(Path(state_dir).glob("node-*.json")):
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def write_json(path: Path, data: dict) -> None:
    """A handshake file, written whole through :mod:`merlin.atomic` (merlin polls it from the submit host)."""
    from merlin.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2))


def ticks(pid: int) -> int | None:
    from merlin.clusters import procs

    info = procs.proc_info(pid)
    return info.start_ticks if info else None


def ray_bin() -> list[str]:
    script = Path(sys.executable).parent / "ray"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ray.scripts.scripts"]


def ray_env(token_file: str | None, node_ip: str = "") -> dict[str, str]:
    """Ray's environment: none of the caller's RAY_* (a remote shell or a test may carry
    another cluster's), usage stats and metrics collection off (fewer moving parts at
    start), token auth on when a token file is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_enable_metrics_collection"] = "0"
    env["RAY_DISABLE_IMPORT_WARNING"] = "1"
    if node_ip in ("127.0.0.1", "localhost"):
        # `ray start --node-ip-address=127.0.0.1` is rewritten to the machine's routable
        # address (resolve_ip_for_localhost) unless Ray's "cluster" mode is off; the node
        # then registers under an address merlin never checked ports on, and on a busy
        # host the raylet misses Ray's 30 s "node timed out during startup" window.
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if token_file:
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN_PATH"] = token_file
    else:
        env["RAY_AUTH_MODE"] = "disabled"
    return env


def head_ready(dashboard_port: int, token_file: str | None) -> bool:
    """The head's jobs API answers (with the token) on its 127.0.0.1 and GCS lists the
    head node ALIVE: the dashboard answers before the raylet registers, and `ray start`
    still fails ("node timed out during startup") if the raylet never does."""
    import urllib.request

    headers = {}
    if token_file:
        headers["Authorization"] = "Bearer " + Path(token_file).read_text(encoding="utf-8").strip()
    base = f"http://127.0.0.1:{dashboard_port}"
    try:
        with urllib.request.urlopen(urllib.request.Request(base + "/api/version", headers=headers), timeout=2.0) as resp:
            if resp.status != 200:
                return False
        with urllib.request.urlopen(urllib.request.Request(base + "/api/v0/nodes?limit=10", headers=headers), timeout=5.0) as resp:
            nodes = json.loads(resp.read())["data"]["result"]["result"]
        return any(n.get("state") == "ALIVE" for n in nodes)
    except Exception:
        return False


def recorded_active(state_root: Path, cluster: str) -> bool:
    from merlin.errors import MerlinError
    from merlin.ledger.paths import Layout

    try:
        path = Layout(state_root).cluster_record(cluster)
        return json.loads(path.read_text(encoding="utf-8")).get("status") == "active"
    except (OSError, ValueError, MerlinError):  # MerlinError: a name that is no cluster's
        return False


def active_runs(state_root: Path, cluster: str) -> int:
    """Runs of ``cluster`` its Ray has (``on_its_engine``), read straight from run records."""
    from merlin.ledger.paths import Layout
    from merlin.ledger.status import on_its_engine

    layout = Layout(state_root)
    n = 0
    for rec in layout.runs.glob(f"*/{Layout.RECORD_NAME}"):
        try:
            data = json.loads(rec.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (data.get("cluster") or {}).get("name") == cluster and on_its_engine(str(data.get("status")), data.get("metadata")):
            n += 1
    for lease in layout.lease_records():
        try:
            data = json.loads(lease.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("cluster") == cluster and data.get("status") == "active":
            n += 1
    return n


def end_allocation(job_id: str, cancel: str = "scancel") -> None:
    subprocess.run([cancel, job_id], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="merlin-node")
    ap.add_argument("role", choices=("head", "worker"))
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--node", default=None, help="node name (default: $SLURMD_NODENAME or hostname)")
    ap.add_argument("--token-file", default=None)
    ap.add_argument("--object-store-memory", type=int, default=None)
    ap.add_argument("--resources", default=None, help="JSON custom resources for this node")
    ap.add_argument("--hosted-items", default=None, help=f"the {HOSTED_ITEMS} merlin wrote: inventory host -> {{pool: items}}")
    ap.add_argument("--idle-timeout", type=float, default=None)
    ap.add_argument("--state-root", default=None)
    ap.add_argument("--cluster", default=None)
    ap.add_argument("--job-id", default=None)
    ap.add_argument("--cancel", default="scancel", help="the scheduler's cancel command (scancel, qdel)")
    ap.add_argument("--head", default=None, help="worker: the head's GCS ADDR:PORT (ssh kind: no shared state dir)")
    ap.add_argument("--own-session", action="store_true", help="lead a new session (ssh kind: stop kills the group)")
    args = ap.parse_args(argv)

    state_dir = Path(args.state_dir)
    if args.own_session:
        os.setsid()
    job_id = args.job_id or os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID", "0")
    node = args.node or os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]
    addr = node_addr(node)
    temp_dir = Path("/tmp") / f"mrl-{''.join(c for c in job_id if c.isalnum())[:12]}-{args.index}"
    shutil.rmtree(temp_dir, ignore_errors=True)
    temp_dir.mkdir(mode=0o700, parents=True)
    ports = pick_ports(job_id, args.nodes, args.index, addr)
    res = allocation_resources(node)

    argv_ray = ray_bin() + ["start", "--block", f"--node-ip-address={addr}", f"--temp-dir={temp_dir}"]
    head: dict = {}
    if args.role == "head":
        argv_ray += [
            "--head",
            f"--port={ports['gcs']}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={ports['dashboard']}",
            "--include-dashboard=true",
            f"--ray-client-server-port={ports['client_server']}",
        ]
    elif args.head:
        argv_ray.append(f"--address={args.head}")
    else:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        head_file = state_dir / "head.json"
        while not head_file.is_file():
            if time.monotonic() > deadline:
                print(f"merlin: no head.json within {HANDSHAKE_TIMEOUT:.0f}s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        head = json.loads(head_file.read_text(encoding="utf-8"))
        argv_ray.append(f"--address={head['address']}:{head['ports']['gcs']}")
    argv_ray += [
        f"--dashboard-agent-listen-port={ports['dashboard_agent_listen']}",
        f"--dashboard-agent-grpc-port={ports['dashboard_agent_grpc']}",
        f"--metrics-export-port={ports['metrics_export']}",
        f"--runtime-env-agent-port={ports['runtime_env_agent']}",
        f"--node-manager-port={ports['node_manager']}",
        f"--object-manager-port={ports['object_manager']}",
        f"--min-worker-port={ports['min_worker']}",
        f"--max-worker-port={ports['max_worker']}",
        f"--num-cpus={int(res['num_cpus'])}",
        f"--num-gpus={int(res['num_gpus'])}",
        "--disable-usage-stats",
        # one process fewer per node at start: the log monitor streams worker output to
        # drivers; merlin's runs are jobs, whose logs the jobs API reads from their files
        "--include-log-monitor=false",
        "--log-style=record",
        "--log-color=false",
    ]
    if "memory" in res:
        argv_ray.append(f"--memory={int(res['memory'])}")
    if args.object_store_memory:
        argv_ray.append(f"--object-store-memory={args.object_store_memory}")
    custom = {**hosted_resources(args.hosted_items, node_names(node, addr)), **json.loads(args.resources or "{}")}
    if custom:
        argv_ray.append(f"--resources={json.dumps(custom, sort_keys=True)}")

    env = ray_env(args.token_file, addr)
    ray = subprocess.Popen(argv_ray, env=env, cwd=str(temp_dir), stdin=subprocess.DEVNULL)

    stopping: list[int] = []
    stopped_at: list[float] = []

    def forward(signum, _frame):  # scancel/qdel: let `ray start --block` end its own tree
        stopping.append(signum)
        stopped_at.append(time.monotonic())
        try:
            ray.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    me = {
        "role": args.role,
        "index": args.index,
        "node": node,
        "address": addr,
        "ports": ports,
        "temp_dir": str(temp_dir),
        "helper_pid": os.getpid(),
        "helper_ticks": ticks(os.getpid()),
        "ray_pid": ray.pid,
        "ray_ticks": ticks(ray.pid),
        "resources": res,
        "custom_resources": custom,
        "job_id": job_id,
    }
    # the handshake file at once, not after the worker's first 20 s: merlin counts a cluster
    # active only when Ray lists every node ALIVE, and this file only says which pids are ours
    write_json(state_dir / f"node-{args.index}.json", me)
    if args.role == "worker":
        # a worker that raced the head's registration, or missed Ray's 30 s registration window on a
        # loaded host, exits within JOIN_WINDOW: start it again (bounded), and say its new pid in the
        # handshake file; after the last try, say that it failed there too (merlin stops waiting)
        for tried in range(1, JOIN_TRIES + 1):
            try:
                if ray.wait(timeout=JOIN_WINDOW) == 0:
                    break
            except subprocess.TimeoutExpired:
                break
            if stopping:  # it ended because the allocation is ending: never start it again
                return ray.returncode or 0
            if tried == JOIN_TRIES:
                me["failed"] = f"its `ray start` exited {ray.returncode} {tried} times without joining the head (Ray's own error is in the allocation's output in {state_dir})"
                write_json(state_dir / f"node-{args.index}.json", me)
                print(f"merlin: worker on {node} gave up: {me['failed']}", file=sys.stderr, flush=True)
                return ray.returncode or 1
            print("merlin: worker did not join yet; starting it again", file=sys.stderr, flush=True)
            end_remains(temp_dir)
            ray = subprocess.Popen(argv_ray, env=env, cwd=str(temp_dir), stdin=subprocess.DEVNULL)
            me.update(ray_pid=ray.pid, ray_ticks=ticks(ray.pid))
            write_json(state_dir / f"node-{args.index}.json", me)
    if args.role == "head":
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        # the handshake: the head node is registered once its jobs API answers (the
        # dashboard starts after GCS and the head's raylet); only then may workers join
        retries = HEAD_TRIES - 1
        while not head_ready(ports["dashboard"], args.token_file):
            if ray.poll() is not None and retries and time.monotonic() < deadline:
                # e.g. Ray's fixed 30 s "node timed out during startup" on a loaded host:
                # what it left of the node is ended first (end_remains), so the same ports are free again
                retries -= 1
                print(f"merlin: the Ray head exited ({ray.returncode}) before its jobs API answered; starting it again", file=sys.stderr, flush=True)
                end_remains(temp_dir)
                ray = subprocess.Popen(argv_ray, env=env, cwd=str(temp_dir), stdin=subprocess.DEVNULL)
                me.update(ray_pid=ray.pid, ray_ticks=ticks(ray.pid))
                write_json(state_dir / f"node-{args.index}.json", me)
            elif ray.poll() is not None or time.monotonic() > deadline:
                print("merlin: the Ray head did not come up", file=sys.stderr)
                return ray.wait() or 1
            time.sleep(0.2)
        write_json(state_dir / "head.json", me)

    idle_since = time.monotonic()
    state_root = Path(args.state_root) if args.state_root else None
    while True:
        try:
            rc = ray.wait(timeout=0.2 if stopping else 2.0)
            return rc
        except subprocess.TimeoutExpired:
            pass
        if stopped_at and time.monotonic() - stopped_at[0] >= STOP_WAIT:
            kill_tree(ray.pid)
            continue
        if args.role == "head" and args.idle_timeout and state_root and args.cluster:
            if active_runs(state_root, args.cluster) or not recorded_active(state_root, args.cluster):
                idle_since = time.monotonic()  # the idle clock runs only once merlin saw the cluster active
            elif time.monotonic() - idle_since >= args.idle_timeout:
                write_json(state_dir / "idle.json", {"idle_seconds": args.idle_timeout, "time": time.time()})
                print(f"merlin: no active run for {args.idle_timeout:.0f}s; ending the allocation", file=sys.stderr, flush=True)
                end_allocation(job_id, args.cancel)
                args.idle_timeout = None  # once


#: seconds `ray start --block` gets to end its tree after the scheduler's SIGTERM before SIGKILL: its
#: SIGTERM handler exits through the interpreter's shutdown, which can wait on its threads for ever
#: (a Slurm cluster's stop then took the scheduler's KillWait and merlin's grace twice: 15 s here)
STOP_WAIT = 1.0


def end_remains(temp_dir: Path) -> int:
    """End what a failed ``ray start`` left of its node (its GCS, raylet, agents: reparented to init when
    it exited, each naming ``temp_dir``) before the next try takes the same ports; how many there were."""
    from merlin.clusters import teardown

    ended = teardown.end(lambda: teardown.members({}, [str(temp_dir)]), grace=2.0)
    if ended.left:
        print(f"merlin: ended {len(ended.left)} processes the last try left", file=sys.stderr, flush=True)
    return len(ended.left)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it."""
    from merlin.clusters import procs

    tree = procs.descendants([pid]) | {pid}
    procs.signal_pids(tree, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
