"""Ray on machines reached by SSH: ``merlin ray cluster start --kind ssh --host H``.

* Host keys are checked against known_hosts (``StrictHostKeyChecking=yes``,
  ``BatchMode=yes``): an unknown key is refused with one line, never accepted.
* The remote head runs merlin's node helper (``ray start --block`` as its
  child) as the leader of a new session; its pid is recorded. Workers
  (``--workers h1,h2``) join the head's GCS the same way.
* merlin reaches the Jobs API through a local forward
  ``ssh -N -L 127.0.0.1:P:127.0.0.1:DASH host``; that ssh process is the small
  process that owns the tunnel, and its pid (and start time) is recorded.
* stop: on each host, end the recorded session and whatever names its temp
  dir (``python -m merlin.clusters.ssh reap``, which reports what it killed),
  then close the tunnel.

The remote hosts need the same Python with merlin and Ray (``--python``).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from merlin.atomic import open_state_file
from merlin.clusters import procs, teardown
from merlin.clusters.base import ClusterStatus, LockedObservation, can_cluster_transition, check_env_cache, not_taken, unanswered_record
from merlin.clusters.hosted import node_custom_resources
from merlin.clusters.slurm_node import HOSTED_ITEMS, node_files
from merlin.errors import BadInput, Blocked, RunFailed
from merlin.nextsteps import Action, step

Progress = Callable[[str], None]
START_TIMEOUT = float(__import__("os").environ.get("MERLIN_SSH_START_TIMEOUT", "300"))
#: the node helper's last words when it stops trying (clusters/slurm_node.py): waiting longer cannot help
GAVE_UP = ("merlin: the Ray head did not come up", " gave up: ")


class SshBackend(LockedObservation):
    """``--kind ssh``."""

    kind = "ssh"
    #: nodes get the inventory items attached to them as Ray custom resources (merlin.clusters.hosted)
    places_hosted_items = True
    #: the hosts need not see this machine's state root: a run's env spec rides on its command line
    nodes_see_state_root = False
    #: each host's own env cache unless ``env_cache`` names another (expanded there)
    default_env_cache = "~/.cache/merlin/envs"

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    # ------------------------------------------------------------------ ssh

    @staticmethod
    def ssh_base(opts: dict[str, Any]) -> list[str]:
        argv = ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR"]
        if opts.get("known_hosts"):
            argv += ["-o", f"UserKnownHostsFile={opts['known_hosts']}"]
        if opts.get("identity_file"):
            argv += ["-i", str(opts["identity_file"]), "-o", "IdentitiesOnly=yes"]
        if opts.get("port"):
            argv += ["-p", str(int(opts["port"]))]
        if opts.get("jump"):
            argv += ["-J", str(opts["jump"])]
        if opts.get("user"):
            argv += ["-l", str(opts["user"])]
        return argv

    def run(self, opts: dict[str, Any], host: str, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        res = subprocess.run(self.ssh_base(opts) + [host, command], input=stdin, capture_output=True, timeout=timeout)
        if res.returncode == 255:
            err = res.stderr.decode("utf-8", "replace").strip()
            if "host key verification failed" in err.lower() or "no matching host key" in err.lower() or "host key" in err.lower():
                kh = opts.get("known_hosts") or "~/.ssh/known_hosts"
                raise BadInput(
                    f"ssh {host}: its host key is not in {kh} (Host key verification failed); check the fingerprint, "
                    f"then add it with `ssh-keyscan{' -p ' + str(opts['port']) if opts.get('port') else ''} {host} >> {kh}`"
                )
            raise Blocked(f"ssh {host} failed: {err.splitlines()[-1] if err else 'exit 255'}")
        return res

    # ---------------------------------------------------------------- start

    def start(self, name: str, *, wait: bool = True, progress: Progress | None = None, **options: Any) -> tuple[Any, bool]:
        from merlin.clock import utcnow
        from merlin.clusters.auth import generate_token_file, headers_for
        from merlin.clusters.net import free_ports, probe
        from merlin.ledger.models import ClusterPorts, ClusterProcess

        progress = progress or (lambda _m: None)
        layout = self.ledger.layout
        layout.cluster_record(name)
        hosted_items = options.pop("hosted_items", None) or {}
        host = options.get("host")
        if not host:
            raise BadInput("`kind` ssh needs a `host` (the head's machine)", argument="host", related="kind")
        workers = [w for w in (options.get("workers") or "").split(",") if w] if isinstance(options.get("workers"), str) else list(options.get("workers") or [])
        known = {"host", "jump", "user", "workers", "port", "known_hosts", "identity_file", "python", "object_store_memory", "idle_timeout", "timeout", "env_cache"}
        stray = sorted(k for k, v in options.items() if k not in known and v not in (None, [], ()))
        if stray:
            raise not_taken("ssh", dict.fromkeys(stray))
        opts = {k: v for k, v in options.items() if v not in (None, [], ()) and k in known}
        if workers and host in ("127.0.0.1", "localhost", "::1"):
            # a head on 127.0.0.1 keeps Ray's "cluster" mode off, and then Ray refuses workers;
            # with it on, Ray rewrites a worker's 127.0.0.1 to the machine's address
            raise BadInput(f"`host` {host} with `workers`: give the head by an address its workers can reach (another loopback address such as 127.0.0.2 works on one machine)", argument="host", related="workers")
        python = str(opts.get("python") or sys.executable)
        env_cache = check_env_cache(opts.get("env_cache"))
        with self.ledger.cluster_lock(name):
            existing = self.ledger.read_cluster(name)
            if existing is not None and existing.status not in ("stopped", "failed", "expired"):
                existing = self._observe_locked(existing)
                # a head proven dead (its host answers, its GCS and raylet are gone) is cleaned up and started
                # again, as a local head is; one that only does not answer may come back, and is kept
                dead = existing.status == "active" and existing.message.startswith("unreachable") and self.head_alive(existing) is False
                if existing.status == "active" and not dead:
                    return existing, False
                if not dead:
                    raise BadInput(f"cluster '{name}' is {existing.status}; stop it first", next_steps=[step(Action.STOP_CLUSTER, name=name)])
                progress(f"cluster '{name}': its head is dead; ending what is left of it, then starting it again")
                self._end_remains(existing, 2.0, progress)
            self.run(opts, host, "true", timeout=30)  # host key and login first: one clear error
            digest = hashlib.sha1(f"{self.ledger.root}\x00{name}".encode()).hexdigest()[:10]
            token = layout.cluster_token(name)
            if not token.is_file():
                generate_token_file(token)
            hosts = [host] + workers
            # one handshake dir per node, even when two "hosts" are one machine (loopback aliases)
            remote_dirs = [f"/tmp/merlin-ssh-{digest}-{i}" for i in range(len(hosts))]
            for h, d in zip(hosts, remote_dirs, strict=True):
                self.run(opts, h, f"umask 077 && rm -rf {d} && mkdir -p {d} && cat > {d}/token", stdin=token.read_bytes())
                if hosted_items:
                    self.run(opts, h, f"umask 077 && cat > {d}/{HOSTED_ITEMS}", stdin=json.dumps(hosted_items).encode())

            def node(i: int) -> list[str]:
                argv = [python, "-m", "merlin.clusters.slurm_node", "--state-dir", remote_dirs[i], "--nodes", str(len(hosts)),
                        "--token-file", f"{remote_dirs[i]}/token", "--job-id", f"ssh{digest[:6]}", "--own-session"]  # fmt: skip
                if opts.get("object_store_memory"):
                    argv += ["--object-store-memory", str(int(opts["object_store_memory"]))]
                if hosted_items:
                    argv += ["--hosted-items", f"{remote_dirs[i]}/{HOSTED_ITEMS}"]
                return argv

            remote_dir = remote_dirs[0]
            record = unanswered_record(
                name,
                "ssh",
                ClusterStatus.STARTING,
                str(token),
                requested={"nodes": len(hosts)},
                options={**{k: str(v) for k, v in opts.items()}, "remote_dir": remote_dir, "remote_dirs": remote_dirs, "python": python},
                nodes=hosts,
                head_address=host,
                state_dir=remote_dir,
                started_at=utcnow(),
                python=python,
                env_cache=env_cache,
                message=f"starting the Ray head on {host} over ssh",
            )
            self.ledger.write_cluster(record)
            progress(f"cluster '{name}': starting the head on {host} over ssh")
            logs_of = [f"{d}/node-{i}.log" for i, d in enumerate(remote_dirs)]
            self._launch(opts, host, node(0) + ["head", "--index", "0", "--node", host], logs_of[0])
            t0 = time.monotonic()
            head = self._wait_json(opts, host, f"{remote_dir}/head.json", t0, logs_of[0])
            gcs = f"{head['address']}:{head['ports']['gcs']}"
            for i, w in enumerate(workers, start=1):
                progress(f"starting worker {i}/{len(workers)} on {w}")
                self._launch(opts, w, node(i) + ["worker", "--index", str(i), "--node", w, "--head", gcs], logs_of[i])
            processes = [ClusterProcess(pid=head["helper_pid"], start_ticks=head["helper_ticks"], name=f"remote-head@{host}")]
            temp_dirs = [head["temp_dir"]]
            for i, w in enumerate(workers, start=1):
                mine = self._wait_json(opts, w, f"{remote_dirs[i]}/node-{i}.json", t0, logs_of[i])
                processes.append(ClusterProcess(pid=mine["helper_pid"], start_ticks=mine["helper_ticks"], name=f"remote-worker@{w}"))
                temp_dirs.append(mine["temp_dir"])
            (local_port,) = free_ports(1)
            dash = head["ports"]["dashboard"]
            tunnel_argv = self.ssh_base(opts) + ["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{local_port}:127.0.0.1:{dash}", host]
            logs = layout.cluster_logs(name)
            with open_state_file(logs / "tunnel.log") as log:
                tunnel = subprocess.Popen(tunnel_argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            info = procs.proc_info(tunnel.pid)
            processes.append(ClusterProcess(pid=tunnel.pid, start_ticks=info.start_ticks if info else 0, name="tunnel"))
            record.processes = processes
            record.address = record.dashboard_url = f"http://127.0.0.1:{local_port}"
            record.gcs_address = gcs
            record.ports = ClusterPorts(gcs=head["ports"]["gcs"], dashboard=dash, node_manager=head["ports"].get("node_manager"))
            record.temp_dir = head["temp_dir"]
            record.node_temp_dirs = temp_dirs
            record.tunnel_command = " ".join(shlex.quote(a) for a in tunnel_argv)
            self.ledger.write_cluster(record)
            headers = headers_for(record.auth, name)
            while probe(record.address, headers).state != "ok":
                if tunnel.poll() is not None:
                    raise RunFailed(f"cluster '{name}': the ssh tunnel exited ({tunnel.returncode}); see {layout.cluster_logs(name) / 'tunnel.log'}")
                if time.monotonic() - t0 > START_TIMEOUT:
                    raise RunFailed(f"cluster '{name}': the jobs API did not answer through the tunnel within {START_TIMEOUT:.0f}s")
                time.sleep(0.25)
            record = self._observe_locked(record, wait_nodes=wait)
            progress(record.message)
            return record, True

    def _launch(self, opts: dict[str, Any], host: str, argv: list[str], log: str) -> None:
        cmd = f"nohup {' '.join(shlex.quote(a) for a in argv)} > {shlex.quote(log)} 2>&1 < /dev/null &"
        res = self.run(opts, host, cmd)
        if res.returncode != 0:
            raise RunFailed(f"ssh {host}: could not start merlin's node helper: {res.stderr.decode('utf-8', 'replace').strip()}")

    def _wait_json(self, opts: dict[str, Any], host: str, path: str, t0: float, log: str) -> dict[str, Any]:
        """A handshake file of a node helper: ``head.json`` once the head's jobs API answers,
        ``node-<i>.json`` once a worker's ``ray start`` runs (its pids and temp dir)."""
        looked = time.monotonic()
        while True:
            res = self.run(opts, host, f"cat {shlex.quote(path)} 2>/dev/null")
            if res.returncode == 0 and res.stdout.strip():
                return json.loads(res.stdout)
            now = time.monotonic()
            if now - t0 > START_TIMEOUT or now - looked > 5.0:  # every 5 s: has the helper given up?
                looked = now
                tail = self.run(opts, host, f"tail -n 5 {shlex.quote(log)}").stdout.decode("utf-8", "replace")
                gave_up = any(line in tail for line in GAVE_UP)
                if gave_up or now - t0 > START_TIMEOUT:
                    within = "" if gave_up else f" within {START_TIMEOUT:.0f}s"
                    raise RunFailed(f"the Ray node on {host} did not come up{within}: {tail.strip()[-400:]}")
            time.sleep(0.5)

    # -------------------------------------------------------------- observe

    def _observe_locked(self, record, wait_nodes: bool = False) -> Any:
        from merlin.clusters.auth import headers_for
        from merlin.clusters.net import get_json

        want = int(record.requested.get("nodes") or 1)
        deadline = time.monotonic() + (START_TIMEOUT if wait_nodes else 0)
        while True:
            try:
                data = get_json(record.address, "/api/v0/nodes?limit=1000&detail=true", headers_for(record.auth, record.name), timeout=10.0)
                alive = [n for n in data["data"]["result"]["result"] if n.get("state") == "ALIVE"]
            except Exception as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                tunnel = next((p for p in record.processes if p.name == "tunnel"), None)
                why = "the ssh tunnel is gone" if tunnel and not procs.alive(tunnel.pid, tunnel.start_ticks) else f"the head does not answer ({type(exc).__name__}: {exc})"
                if record.status in ("active", "starting"):
                    record.message = f"unreachable: {why}; stopping the cluster ends what is left"
                    self.ledger.write_cluster(record)
                return record
            if len(alive) >= want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        new = "active" if len(alive) >= want else "starting"
        if can_cluster_transition(record.status, new) or record.status == new:
            record.status = new
        record.resources = {}
        for n in alive:
            for k, v in (n.get("resources_total") or {}).items():
                if not k.startswith("node:"):
                    record.resources[k] = record.resources.get(k, 0.0) + float(v)
        record.node_resources = node_custom_resources(alive, {})
        record.message = f"{new}: {len(alive)}/{want} nodes; jobs API {record.address} (tunnel to {record.head_address})"
        self.ledger.write_cluster(record)
        return record

    # ----------------------------------------------------------------- stop

    @staticmethod
    def _remote(record) -> tuple[dict[str, Any], str, list[str]]:
        """``(ssh options, the hosts' python, one handshake dir per node)`` as the record keeps them."""
        opts = dict(record.options)
        python = opts.pop("python", sys.executable)
        remote_dir = opts.pop("remote_dir", record.state_dir)
        # one handshake dir per node (records before --workers had its own dirs: one for all)
        return opts, python, list(opts.pop("remote_dirs", None) or [remote_dir] * len(record.nodes))

    def head_alive(self, record) -> bool | None:
        """Does the head's GCS or raylet still run on its host (asked there over ssh, ``alive``)? False
        only when the host answers and neither runs; None when that cannot be told (the host does not
        answer, or keeps no node file): such a head is waited for, never started again."""
        if record.status in ("stopped", "failed", "expired") or not record.nodes:
            return False if record.status == "stopped" else None
        opts, python, remote_dirs = self._remote(record)
        try:
            # bounded as an HTTP look is (10 s): a host that has gone away must not hold a look longer
            res = self.run(opts, record.nodes[0], f"{shlex.quote(python)} -m merlin.clusters.ssh alive {shlex.quote(remote_dirs[0])}", timeout=10)
            found = json.loads(res.stdout or b"{}").get("alive")
        except (Blocked, BadInput, ValueError, OSError, subprocess.TimeoutExpired):
            return None
        return found if isinstance(found, bool) else None

    def _end_remains(self, record, grace: float, progress: Progress) -> tuple[int, list[str]]:
        """End what merlin started on each host (``reap``) and the local tunnel: ``(ended, not ended)``."""
        opts, python, remote_dirs = self._remote(record)
        ended, stuck = 0, []
        for h, d in zip(record.nodes, remote_dirs, strict=False):
            progress(f"cluster '{record.name}': ending the Ray processes merlin started on {h}")
            cmd = f"{shlex.quote(python)} -m merlin.clusters.ssh reap {shlex.quote(d)} {grace}"
            try:
                res = self.run(opts, h, cmd, timeout=grace + 60)
                out = json.loads(res.stdout or b"{}")
            except (Blocked, ValueError, subprocess.TimeoutExpired) as exc:
                out = {"error": str(exc)}
            ended += len(out.get("ended", []))
            stuck += [f"{h}:{pid}" for pid in out.get("left", [])]
            if out.get("error"):
                stuck.append(f"{h}: {out['error']}")
        tunnel = {p.pid: p.start_ticks for p in record.processes if p.name == "tunnel"}
        teardown.end(lambda: teardown.members(tunnel), grace=grace)
        return ended, stuck

    def end_run_processes(self, record, run_ids: Iterable[str], grace: float = 2.0, timeout: float = 30.0) -> tuple[list[str], list[str]]:
        """End the processes on each of the cluster's hosts that carry the ``MERLIN_RUN_ID`` of one of
        ``run_ids`` (asked there over ssh, :func:`orphans`): what lost runs left outside Ray's reach on
        machines that are not this one. ``(ended, not ended)`` as ``host:pid``; a host that does not
        answer within ``timeout`` seconds (beyond ``grace``) is in the second list, with why. The hosts
        are asked at once: a look waits for the slowest host, not for the sum of them."""
        from concurrent.futures import ThreadPoolExecutor

        ids = sorted(set(run_ids))
        if not ids or not record.nodes:
            return [], []
        opts, python, _dirs = self._remote(record)
        cmd = f"{shlex.quote(python)} -m merlin.clusters.ssh orphans {shlex.quote(','.join(ids))} {grace}"

        def ask(host: str) -> tuple[list[str], list[str]]:
            try:
                out = json.loads(self.run(opts, host, cmd, timeout=grace + timeout).stdout or b"{}")
            except (Blocked, BadInput, ValueError, OSError, subprocess.TimeoutExpired) as exc:
                return [], [f"{host}: {getattr(exc, 'message', None) or exc}"]
            return [f"{host}:{pid}" for pid in out.get("ended", [])], [f"{host}:{pid}" for pid in out.get("left", [])]

        hosts = list(dict.fromkeys(record.nodes))  # each host once, in the record's order
        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            answers = list(pool.map(ask, hosts))
        return [x for a, _ in answers for x in a], [x for _, b in answers for x in b]

    def stop(self, record, *, grace: float = 5.0, progress: Progress | None = None) -> Any:
        from merlin.clusters.lost import mark_runs_lost

        progress = progress or (lambda _m: None)
        with self.ledger.cluster_lock(record.name):
            record = self.ledger.read_cluster(record.name) or record
            if record.status not in ("stopped", "failed", "expired"):
                record.status = "stopping"
                self.ledger.write_cluster(record)
            ended, stuck = self._end_remains(record, grace, progress)
            lost = mark_runs_lost(self.ledger, record.name, "the cluster was stopped (cluster stop)")
            msg = f"stopped: ended {ended} remote processes and the tunnel"
            if stuck:
                msg += f"; not ended: {', '.join(stuck)}"
            teardown.mark_stopped(record, msg, lost)
            self.ledger.write_cluster(record)
            return record


