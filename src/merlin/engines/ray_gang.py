"""``python -m merlin.engines.ray_gang``: a gang attempt on a Ray cluster (docs/retries.md).

The Ray engine submits this as the attempt's job when the run asks for ``replicas``:
it runs inside the cluster (the only place merlin imports Ray for a run), reserves
one placement-group bundle per replica (``STRICT_SPREAD`` for ``placement=spread``,
one per node; ``PACK`` otherwise) and starts nothing until every bundle is placed:
together or not at all. Replica 0 picks a free port on its node: that and its host
are ``MERLIN_COORDINATOR_ADDRESS`` for every replica, beside ``MERLIN_REPLICA_INDEX``
and ``MERLIN_REPLICA_COUNT``. Each replica is an actor in its bundle running the
command (this job prints its output, each line prefixed ``[replica i]``); the first to end badly stops the others.
The replicas (host, pid, how each ended) are written to the run's latest attempt.
A replica killed from outside (SIGKILL, SIGTERM, its actor or node gone) is an
infrastructure end (``REPLICA_LOST``); a non-zero exit is the program's. On a
Ray-on-Slurm cluster the allocation is the cluster, so the same path serves Slurm.
With a memory limit, each replica's actor holds its command to it (``merlin.envs.memory_watch``,
as the local supervisor does): a replica ended for it fails the gang with ``MEMORY_LIMIT``, a
program failure, and the job's log says so in the launcher's words (``MEMORY_LINE``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.models import RunRecord, RunRequest

#: seconds the gang may wait for all its bundles before it gives up (nothing started)
READY_TIMEOUT = float(os.environ.get("MERLIN_GANG_READY_TIMEOUT") or 120)


def gang_job(body: dict[str, Any], record: RunRecord, request: RunRequest, command: list[str], python: str | None, workdir: str | None) -> None:
    """A gang's attempt is one job running :mod:`merlin.engines.ray_gang` (with the interpreter that has
    merlin on the cluster's nodes), which places a bundle per replica (the resources asked are each
    replica's) and starts each replica's ``command`` (through the env launcher when it has one) together,
    in ``workdir`` (None: where Ray starts its actors, a shipped working dir)."""
    spec = {"replicas": request.replicas, "placement": request.placement, "command": list(command), "workdir": workdir,
            "num_cpus": request.num_cpus, "num_gpus": request.num_gpus, "memory": request.memory, "resources": dict(request.resources)}  # fmt: skip
    from merlin.engines.ray_engine import entrypoint_for

    body["entrypoint"] = entrypoint_for([python or sys.executable, "-m", "merlin.engines.ray_gang"], workdir)
    body["runtime_env"]["env_vars"]["MERLIN_GANG_SPEC"] = json.dumps(spec)


class Replica:
    """One replica: runs the command in its bundle, dies with its actor (PR_SET_PDEATHSIG)."""

    def __init__(self) -> None:
        import threading

        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.watch: Any = None

    def address(self) -> str:
        """This node's address and a port free on it now: the coordinator's (replica 0 only)."""
        host = _node_ip()
        with socket.socket() as s:
            s.bind((host, 0))
            return f"{host}:{s.getsockname()[1]}"

    def start(self, command: list[str], workdir: str | None, env: dict[str, str], memory: int | None = None) -> dict[str, Any]:
        import threading

        from merlin.clusters.procs import load_prctl, set_parent_death_signal

        load_prctl()  # here, not in the child between fork and exec
        self.proc = subprocess.Popen(command, cwd=workdir, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=set_parent_death_signal)  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        if memory:
            from merlin.envs.memory_watch import MemoryWatch

            self.watch = MemoryWatch([self.proc.pid], int(memory)).__enter__()
        return {"host": _node_ip(), "pid": self.proc.pid}

    def memory_over(self) -> int | None:
        """The memory its command's tree used when the watch ended it (None: never over, or no limit)."""
        return self.watch.over if self.watch is not None else None

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self.lock:
                self.lines.append(raw.decode("utf-8", "replace"))

    def output(self) -> str:
        """What the command printed since the last call (the gang's job prints it, prefixed)."""
        with self.lock:
            text, self.lines = "".join(self.lines), []
        return text

    def wait(self) -> int:
        assert self.proc is not None
        rc = self.proc.wait()
        if self.watch is not None:
            self.watch.__exit__(None, None, None)  # its sampling stops; what it saw stays (memory_over)
        time.sleep(0.2)  # its last lines reach the reader
        return rc


def _node_ip() -> str:
    """The address of the node this actor runs on, as Ray knows it (its raylet's), not the address
    this host uses towards the head: nodes that share a machine (a test's Slurm nodes) differ."""
    import ray

    me = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == me and node.get("NodeManagerAddress"):
            return str(node["NodeManagerAddress"])
    return str(ray.util.get_node_ip_address())


def _forward(ray: Any, live: dict[int, Any]) -> None:
    """Print what each live replica's command printed, each line prefixed ``[replica i]``."""
    for i, actor in list(live.items()):
        try:
            text = ray.get(actor.output.remote(), timeout=10)
        except Exception:  # its actor is gone: what it printed last is lost with it
            live.pop(i, None)
            continue
        for line in text.splitlines():
            print(f"[replica {i}] {line}", flush=True)


def _record(state_root: str, run_id: str, attempt: int, change: Any, cause: str) -> None:
    """Write the replicas into the run's latest attempt (if it is still this one)."""
    from merlin.ledger import Ledger

    def mutate(r: Any) -> None:
        if len(r.attempts) == attempt:
            change(r.attempts[-1])

    try:
        Ledger(Path(state_root)).update(run_id, mutate, cause=cause)
    except Exception as exc:  # the ledger is the engine's to reconcile: the gang goes on without it
        print(f"merlin gang: could not record the replicas ({type(exc).__name__}: {exc})", file=sys.stderr)


