#!/usr/bin/env python3
"""The agent gateway under load, against a real `merlin serve` on a free loopback port.

Targets (issue 12):
- a status call over HTTP on a warm server: <= 10 ms median; baseline, same
  run, same state root: `merlin ray jobs status RUN_ID` as a process;
- MCP `runs_list` with limit=0 (all 1,000 runs' summaries; streamable HTTP, the
  SDK's client): <= 100 ms median; baseline: `merlin ray jobs list --json` as a process;
  with the server's and the client's CPU seconds per call beside it (on a shared
  machine the wall time follows the load average, CPU time does not);
- 50 concurrent status clients for 10 s: p50, p99 and the error count (0);
- (issue 20) the same 50 clients for 15 s against a server with the default
  settings, rate limit on: 0 refused, p99 beside the same load against the
  gateway as of the merge base with main (`git archive` of its src/, run from
  a temp dir), whose per-address limit refused most of it.

The run is a finished local run, so both sides read the ledger only (no
engine to ask). Parts 1-3 run with `--rate-limit 0`. Exits 1 on FAIL.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import MERLIN, fabricate_runs, median_wall, report, temp_root

N_RUNS = 1000
CALLS = 200
CLIENTS = 50
SECONDS = 10.0
DEFAULT_SECONDS = 15.0


def start(root):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "tests"))
    from test_gateway_support import start_server  # the same launcher as the tests

    return start_server(root, "--rate-limit", "0")


def pct(lat: list[float], q: float) -> float:
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * q))] if lat else float("nan")


def load(server, rid: str, seconds: float) -> tuple[list[float], list[str]]:
    """CLIENTS threads posting runs_status for ``seconds``: every latency, and what was not a 200."""
    import httpx2

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at: list[float] = []  # set when every client is connected and ready
    barrier = threading.Barrier(CLIENTS, action=lambda: stop_at.append(time.monotonic() + seconds))

    def client() -> None:
        mine, bad = [], []
        with httpx2.Client(base_url=server.url, headers=server.headers(), timeout=30) as http:
            barrier.wait()
            while time.monotonic() < stop_at[0]:
                t = time.perf_counter()
                try:
                    r = http.post("/api/runs_status", json={"run_id": rid})
                    if r.status_code != 200:
                        bad.append(str(r.status_code))
                except httpx2.HTTPError as exc:
                    bad.append(type(exc).__name__)
                mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors


#: the gateway as issue 20 measured it (its per-address limit), the default figure of before
ISSUE_BASE = "efc3b1e"


def old_source(dest: Path) -> tuple[str, Path] | None:
    """``src/`` of the gateway before (git archive into ``dest``), or None without git: ``$MERLIN_GATEWAY_BASE``
    (any git ref), else the commit issue 20 measured, else the merge base of HEAD and main."""
    import os

    repo = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(repo)]
    try:
        ref = os.environ.get("MERLIN_GATEWAY_BASE") or ISSUE_BASE
        found = subprocess.run([*git, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True, text=True)
        if found.returncode == 0:
            base = found.stdout.strip()
        else:
            base = subprocess.run([*git, "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True).stdout.strip()
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(repo), "archive", base, "src"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return base[:10], dest / "src"


def default_load(tmp: Path, state: Path, rid: str) -> tuple[tuple[list[float], list[str]], tuple[str, list[float], list[str]] | None]:
    """The load for DEFAULT_SECONDS against a server with the default settings, and against the old gateway's."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_gateway_support import start_server

    results: list = []
    old = old_source(tmp / "old-tree")
    for label, extra in [("ours", None), ("old", old)]:
        if label == "old" and extra is None:
            continue
        where = tmp / f"default-{label}"
        shutil.copytree(state, where / "state")
        env = {"PYTHONPATH": str(extra[1])} if extra else None
        server = start_server(where, env=env)  # no --rate-limit: the default
        try:
            results.append(load(server, rid, DEFAULT_SECONDS))
        finally:
            server.stop()
    ours = results[0]
    return ours, ((old[0], *results[1]) if old else None)