def alive(remote_dir: str) -> dict[str, Any]:
    """On a node's host: does a GCS or raylet of the node recorded in ``remote_dir`` still run (its
    command line names the node's temp dir)? ``{"alive": None}`` when no node file is there."""
    temp_dirs = [n["temp_dir"] for n in node_files(Path(remote_dir)) if n.get("temp_dir")]
    if not temp_dirs:
        return {"alive": None}
    from merlin.clusters import HEAD_PROCESSES

    for p in procs.all_procs():
        if p.name in HEAD_PROCESSES and not p.gone and any(t in procs.cmdline(p.pid) for t in temp_dirs):
            return {"alive": True}
    return {"alive": False}


def orphans(run_ids: str, grace: float) -> dict[str, Any]:
    """On a host: end the processes whose environment holds ``MERLIN_RUN_ID`` = one of ``run_ids``
    (comma-separated); report what was ended and what is left."""
    ended, left = procs.end_carriers("MERLIN_RUN_ID", [r for r in run_ids.split(",") if r], grace=grace)
    return {"ended": sorted(ended), "left": sorted(left)}


def reap(remote_dir: str, grace: float) -> dict[str, Any]:
    """On the remote host: end every node helper's session recorded in ``remote_dir``
    and anything naming its temp dirs; report what was ended and what is left."""
    recorded: dict[int, int | None] = {}
    sessions: set[int] = set()
    temp_dirs = []
    for node in node_files(Path(remote_dir)):
        temp_dirs.append(node["temp_dir"])
        for key in ("helper", "ray"):
            if node.get(f"{key}_pid"):
                recorded[node[f"{key}_pid"]] = node.get(f"{key}_ticks")
        if procs.alive(node["helper_pid"], node.get("helper_ticks")):
            sessions |= set(procs.group_members(node["helper_pid"]))  # it leads its own session
    ended = teardown.end(lambda: teardown.members(recorded, temp_dirs, roots=sessions), grace=grace)
    teardown.remove_temp_dirs(temp_dirs)
    if Path(remote_dir).name.startswith("merlin-ssh-"):
        shutil.rmtree(remote_dir, ignore_errors=True)  # handshake files and the token copy
    return {"ended": sorted(ended.left - ended.survivors), "left": sorted(ended.survivors)}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "reap":
        print(json.dumps(reap(sys.argv[2], float(sys.argv[3]))))
    elif len(sys.argv) == 3 and sys.argv[1] == "alive":
        print(json.dumps(alive(sys.argv[2])))
    elif len(sys.argv) == 4 and sys.argv[1] == "orphans":
        print(json.dumps(orphans(sys.argv[2], float(sys.argv[3]))))
    else:
        sys.exit("usage: python -m merlin.clusters.ssh reap REMOTE_DIR GRACE | alive REMOTE_DIR | orphans RUN_ID[,RUN_ID...] GRACE")
