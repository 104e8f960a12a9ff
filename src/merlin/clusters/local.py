"""Start, observe and stop a local Ray head that belongs to one merlin state root.

Why not ``ray stop``: it kills every Ray process of the user on the machine.
merlin starts ``ray start --head`` as the leader of a new Unix session, with a
temp directory of its own, and records the session id and every process
(pid + start time). Stopping signals exactly those processes, the processes
still in that session, anything whose command line names the cluster's temp
directory, and their descendants (job drivers start their own sessions). A
second Ray on the same machine is untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from merlin.atomic import make_dir, open_state_file
from merlin.clusters import head_gone, procs, start_step, teardown
from merlin.clusters.auth import check_token_file, generate_token_file, headers_for, ray_start_env
from merlin.clusters.base import ClusterState, ClusterStatus
from merlin.clusters.net import LOOPBACK, get_json, port_free, probe
from merlin.clusters.port_plan import choose_ports, parse_port_range, ray_start_flags
from merlin.errors import BadInput, Blocked, NotFound, RunFailed
from merlin.nextsteps import Action, step

INSTALL_HINT = "install Ray into merlin's environment (ray[default])"
START_TIMEOUT = 180.0
API_TIMEOUT = 90.0

Progress = Callable[[str], None]


def node_ip_for(host: str) -> str | None:
    """The node IP Ray binds GCS, the raylet, the object manager and the agent to.

    127.0.0.1 for a loopback cluster (Ray otherwise picks the machine's address);
    a remote-facing cluster uses the given address, or Ray's choice for 0.0.0.0.
    """
    if host in LOOPBACK:
        return "127.0.0.1"
    return None if host in ("0.0.0.0", "::") else host


def unauthenticated_warning(host: str, dashboard_port: int) -> str:
    """What authentication ``none`` opens, named: the services that will run code for anyone who reaches them."""
    where = "any local user (and every process on this machine)" if host in LOOPBACK else f"anyone who can reach {host}"
    return (
        f"auth none: Ray token authentication is OFF. {where.capitalize()} can submit jobs that run as you "
        f"through the jobs API on port {dashboard_port} and the dashboard agent's job API, and can connect to "
        "GCS and the raylet. Leave auth at its default (token) unless this machine has no other users."
    )


def ray_argv() -> list[str]:
    """The ``ray`` CLI of the interpreter running merlin (never whatever is first on PATH)."""
    script = Path(sys.executable).parent / "ray"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ray.scripts.scripts"]


def require_ray() -> str:
    """Ray's version, or ``Blocked`` with the install command."""
    try:
        import ray

        return str(getattr(ray, "__version__", "unknown"))
    except Exception as exc:  # ImportError, or a broken install raising anything
        raise Blocked(f"Ray is not importable ({type(exc).__name__}: {exc}); {INSTALL_HINT}", "ray_not_importable", next_steps=[step(Action.INSTALL, package="ray[default]")]) from None


def temp_dir_for(state_root: Path, name: str) -> Path:
    """A short, private temp dir: Ray puts Unix sockets in it (107-byte path limit)."""
    digest = hashlib.sha1(f"{state_root}\x00{name}".encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"merlin-ray-{digest}"


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    from merlin.ledger.text import plain

    keep = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return plain(" | ".join(keep), 600)


class LocalBackend:
    """The ``local`` kind: a Ray head on this machine, over one :class:`merlin.ledger.Ledger`
    (implements :class:`merlin.clusters.base.ClusterBackend`)."""

    kind = "local"

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    # ------------------------------------------------------------------ start

    def start(
        self,
        name: str = "default",
        *,
        wait: bool = True,
        host: str = "127.0.0.1",
        port: int | None = 6379,
        dashboard_port: int | None = 8265,
        port_range: str | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        resources: dict[str, float] | None = None,
        object_store_memory: int | None = None,
        auth: str = "token",
        token_file: Path | None = None,
        token_env: str | None = None,
        allow_remote: bool = False,
        progress: Progress | None = None,
        warn: Progress | None = None,
    ) -> tuple[Any, bool]:
        """Start the head, wait for the jobs API, record it. Returns (record, started_now)."""
        from merlin.clock import utcnow
        from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterRecord

        progress = progress or (lambda _m: None)
        warn = warn or (lambda _m: None)
        layout = self.ledger.layout
        layout.cluster_record(name)  # validates the name
        if host not in LOOPBACK and not allow_remote:
            raise BadInput(
                f"refusing to bind Ray's jobs API to {host}: anyone who can reach it can run any code as you. "
                f"Give `allow_remote` to do it anyway (and prefer `auth` token).",
                argument="host",
                related=("allow_remote", "auth"),
            )
        if auth == "none":
            auth = "disabled"
        if auth not in ("disabled", "token"):
            raise BadInput(f"`auth` {auth!r}: expected 'token' (the default) or 'none'", argument="auth")
        if (token_file or token_env) and auth != "token":
            raise BadInput(
                f"`{'token_file' if token_file else 'token_env'}` needs token authentication; drop `auth` none",
                argument="token_file" if token_file else "token_env",
                related="auth",
            )
        if port_range is None:
            port, dashboard_port = (6379 if port is None else port), (8265 if dashboard_port is None else dashboard_port)
        else:
            parse_port_range(port_range)  # a bad or too small range is refused before anything starts
        for p, which in ((port, "port"), (dashboard_port, "dashboard_port")):
            if p is not None and not 1 <= int(p) <= 65535:
                raise BadInput(f"`{which}` {p}: expected a port number 1-65535", argument=which)
        if port is not None and port == dashboard_port:
            raise BadInput(f"`port` and `dashboard_port` are both {port}; give two different ports", argument="dashboard_port", related="port")
        ray_version = require_ray()

        with self.ledger.cluster_lock(name):
            existing = self.ledger.read_cluster(name)
            if existing is not None and existing.status in (ClusterStatus.ACTIVE, ClusterStatus.STARTING):
                st = self.describe(existing)
                if st.state == "active":
                    if existing.status == ClusterStatus.STARTING:  # an earlier start was interrupted after Ray came up
                        self._finish_start(existing, st)
                    return existing, False
                progress(f"cluster '{name}' was recorded at {existing.address} but is {st.state}; cleaning up its processes")
                self._kill(existing, grace=3.0)

            # refused before any warning: an error stays one line
            busy = [(which, p) for p, which in ((port, "port"), (dashboard_port, "dashboard_port")) if p is not None and not port_free(p)]
            if busy:
                raise BadInput(
                    f"cannot start Ray cluster '{name}': {' and '.join(f'`{w}` {p}' for w, p in busy)} already in use (another Ray or "
                    "service listens there); choose free ports with `port` and `dashboard_port`",
                    argument=busy[0][0],
                    related=[w for w in ("port", "dashboard_port") if w != busy[0][0]],
                )

            # every port Ray opens, chosen now (Ray's fixed metrics defaults 44217/44227 would collide with a second Ray)
            ports = ClusterPorts(**choose_ports(port, dashboard_port, port_range))
            port, dashboard_port = ports.gcs, ports.dashboard

            if host not in LOOPBACK:
                warn(
                    f"Ray's jobs API will listen on {host}:{dashboard_port}: anyone who can reach it can run any code "
                    "as this user. Keep token authentication on and use a firewall."
                )
            if auth != "token":
                warn(unauthenticated_warning(host, dashboard_port))

            cluster_auth = ClusterAuth(mode="token" if auth == "token" else "disabled")
            if auth == "token":
                if token_env:
                    cluster_auth = ClusterAuth(mode="token", token_env=token_env)
                elif token_file:
                    cluster_auth = ClusterAuth(mode="token", token_file=str(check_token_file(Path(token_file).resolve())))
                else:
                    path = layout.cluster_token(name)
                    if not path.is_file():
                        generate_token_file(path)
                    cluster_auth = ClusterAuth(mode="token", token_file=str(check_token_file(path)))

            temp_dir = temp_dir_for(self.ledger.root, name)
            if temp_dir.exists():
                shutil.rmtree(temp_dir, ignore_errors=True)
            temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            log_dir = layout.cluster_logs(name)
            make_dir(log_dir, private=True)
            start_log = log_dir / "ray-start.log"

            connect_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            address = f"http://{connect_host}:{dashboard_port}"
            requested = {"num_cpus": num_cpus, "num_gpus": num_gpus, "resources": dict(resources or {}), **({"port_range": port_range} if port_range else {})}
            record = ClusterRecord(
                name=name,
                status=ClusterStatus.STARTING,
                host=host,
                address=address,
                dashboard_url=address,
                ray_version=ray_version,
                temp_dir=str(temp_dir),
                ports=ports,
                requested=requested,
                auth=cluster_auth,
                allow_remote=allow_remote,
                start_log=str(start_log),
                started_at=utcnow(),
                message="starting",
                python=sys.executable,  # started the head: has merlin and Ray (the env launcher runs with it)
            )
            self.ledger.write_cluster(record)
            try:

                argv = ray_argv() + [
                    "start",
                    "--head",
                    f"--port={port}",
                    *([f"--node-ip-address={node_ip_for(host)}"] if node_ip_for(host) else []),
                    f"--dashboard-host={host}",
                    f"--dashboard-port={dashboard_port}",
                    "--include-dashboard=true",
                    f"--temp-dir={temp_dir}",
                    *ray_start_flags(ports),
                    "--disable-usage-stats",
                    "--log-style=record",
                    "--log-color=false",
                ]
                if num_cpus is not None:
                    argv.append(f"--num-cpus={int(num_cpus)}")
                if num_gpus is not None:
                    argv.append(f"--num-gpus={int(num_gpus)}")
                if resources:
                    argv.append(f"--resources={json.dumps(resources)}")
                if object_store_memory:
                    argv.append(f"--object-store-memory={int(object_store_memory)}")

                env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
                env.update(ray_start_env(cluster_auth))
                env["RAY_USAGE_STATS_ENABLED"] = "0"
                env["AUTOSCALER_METRIC_PORT"] = str(ports.autoscaler_metrics)
                env["DASHBOARD_METRIC_PORT"] = str(ports.dashboard_metrics)
                if node_ip_for(host) == "127.0.0.1":
                    # Ray turns --node-ip-address=127.0.0.1 into the machine's address unless
                    # "clusters" are disabled, as on macOS: then it keeps the node on loopback.
                    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
                env.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
                progress(f"starting Ray head '{name}' (GCS port {port}, jobs API {address}, temp dir {temp_dir})")
                t0 = time.monotonic()
                for tries_left in (1, 0):  # Ray gives its node a fixed 30 s to register, which a loaded machine can miss: once more
                    with open_state_file(start_log) as log:
                        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(temp_dir), start_new_session=True)
                    record.session_id = proc.pid
                    self.ledger.write_cluster(record)
                    try:
                        rc = proc.wait(timeout=START_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        rc = None
                    if rc in (0, None) or not tries_left or "timed out during startup" not in _tail(start_log):
                        break
                    progress(f"Ray's node missed its registration window ({_tail(start_log, 1)}); ending what it started and starting it again")
                    self._kill(record, grace=3.0)
                if rc != 0:
                    tail = _tail(start_log)
                    self._kill(record, grace=3.0)
                    record.status = ClusterStatus.FAILED
                    record.message = f"`ray start` {'timed out' if rc is None else f'exited {rc}'}: {tail} (full log: {start_log})"
                    self.ledger.write_cluster(record)
                    if "already in use" in tail.lower() or "address already in use" in tail.lower():
                        raise BadInput(f"cannot start Ray cluster '{name}': a port is already in use: {tail}")
                    raise RunFailed(f"cannot start Ray cluster '{name}': {record.message}")

                progress(f"Ray head started in {time.monotonic() - t0:.1f}s; waiting for the jobs API at {address}")
                headers = headers_for(cluster_auth, name)
                deadline = time.monotonic() + API_TIMEOUT
                answer = probe(address, headers)
                while answer.state != "ok" and time.monotonic() < deadline:
                    time.sleep(0.25)
                    answer = probe(address, headers)
                if answer.state != "ok":
                    self._kill(record, grace=3.0)
                    record.status = ClusterStatus.FAILED
                    record.message = f"the jobs API at {address} did not answer within {API_TIMEOUT:.0f}s ({answer.detail}); see {start_log}"
                    self.ledger.write_cluster(record)
                    raise RunFailed(f"cannot start Ray cluster '{name}': {record.message}")

                version = answer.version or {}
                record.session_name = version.get("session_name")
                record.ray_version = version.get("ray_version") or ray_version
                record.gcs_address = self._gcs_address(temp_dir, port)
                record.resources = self._resources(address, headers) or {
                    k: float(v) for k, v in {"CPU": num_cpus, "GPU": num_gpus, **(resources or {})}.items() if v is not None
                }
                record.processes = self._session_processes(record)
                record.status = ClusterStatus.ACTIVE
                record.message = f"active; jobs API {address}"
                self.ledger.write_cluster(record)
                progress(f"cluster '{name}' is active ({time.monotonic() - t0:.1f}s)")
                from merlin.clusters.exposure import exposed, exposure_warning, listening_sockets

                open_ports = exposed(listening_sockets(record, {p.pid for p in record.processes}))
                if open_ports:
                    warn(exposure_warning(name, open_ports))
                return record, True
            except KeyboardInterrupt:
                self._start_interrupted(record)
                raise

    def _start_interrupted(self, record) -> None:
        """Ctrl-C during start: end what was started and record it as failed, with the reason
        (never ``starting``/``active`` with no processes); ``status`` says so and ``start-local`` starts it again."""
        import signal

        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        try:
            ended: set[int] = set()
            survivors: set[int] = set()
            for _ in range(3):  # `ray start` may still be spawning: end its session until nothing is left
                members = self._members(record)
                if not members:
                    break
                ended |= members
                survivors = procs.terminate(members, grace=2.0).survivors
            temp_dir = Path(record.temp_dir)
            if temp_dir.name.startswith("merlin-ray-"):
                shutil.rmtree(temp_dir, ignore_errors=True)
            record.status = ClusterStatus.FAILED
            record.processes = []
            kept = f"pids {sorted(survivors)} did not exit: end them by hand" if survivors else "nothing it started keeps running"
            record.message = (
                f"start interrupted by Ctrl-C (SIGINT): stopped the {len(ended)} Ray processes it had started and removed its temp dir; "
                f"{kept} (other Ray clusters are untouched); start it again"
            )
            self.ledger.write_cluster(record)
        finally:
            signal.signal(signal.SIGINT, previous)

    @staticmethod
    def _gcs_address(temp_dir: Path, port: int) -> str:
        try:
            text = (temp_dir / "ray_current_cluster").read_text(encoding="utf-8").strip()
            if text:
                return text
        except OSError:
            pass
        return f"127.0.0.1:{port}"

    @staticmethod
    def _resources(address: str, headers: dict[str, str]) -> dict[str, float]:
        """Head-node resources as Ray reports them (state API); {} if it is not ready yet."""
        try:
            data = get_json(address, "/api/v0/nodes?limit=10&detail=true", headers)
            nodes = data.get("data", {}).get("result", {}).get("result", [])
            total: dict[str, float] = {}
            for node in nodes:
                for k, v in (node.get("resources_total") or {}).items():
                    if k.startswith("node:"):
                        continue
                    total[k] = total.get(k, 0.0) + float(v)
            return total
        except Exception:
            return {}

    def _session_processes(self, record) -> list:
        from merlin.ledger.models import ClusterProcess

        members = self._members(record)
        out = []
        for pid in sorted(members):
            info = procs.proc_info(pid)
            if info is not None:
                out.append(ClusterProcess(pid=pid, start_ticks=info.start_ticks, name=info.name))
        return out

    def _members(self, record) -> set[int]:
        """This cluster's processes now: its session, its temp dir, its recorded pids, and their children."""
        all_p = procs.all_procs()
        recorded = {p.pid: procs.epoch_ticks(p.start_ticks) for p in record.processes}
        floor = min(recorded.values()) if recorded else None
        pids: set[int] = set()
        for p in all_p:
            if p.state in ("Z", "X") or p.pid == os.getpid():
                continue
            if p.pid in recorded and procs.same_start(recorded[p.pid], p.start_ticks):
                pids.add(p.pid)
            elif record.session_id and p.sid == record.session_id and (floor is None or p.start_ticks >= floor - 100):
                pids.add(p.pid)
        if record.temp_dir:
            marker = str(record.temp_dir)
            for p in all_p:
                if p.pid not in pids and p.state not in ("Z", "X") and marker in procs.cmdline(p.pid):
                    pids.add(p.pid)
        pids |= procs.descendants(pids, all_p)
        pids.discard(os.getpid())
        return pids

    def head_alive(self, record) -> bool | None:
        """Does the recorded head's GCS or raylet still run (:func:`merlin.clusters.head_gone`)? With both
        gone the cluster is dead, whatever else of it lingers (Ray's autoscaler monitor and log monitor
        outlive a SIGKILLed GCS and raylet). None when the record names neither."""
        if record.status == ClusterStatus.STOPPED:
            return False
        gone = head_gone(record.processes)
        return None if gone is None else not gone

    def processes_alive(self, record) -> int | None:
        """How many of this cluster's processes run now (0: it is dead, whatever its record says)."""
        if record.status == ClusterStatus.STOPPED:
            return 0
        if not record.processes and not record.session_id and not record.temp_dir:
            return None  # nothing to recognise its processes by
        return len(self._members(record))

    def _kill(self, record, grace: float) -> set[int]:
        members = self._members(record)
        return procs.terminate(members, grace=grace, first=teardown.stop_stages(members)).survivors if members else set()

    # ---------------------------------------------------------------- observe

    def observe(self, record):
        """The record as it now is. A start interrupted after Ray came up is finished
        here (starting -> active); an unreachable head stays ``active`` (it may come
        back) and :meth:`describe` says ``unreachable``."""
        if record.status != ClusterStatus.STARTING:
            return record
        st = self.describe(record)
        if st.state != "active":
            return record
        with self.ledger.cluster_lock(record.name):
            fresh = self.ledger.read_cluster(record.name)
            if fresh is None or fresh.status != ClusterStatus.STARTING:
                return fresh or record
            self._finish_start(fresh, st)
            return fresh

    def _finish_start(self, record, st: ClusterState) -> None:
        """A start interrupted after Ray came up: record it ``active`` with its session and processes."""
        version = st.version or {}
        record.session_name = record.session_name or version.get("session_name")
        record.processes = record.processes or self._session_processes(record)
        record.status = ClusterStatus.ACTIVE
        record.message = f"active; jobs API {record.address}"
        self.ledger.write_cluster(record)

    def describe(self, record) -> ClusterState:
        """Ask the live cluster, not just the file (and measure what it listens on)."""
        st = self._describe(record)
        if st.state in ("active", "unreachable", "starting"):
            from merlin.clusters.exposure import listening_sockets

            st.sockets = listening_sockets(record, self._members(record))
        return st

    def describe_state(self, record) -> ClusterState:
        """:meth:`describe` without measuring the sockets (``jobs why`` needs only the state)."""
        return self._describe(record)

    def _describe(self, record) -> ClusterState:
        name = record.name
        alive = len(self._members(record)) if record.status != ClusterStatus.STOPPED else 0
        if record.status == ClusterStatus.STOPPED:
            return ClusterState(name, "stopped", "stopped; start it again", record, alive, next_steps=[start_step(name, record)])
        if record.status.is_terminal():
            again = [start_step(name, record)] if record.status == ClusterStatus.FAILED else []
            return ClusterState(name, record.status.value, record.message, record, alive, next_steps=again)
        try:
            headers = headers_for(record.auth, name)
        except Blocked as exc:
            answer = probe(record.address)
            state = "active" if answer.state in ("ok", "auth") else "unreachable"
            return ClusterState(name, state, exc.message, record, alive)
        answer = probe(record.address, headers)
        if answer.state == "ok" and self.head_alive(record) is False:
            answer.state, answer.detail = "down", "its dashboard still answers, but the GCS and raylet behind it are gone"
        if answer.state == "ok":
            session = (answer.version or {}).get("session_name")
            if record.session_name and session and session != record.session_name:
                return ClusterState(
                    name,
                    "unreachable",
                    f"another Ray session ({session}) answers at {record.address}, not this cluster's "
                    f"({record.session_name}); restart it",
                    record,
                    alive,
                    answer.version,
                    next_steps=[start_step(name, record)],
                )
            return ClusterState(name, "active", f"active; jobs API {record.address} (Ray {answer.version.get('ray_version') if answer.version else '?'})", record, alive, answer.version)
        if answer.state == "auth":
            return ClusterState(name, "active", f"answers but refused the token: {answer.detail}", record, alive)
        if record.status == ClusterStatus.STARTING:
            return ClusterState(name, "starting", f"starting; jobs API {record.address} not answering yet", record, alive)
        head_gone = self.head_alive(record) is False
        return ClusterState(
            name,
            "unreachable",
            f"recorded as running at {record.address} but it does not answer ({answer.detail}); "
            + (
                f"its head's GCS and raylet are gone (killed) and {alive} leftover processes remain. Start it again: that ends them"
                if head_gone
                else f"{alive} of its processes are alive. Restart it"
            ),
            record,
            alive,
            next_steps=[start_step(name, record)],
        )

    def list(self) -> list[ClusterState]:
        """Every cluster of this kind in the ledger, with its live state."""
        out = []
        for n in self.ledger.cluster_names():
            rec = self.ledger.read_cluster(n)
            if rec is not None and rec.kind == self.kind:
                out.append(self.describe(rec))
        return out

    # ------------------------------------------------------------------- stop

    def stop(self, record, *, grace: float = 5.0, progress: Progress | None = None) -> Any:
        from merlin.clock import utcnow

        progress = progress or (lambda _m: None)
        name = record.name
        with self.ledger.cluster_lock(name):
            record = self.ledger.read_cluster(name)
            if record is None:
                raise NotFound(f"no cluster '{name}' recorded in {self.ledger.root}", next_steps=[step(Action.LIST_CLUSTERS)])
            members = self._members(record)
            progress(f"stopping cluster '{name}': {len(members)} processes")
            survivors = procs.terminate(members, grace=grace, first=teardown.stop_stages(members)).survivors if members else set()
            temp_dir = Path(record.temp_dir)
            if temp_dir.name.startswith("merlin-ray-"):
                shutil.rmtree(temp_dir, ignore_errors=True)
            record.status = ClusterStatus.STOPPED
            record.stopped_at = utcnow()
            record.processes = []
            record.message = (
                f"stopped ({len(members)} processes ended)"
                if not survivors
                else f"stopped, but pids {sorted(survivors)} did not exit; end them by hand"
            )
            self.ledger.write_cluster(record)
            return record

