"""What Slurm and PBS clusters share: the handshake, readiness, observation and stop.

A scheduler-backed kind supplies four things (render the batch script,
submit it, query one job, cancel it); this base turns them into the
:class:`merlin.clusters.base.ClusterBackend` protocol:

* ``start`` writes merlin's own batch script into the cluster's state dir
  (kept there, so a person can read exactly what ran), submits it, and records
  the cluster ``queued``. With ``wait`` it observes until ``active``.
* readiness is a handshake, never a sleep: the head's helper writes
  ``head.json`` once GCS answers, workers join, and merlin asks Ray's API how
  many nodes are alive; ``active`` means all of them.
* ``observe`` is one scheduler query plus one HTTP call to the head.
* ``stop`` cancels the job, then verifies by the recorded pids (with start
  times) and the node temp dirs -- never by process name -- that nothing is
  left, and says what it had to kill.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from merlin.atomic import atomic_write_bytes, atomic_write_text, dir_mode, make_dir
from merlin.clusters import procs, teardown
from merlin.clusters.base import ClusterStatus, LockedObservation, can_cluster_transition, check_env_cache, unanswered_record
from merlin.clusters.hosted import node_custom_resources
from merlin.clusters.slurm_node import HOSTED_ITEMS, node_files
from merlin.errors import BadInput, Blocked, MerlinError, RunFailed
from merlin.nextsteps import Action, step

Progress = Callable[[str], None]
WAIT_TIMEOUT = 600.0
POLL = 0.25


@dataclass
class SchedJob:
    """One job as the scheduler reports it, in merlin's words."""

    job_id: str
    state: str  # the scheduler's own word (PENDING, R, CANCELLED, ...)
    phase: str  # pending | running | ending | ended
    reason: str = ""
    nodes: list[str] = field(default_factory=list)
    end_time: datetime | None = None
    walltime_hit: bool = False
    cancelled: bool = False