def main() -> int:
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from merlin.ledger.failures import ended_from_outside
    from merlin.ledger.models import Replica as ReplicaRecord
    from merlin.ledger.paths import STATE_ROOT_ENV
    from merlin.ledger.status import RunStatus

    spec = json.loads(os.environ.pop("MERLIN_GANG_SPEC"))
    n, command, workdir = int(spec["replicas"]), list(spec["command"]), spec["workdir"]
    run_id, attempt, state_root = os.environ["MERLIN_RUN_ID"], int(os.environ["MERLIN_ATTEMPT"]), os.environ[STATE_ROOT_ENV]
    bundle: dict[str, float] = {"CPU": float(spec.get("num_cpus") or 0.1)}
    if spec.get("num_gpus"):
        bundle["GPU"] = float(spec["num_gpus"])
    if spec.get("memory"):
        bundle["memory"] = float(spec["memory"])
    bundle.update({k: float(v) for k, v in (spec.get("resources") or {}).items()})
    strategy = "STRICT_SPREAD" if spec.get("placement") == "spread" else "PACK"
    ray.init(address="auto", log_to_driver=True)
    pg = placement_group([dict(bundle) for _ in range(n)], strategy=strategy)
    print(f"merlin gang: {n} replicas, placement {strategy}, each {bundle}; waiting for every bundle", flush=True)
    if not pg.wait(timeout_seconds=READY_TIMEOUT):
        print(f"merlin gang: the cluster could not place {n} bundles of {bundle} ({strategy}) in {READY_TIMEOUT:g} s; nothing was started", flush=True)

        def unplaceable(att: Any) -> None:
            att.error_type = "GANG_UNPLACEABLE"
            att.error_message = f"the cluster could not place {n} replicas of {bundle} ({strategy}) within {READY_TIMEOUT:g} s"

        _record(state_root, run_id, attempt, unplaceable, "the gang could not be placed")
        return 3
    remote: Any = ray.remote(Replica)
    actors = [
        remote.options(max_restarts=0, max_concurrency=3, num_cpus=bundle["CPU"], num_gpus=bundle.get("GPU", 0),
                       **({"memory": int(bundle["memory"])} if "memory" in bundle else {}),
                       resources={k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")},
                       scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)).remote()
        for i in range(n)
    ]  # fmt: skip
    coordinator = ray.get(actors[0].address.remote())
    envs = [{"MERLIN_REPLICA_INDEX": str(i), "MERLIN_REPLICA_COUNT": str(n), "MERLIN_COORDINATOR_ADDRESS": coordinator} for i in range(n)]
    where = ray.get([a.start.remote(command, workdir, envs[i], spec.get("memory")) for i, a in enumerate(actors)])
    print(f"merlin gang: all {n} replicas started; coordinator {coordinator}", flush=True)

    def started(att: Any) -> None:
        att.replicas = [ReplicaRecord(index=i, status=RunStatus.RUNNING, host=w["host"], pid=w["pid"]) for i, w in enumerate(where)]

    _record(state_root, run_id, attempt, started, f"gang of {n} started")
    waits = {a.wait.remote(): i for i, a in enumerate(actors)}
    ends: dict[int, tuple[int | None, str]] = {}
    first: int | None = None
    lost = False
    over: int | None = None
    live = dict(enumerate(actors))
    while waits:
        done, _ = ray.wait(list(waits), num_returns=1, timeout=0.5)
        _forward(ray, live)
        if not done:
            continue
        i = waits.pop(done[0])
        try:
            rc: int | None = ray.get(done[0])
            how = f"exit code {rc}" if rc is not None and rc >= 0 else f"killed by signal {signal.Signals(-(rc or 0)).name}"
        except Exception as exc:  # the actor (or its node) died
            rc, how = None, f"lost: {type(exc).__name__}"
        if first is not None:
            ends[i] = (rc, f"stopped: replica {first} ended first")
            continue
        ends[i] = (rc, how)
        if rc != 0:
            first = i
            over = ray.get(actors[i].memory_over.remote()) if rc is not None and spec.get("memory") else None
            lost = over is None and (rc is None or ended_from_outside(rc))  # None: its actor died with it
            for j, a in enumerate(actors):
                if j != i:
                    live.pop(j, None)
                    ray.kill(a)  # its command dies with the actor's worker
    _forward(ray, live)
    code = 0 if first is None else ends[first][0]
    too_big = None
    if first is not None and over is not None:
        from merlin.envs.launch import MEMORY_LINE
        from merlin.envs.memory_watch import over_text

        too_big = over_text(over, int(spec["memory"]))
        print(f"merlin gang: {MEMORY_LINE}replica {first}: {too_big}", flush=True)  # the engine reads it (MEMORY_LIMIT)

    def ended(att: Any) -> None:
        for rep in att.replicas:
            rc, how = ends.get(rep.index, (None, "unknown"))
            rep.exit_code, rep.message = rc, how
            rep.status = RunStatus.SUCCEEDED if rc == 0 else RunStatus.FAILED
        if first is not None and lost:
            att.error_type = "REPLICA_LOST"
            att.error_message = f"replica {first} was {ends[first][1]}; the others were stopped"
        elif too_big is not None:
            att.error_type = "MEMORY_LIMIT"
            att.error_message = f"replica {first}: {too_big}; the others were stopped"

    _record(state_root, run_id, attempt, ended, "the gang ended")
    print(f"merlin gang: ended ({'every replica succeeded' if first is None else f'replica {first}: {ends[first][1]}; the others were stopped'})", flush=True)
    if first is None:
        return 0
    return 1 if code is None or code <= 0 else code


if __name__ == "__main__":
    sys.exit(main())