def default_rows(ours: tuple[list[float], list[str]], old: tuple[str, list[float], list[str]] | None) -> list[tuple[str, float, float, str, bool]]:
    lat, errors = ours
    refused = errors.count("429")
    was = f"{CLIENTS} clients x {DEFAULT_SECONDS:g} s, default settings"
    old_p99 = pct(old[1], 0.99) if old else float("nan")
    old_refused = f"{old[2].count('429')} of {len(old[1])} refused at {old[0]}" if old else "old gateway not measured (no git)"
    return [
        (f"{was}: p99 (baseline: before)", pct(lat, 0.99), old_p99, f"{len(lat)} requests [info]", True),
        (f"{was}: refused (429)", float(refused), float(old[2].count("429")) if old else float("nan"), f"0 ({old_refused})", refused == 0),
        (f"{was}: other errors", float(len(errors) - refused), float("nan"), "0", len(errors) == refused),
    ]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from merlin.controlplane import ControlPlane

    root = temp_root("merlin-bench-gateway-")
    tmp = root.parent
    server = None
    try:
        state = tmp / "state"
        fabricate_runs(state, N_RUNS)
        run = ControlPlane(state).submit(["true"], target="bench", workflow="status", wait=True, timeout=60)
        server = start(tmp)
        rid = run.run_id

        # 1. one status call on a warm server vs the CLI as a process
        with httpx2.Client(base_url=server.url, headers=server.headers(), timeout=30) as http:

            def status() -> None:
                r = http.post("/api/runs_status", json={"run_id": rid})
                assert r.status_code == 200 and r.json()["run_id"] == rid, r.text

            timed(status, 20)  # warm-up
            http_status = statistics.median(timed(status, CALLS))
        cli_status = median_wall([*MERLIN, "ray", "jobs", "status", rid, "--state-root", str(state), "--json"], runs=7)

        # 2. MCP runs_list over 1,000 runs, through the SDK over streamable HTTP
        samples: list[float] = []
        cpu_per_call: list[float] = []  # (server, client) CPU seconds per call: what the load average cannot inflate
        import psutil

        proc = psutil.Process(server.proc.pid)

        def server_cpu() -> float:
            t = proc.cpu_times()
            return t.user + t.system

        async def mcp_list() -> None:
            async with httpx2.AsyncClient(headers=server.headers(), timeout=60) as h:
                async with Client(streamable_http_client(f"{server.url}/mcp", http_client=h)) as client:
                    await client.list_tools()
                    for i in range(23):
                        if i == 3:
                            cpu0 = server_cpu(), time.process_time()
                        t = time.perf_counter()
                        res = await client.call_tool("runs_list", {"limit": 0})
                        dt = time.perf_counter() - t
                        assert not res.is_error and len(res.structured_content["runs"]) == N_RUNS + 1
                        if i >= 3:
                            samples.append(dt)
                    cpu_per_call.extend([(server_cpu() - cpu0[0]) / 20, (time.process_time() - cpu0[1]) / 20])

        anyio.run(mcp_list)
        mcp_list_s = statistics.median(samples)
        cli_list = median_wall([*MERLIN, "ray", "jobs", "list", "--json", "--state-root", str(state)], runs=5)

        # 3. 50 concurrent status clients for 10 s (rate limit off)
        lat, errors = load(server, rid, SECONDS)
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
        server.stop()

        # 4. the default settings (rate limit on): 50 local clients for 15 s, none refused; the same load
        #    against the gateway before (old_source: as issue 20 measured it, its per-address limit)
        ours, old = default_load(tmp, state, rid)
        nan = float("nan")
        rows = [
            ("HTTP runs_status, warm server (median)", http_status, cli_status, "<= 0.010 s", http_status <= 0.010),
            (f"MCP runs_list limit=0: all {N_RUNS} (median)", mcp_list_s, cli_list, "<= 0.100 s", mcp_list_s <= 0.100),
            ("  runs_list CPU per call: server [info]", cpu_per_call[0], nan, "(was 0.035-0.040 s)", True),
            ("  runs_list CPU per call: client SDK [info]", cpu_per_call[1], nan, "(was 0.020-0.025 s)", True),
            (f"{CLIENTS} clients x {SECONDS:g} s: p50 [info]", p50, nan, f"{len(lat)} requests", True),
            (f"{CLIENTS} clients x {SECONDS:g} s: p99 [info]", p99, nan, f"{len(lat) / SECONDS:.0f} req/s", True),
            (f"{CLIENTS} clients x {SECONDS:g} s: errors", float(len(errors)), nan, "0 errors", not errors),
            *default_rows(ours, old),
        ]
        import os

        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (figures scale with it)")
        return report("agent gateway; baselines = `merlin ray jobs status RUN_ID --json` and `merlin ray jobs list --json` as processes", rows)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