class BatchClusters(LockedObservation):
    """Base of :class:`SlurmBackend` and :class:`PbsBackend`."""

    kind = "batch"
    scheduler = "the scheduler"
    cancel_word = "cancel"
    #: what to install when the scheduler's commands are missing (each kind says its own)
    install_hint = "install the scheduler's client commands"
    #: nodes get the inventory items attached to them as Ray custom resources (merlin.clusters.hosted)
    places_hosted_items = True
    #: the handshake needs the state root on a filesystem every node sees: run env specs are read there
    nodes_see_state_root = True
    #: unset ``env_cache``: the state root's own (``Layout.env_cache``), beside it, so every node sees it
    default_env_cache = None

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def _run(self, argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
        """One scheduler command (sbatch, squeue, qsub, ...): blocked with the install hint when it is missing."""
        if shutil.which(argv[0]) is None:
            raise Blocked(f"`{argv[0]}` is not on PATH: {self.install_hint}")
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60)

    # ------------------------------------------------------- scheduler hooks

    def parse_options(self, options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def render_script(self, *, name: str, nodes: int, state_dir: Path, node_cmd: list[str], options: dict[str, Any]) -> str:
        raise NotImplementedError

    def submit_script(self, script: Path, state_dir: Path) -> str:
        raise NotImplementedError

    def query(self, job_id: str) -> SchedJob | None:
        raise NotImplementedError

    def cancel(self, job_id: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ start

    def node_command(self, name: str, nodes: int, state_dir: Path, token_file: Path, options: dict[str, Any]) -> list[str]:
        """argv of merlin's node helper (the same interpreter as this merlin)."""
        argv = [
            sys.executable,
            "-m",
            "merlin.clusters.slurm_node",
            "--state-dir",
            str(state_dir),
            "--nodes",
            str(nodes),
            "--token-file",
            str(token_file),
            "--state-root",
            str(self.ledger.root),
            "--cluster",
            name,
        ]
        if options.get("object_store_memory"):
            argv += ["--object-store-memory", str(int(options["object_store_memory"]))]
        return argv

    def start(self, name: str, *, wait: bool = True, progress: Progress | None = None, **options: Any) -> tuple[Any, bool]:
        from merlin.clock import utcnow
        from merlin.clusters.auth import check_token_file, generate_token_file

        progress = progress or (lambda _m: None)
        layout = self.ledger.layout
        layout.cluster_record(name)  # validates the name
        timeout = float(options.pop("timeout", None) or WAIT_TIMEOUT)
        hosted_items = options.pop("hosted_items", None) or {}
        env_cache = check_env_cache(options.pop("env_cache", None))
        idle_timeout = options.get("idle_timeout")
        if idle_timeout is not None and float(idle_timeout) <= 0:
            raise BadInput(f"`idle_timeout` {idle_timeout}: expected a positive duration", argument="idle_timeout")
        nodes, opts = self.parse_options(dict(options))
        with self.ledger.cluster_lock(name):
            existing = self.ledger.read_cluster(name)
            if existing is not None and existing.status not in ("stopped", "failed", "expired"):
                if existing.kind != self.kind:
                    raise BadInput(
                        f"cluster '{name}' is a live {existing.kind} cluster; stop it first", next_steps=[step(Action.STOP_CLUSTER, name=name)]
                    )
                existing = self._observe_locked(existing)
                if existing.status not in ("stopped", "failed", "expired"):
                    return (self.wait_active(existing, timeout, progress) if wait else existing), False
            state_dir = layout.cluster_state_dir(name)
            make_dir(state_dir, private=True)
            for stale in list(state_dir.glob("node-*.json")) + [state_dir / n for n in ("head.json", "idle.json", HOSTED_ITEMS)]:
                stale.unlink(missing_ok=True)
            token = layout.cluster_token(name)
            if not token.is_file():
                generate_token_file(token)
            check_token_file(token)
            node_cmd = self.node_command(name, nodes, state_dir, token, opts)
            if idle_timeout:
                node_cmd += ["--idle-timeout", str(float(idle_timeout))]
            if hosted_items:
                # each node's helper picks the items whose host names it (node name, NodeAddr, hostname)
                atomic_write_text(state_dir / HOSTED_ITEMS, json.dumps(hosted_items, indent=2, sort_keys=True))
                node_cmd += ["--hosted-items", str(state_dir / HOSTED_ITEMS)]
            script = state_dir / "batch.sh"
            script_text = self.render_script(name=name, nodes=nodes, state_dir=state_dir, node_cmd=node_cmd, options=opts)
            atomic_write_bytes(script, script_text.encode("utf-8"), mode=dir_mode())  # executable: a directory's bits
            job_id = self.submit_script(script, state_dir)
            record = unanswered_record(
                name,
                self.kind,
                ClusterStatus.QUEUED,
                str(token),
                requested={"nodes": nodes, **{k: v for k, v in opts.items() if v not in (None, [], ())}},
                options={k: v for k, v in {**options, "env_cache": env_cache}.items() if v not in (None, [], ())},
                scheduler_job_id=job_id,
                python=sys.executable,  # the nodes' helper runs with it (node_command): it has merlin there
                env_cache=env_cache,
                idle_timeout=float(idle_timeout) if idle_timeout else None,
                state_dir=str(state_dir),
                start_log=str(state_dir / f"job-{job_id}.out"),
                started_at=utcnow(),
                message=f"submitted to {self.scheduler} as job {job_id}",
            )
            self.ledger.write_cluster(record)
            progress(f"cluster '{name}': {self.scheduler} job {job_id} submitted ({script})")
        record = self.observe(record)
        if wait:
            record = self.wait_active(record, timeout, progress)
        return record, True

    def ended(self, record) -> str | None:
        """Why the allocation of a cluster whose head does not answer is over, asked of the scheduler
        (its end is recorded on the way, its runs lost: :meth:`_ended`); None while it is not. What
        the Ray engine asks before it calls such a cluster's runs unobservable (a `scancel` from
        outside, a walltime, a preemption, with nobody looking at the cluster)."""
        try:
            fresh = self.observe(record)
        except (MerlinError, OSError, subprocess.SubprocessError):  # the scheduler cannot be asked (down, missing): cannot tell
            return None
        return f"its {self.kind} allocation ended ({fresh.stop_reason or fresh.status})" if ClusterStatus(fresh.status).is_terminal() else None

    def wait_active(self, record, timeout: float, progress: Progress) -> Any:
        """Observe until ``active`` (or an end); progress lines only when something changes."""
        t0 = time.monotonic()
        last = None
        while True:
            record = self.observe(record)
            line = record.message
            if record.status == "queued":
                el = int(time.monotonic() - t0)
                why = f" ({record.scheduler_reason})" if record.scheduler_reason else ""
                line = f"queued{why} {el // 60}:{el % 60:02d}"
            if line != last:
                progress(line)
                last = line
            if record.status == "active":
                return record
            if ClusterStatus(record.status).is_terminal():
                raise RunFailed(f"cluster '{record.name}' did not become active: {record.message}")
            gave_up = [n for n in node_files(Path(record.state_dir)) if n.get("failed")] if record.state_dir else []
            if gave_up:  # a node's helper stopped trying: waiting longer cannot help
                n = gave_up[0]
                raise RunFailed(
                    f"cluster '{record.name}' did not become active: node {n.get('node')} ({n.get('address')}): {n['failed']}; "
                    "it stays submitted: look at it, or stop it",
                    next_steps=[step(Action.CLUSTER_STATUS, name=record.name), step(Action.STOP_CLUSTER, name=record.name)],
                )
            if time.monotonic() - t0 > timeout:
                raise RunFailed(
                    f"cluster '{record.name}' not active after {timeout:.0f}s ({record.message}); it stays submitted: look at it, or stop it",
                    next_steps=[step(Action.CLUSTER_STATUS, name=record.name), step(Action.STOP_CLUSTER, name=record.name)],
                )
            time.sleep(POLL)

    # ---------------------------------------------------------------- observe

    def _move(self, record, status: str, message: str) -> None:
        if record.status != status and not can_cluster_transition(record.status, status):
            return
        record.status = status
        record.message = message

    def _observe_locked(self, record) -> Any:
        from merlin.clock import utcnow

        job = self.query(record.scheduler_job_id)
        if job is not None and job.phase == "ending":  # Slurm COMPLETING: the final state comes next
            record.message = f"allocation ending ({self.scheduler} state {job.state})"
            self.ledger.write_cluster(record)
            return record
        if job is None or job.phase == "ended":
            return self._ended(record, job)
        if job.nodes:
            record.nodes = job.nodes
        if job.end_time:
            record.walltime_end = job.end_time
        if job.phase == "pending":
            record.scheduler_reason = job.reason or None
            self._move(record, "queued", f"queued in {self.scheduler} as job {record.scheduler_job_id} ({job.reason or 'no reason given'})")
            self.ledger.write_cluster(record)
            return record
        record.scheduler_reason = None
        self._load_handshake(record)
        if not record.address:
            self._move(record, "starting", f"allocated on {','.join(job.nodes) or '?'}; waiting for the Ray head")
            self.ledger.write_cluster(record)
            return record
        want = int(record.requested.get("nodes") or 1)
        alive, detail = self._alive_nodes(record)
        if alive >= want and len(record.node_temp_dirs) < want:
            # Ray can see a worker before its helper wrote node-<i>.json: wait for it, so that
            # stop knows every node's pids and temp dir (it verifies by them, never by name)
            alive, detail = len(record.node_temp_dirs), "waiting for the node helpers' handshake files"
        if alive >= want:
            if record.status != "active":
                self._activate(record)
            self._move(record, "active", f"active: {alive}/{want} nodes; jobs API {record.address}")
        elif record.status == "active":
            record.message = f"active but only {alive}/{want} nodes answer ({detail})"
        else:
            self._move(record, "starting", f"starting {alive}/{want} nodes ({detail})" if detail else f"starting {alive}/{want} nodes")
        record.updated_at = utcnow()
        self.ledger.write_cluster(record)
        return record

    def _load_handshake(self, record) -> None:
        """Fill ports, address, temp dirs and pids from the node helpers' files."""
        from merlin.ledger.models import ClusterPorts, ClusterProcess

        state_dir = Path(record.state_dir)
        head_file = state_dir / "head.json"
        if not head_file.is_file():
            return
        try:
            head = json.loads(head_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        p = head["ports"]
        record.ports = ClusterPorts(
            gcs=p["gcs"],
            dashboard=p["dashboard"],
            client_server=p.get("client_server"),
            dashboard_agent_listen=p.get("dashboard_agent_listen"),
            dashboard_agent_grpc=p.get("dashboard_agent_grpc"),
            metrics_export=p.get("metrics_export"),
            runtime_env_agent=p.get("runtime_env_agent"),
            node_manager=p.get("node_manager"),
            object_manager=p.get("object_manager"),
        )
        record.head_address = head["address"]
        record.gcs_address = f"{head['address']}:{p['gcs']}"
        record.address = f"http://127.0.0.1:{p['dashboard']}"
        record.dashboard_url = record.address
        record.temp_dir = head["temp_dir"]
        if not _is_local(head["address"]):
            record.tunnel_command = f"ssh -N -L 127.0.0.1:{p['dashboard']}:127.0.0.1:{p['dashboard']} {head['node']}"
        temp_dirs, processes = [], []
        for node in node_files(state_dir):
            temp_dirs.append(node["temp_dir"])
            for key in ("helper", "ray"):
                if node.get(f"{key}_pid") and node.get(f"{key}_ticks") is not None:
                    processes.append(ClusterProcess(pid=node[f"{key}_pid"], start_ticks=node[f"{key}_ticks"], name=f"{key}@{node['node']}"))
        record.node_temp_dirs = temp_dirs
        record.processes = processes

    def _alive_nodes(self, record) -> tuple[int, str]:
        """One call to the head's API: how many Ray nodes are alive."""
        from merlin.clusters.auth import headers_for
        from merlin.clusters.net import get_json

        try:
            data = get_json(record.address, "/api/v0/nodes?limit=1000&detail=true", headers_for(record.auth, record.name), timeout=10.0)
        except Exception as exc:
            return 0, f"head API not answering yet: {type(exc).__name__}"
        nodes = ((data.get("data") or {}).get("result") or {}).get("result") or []
        alive = [n for n in nodes if n.get("state") == "ALIVE"]
        res: dict[str, float] = {}
        for n in alive:
            for k, v in (n.get("resources_total") or {}).items():
                if not k.startswith("node:") and isinstance(v, (int, float)):
                    res[k] = res.get(k, 0.0) + float(v)
        if res:
            record.resources = res
        record.node_resources = node_custom_resources(alive, self._node_names(record))
        return len(alive), ""

    @staticmethod
    def _node_names(record) -> dict[str, str]:
        """Node address -> node name, from the helpers' handshake files."""
        return {node["address"]: node["node"] for node in node_files(Path(record.state_dir))} if record.state_dir else {}

    def _activate(self, record) -> None:
        from merlin.clusters.auth import headers_for
        from merlin.clusters.net import probe

        answer = probe(record.address, headers_for(record.auth, record.name))
        if answer.state == "ok" and answer.version:
            record.session_name = answer.version.get("session_name")
            record.ray_version = answer.version.get("ray_version")

    def _ended(self, record, job: SchedJob | None) -> Any:
        """The allocation is gone: say why, lose its runs, clean what is left here."""
        from merlin.clock import utcnow
        from merlin.clusters.lost import mark_runs_lost

        state_dir = Path(record.state_dir) if record.state_dir else None
        word = job.state if job else "gone from the queue"
        if state_dir is not None and (state_dir / "idle.json").is_file():
            status, reason = "stopped", "idle"
            detail = f"idle: no active run for {record.idle_timeout or 0:.0f}s; the watchdog ended job {record.scheduler_job_id}"
        elif record.status == "stopping":
            status, reason, detail = "stopped", "stopped by merlin", f"stopped ({self.cancel_word} {record.scheduler_job_id})"
        elif job is not None and job.walltime_hit or (
            record.walltime_end is not None and utcnow() >= record.walltime_end and record.status in ("starting", "active")
        ):
            status, reason = "expired", "allocation ended (walltime)"
            detail = f"allocation ended (walltime): job {record.scheduler_job_id} reached its time limit"
        elif job is not None and job.cancelled:
            status = "stopped"
            reason = f"cancelled outside merlin ({self.scheduler} state {word})"
            detail = f"{reason}: job {record.scheduler_job_id}"
        else:
            status = "failed"
            reason = f"allocation ended ({self.scheduler} state {word}{': ' + job.reason if job and job.reason and job.reason != 'None' else ''})"
            detail = f"{reason}: job {record.scheduler_job_id}"
        if status == "expired" and not can_cluster_transition(record.status, "expired"):
            status = "stopped"
        killed = self._cleanup(record)
        if killed:
            detail += f"; killed {len(killed)} leftover processes (pids {sorted(killed)})"
        lost = mark_runs_lost(self.ledger, record.name, reason)
        if lost:
            record.lost_runs = sorted(set(record.lost_runs) | set(lost))
            detail += f"; {len(lost)} runs recorded lost"
        self._move(record, status, detail)
        record.stop_reason = reason
        record.scheduler_reason = None
        record.stopped_at = utcnow()
        self.ledger.write_cluster(record)
        return record

    # ------------------------------------------------------------------- stop

    def _members(self, record) -> set[int]:
        """This cluster's processes on this host: recorded pids (with start times),
        anything naming a node temp dir, and their descendants."""
        markers = record.node_temp_dirs or ([record.temp_dir] if record.temp_dir else [])
        return teardown.members({p.pid: p.start_ticks for p in record.processes}, markers)

    def _cleanup(self, record, grace: float = 3.0) -> set[int]:
        """Kill what the scheduler left of this cluster here; remove the node temp dirs."""
        left = teardown.end(lambda: self._members(record), grace=grace).left
        teardown.remove_temp_dirs(record.node_temp_dirs)
        return left

    def stop(self, record, *, grace: float = 5.0, progress: Progress | None = None) -> Any:
        progress = progress or (lambda _m: None)
        with self.ledger.cluster_lock(record.name):
            record = self.ledger.read_cluster(record.name) or record
            if record.status in ("stopped", "failed", "expired"):
                killed = self._cleanup(record)
                if killed:
                    record.message += f"; stop killed {len(killed)} leftover processes (pids {sorted(killed)})"
                    self.ledger.write_cluster(record)
                return record
            self._load_handshake(record)
            snapshot = self._members(record)
            self._move(record, "stopping", f"stopping: {self.cancel_word} {record.scheduler_job_id}")
            self.ledger.write_cluster(record)
            progress(f"cluster '{record.name}': {self.cancel_word} {record.scheduler_job_id} ({len(snapshot)} processes here)")
            procs.stop_in_stages(teardown.stop_stages(snapshot))  # the nodes here end in Ray's order first
            self.cancel(record.scheduler_job_id)
            # 1. the scheduler ends the job (its KillWait included), 2. its processes get
            # ``grace`` more seconds to exit, 3. merlin ends whatever is still there
            deadline = time.monotonic() + 60.0
            while time.monotonic() < deadline:
                job = self.query(record.scheduler_job_id)
                if job is None or job.phase == "ended":
                    break
                time.sleep(POLL)
            ended = teardown.end(lambda: self._members(record), snapshot=snapshot, grace=grace)
            left = ended.left
            if left:
                progress(f"{len(left)} processes outlived the {self.scheduler} {self.cancel_word}; they were ended")
            teardown.remove_temp_dirs(record.node_temp_dirs)
            from merlin.clusters.lost import mark_runs_lost

            lost = mark_runs_lost(self.ledger, record.name, "the cluster was stopped (cluster stop)")
            msg = f"stopped ({self.cancel_word} {record.scheduler_job_id}); "
            msg += f"had to kill {len(left)} leftover processes (pids {sorted(left)})" if left else "nothing was left"
            if ended.survivors:
                msg += f"; pids {sorted(ended.survivors)} did not exit"
            teardown.mark_stopped(record, msg, lost)
            self.ledger.write_cluster(record)
            return record


def _is_local(address: str) -> bool:
    """True if ``address`` is this host (all of 127.0.0.0/8 is loopback)."""
    import socket

    if address.startswith("127.") or address in ("localhost", "::1"):
        return True
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


