"""A run on a local head whose GCS and raylet are gone is judged lost from ``/proc`` alone, before any
HTTP call (issue 20 #2). Ray's monitors can keep the dashboard up after the GCS dies, and its jobs API
then holds each request until the client's timeout: `jobs status` on such a run took 20 s (10 s on its
fast path, 10 s more on the full one) before the check came first, and a submit to it 55 s.

No Ray here: the recorded cluster's jobs API is a socket that accepts connections and never answers
(counting them), and its head processes are pids of processes that have exited."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus


@contextmanager
def _silent_api() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that accepts and never replies; yields (port, [connections so far])."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    seen: list[int] = [0]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            seen[0] += 1
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        server.close()


def _exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_look_at_a_run_on_a_dead_local_head_records_it_lost_without_asking_its_jobs_api(tmp_path: Path) -> None:
    from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterProcess, ClusterRecord

    cp = ControlPlane(tmp_path / "state")
    with _silent_api() as (port, seen):
        url = f"http://127.0.0.1:{port}"
        run = cp.submit([sys.executable, "-c", "pass"], target="t", workflow="w", engine="ray", cluster="dead")
        assert run.status == RunStatus.BLOCKED  # no such cluster yet: recorded, never handed over
        # as if handed over and running on a head whose GCS and raylet were then SIGKILLed
        path = cp.layout.record(run.run_id)
        raw = json.loads(path.read_text())
        raw["status"] = "running"
        raw["cluster"] = {"name": "dead", "address": url}
        raw["attempts"] = [{**raw["attempts"][-1], "status": "running", "submission_id": f"merlin-{run.run_id}-1"}]
        path.write_text(json.dumps(raw))
        cp.ledger.write_cluster(ClusterRecord(
            name="dead", kind="local", status="active", host="127.0.0.1", address=url, dashboard_url=url, temp_dir=str(tmp_path / "tmp"),
            ports=ClusterPorts(gcs=port, dashboard=port), auth=ClusterAuth(mode="token", token_file=str(tmp_path / "token")),
            processes=[ClusterProcess(name="gcs_server", pid=_exited_pid(), start_ticks=0), ClusterProcess(name="raylet", pid=_exited_pid(), start_ticks=0)],
        ))  # fmt: skip
        (tmp_path / "token").write_text("t" * 32)
        (tmp_path / "token").chmod(0o600)
        shown = run_cli("ray", "jobs", "status", run.run_id, "--state-root", str(cp.root))  # the fast path, then the full one
        assert shown.returncode != 0 or "lost" in shown.stdout, shown.stdout + shown.stderr
        rec = cp.get(run.run_id)
        assert rec.status == RunStatus.LOST and "GCS and raylet are gone" in rec.message, rec.message
        assert seen[0] == 0, f"{seen[0]} connections to the dead head's jobs API"
        # a submit to it is blocked at once, with the step that starts it again (it took 55 s to say "does not answer")
        res = run_cli("ray", "jobs", "submit", "--engine", "ray", "--cluster", "dead", "--target", "t", "--workflow", "w", "--state-root", str(cp.root), "--", "true")
        assert res.returncode == 3 and "its head's GCS and raylet are gone (killed); start it again" in res.stderr, res.stderr
        assert "ray cluster start-local --name dead" in res.stderr, res.stderr
        assert seen[0] == 0, f"{seen[0]} connections to the dead head's jobs API"
