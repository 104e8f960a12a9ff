#!/usr/bin/env python3
"""The agent gateway under load, against a real `merlin serve` on a free loopback port.

Targets (issue 12):
- a status call over HTTP on a warm server: <= 10 ms median; baseline, same
  run, same state root: `merlin ray jobs status RUN_ID` as a process;
- MCP `runs_list` with limit=0 (all 1,000 runs' summaries; streamable HTTP, the
  SDK's client): <= 100 ms median; baseline: `merlin ray jobs list --json` as a process;
  with the server's and the client's CPU seconds per call beside it (on a shared
  machine the wall time follows the load average, CPU time does not);
- 50 concurrent status clients for 10 s: p50, p99 and the error count (0).

The run is a finished local run, so both sides read the ledger only (no
engine to ask). The server runs with `--rate-limit 0`: every client here
shares one loopback address, and the per-client limit would answer 429 to
the load test by design. Exits 1 on FAIL.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import threading
import time

from _common import MERLIN, fabricate_runs, median_wall, report, temp_root

N_RUNS = 1000
CALLS = 200
CLIENTS = 50
SECONDS = 10.0


def start(root):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "tests"))
    from test_gateway_support import start_server  # the same launcher as the tests

    return start_server(root, "--rate-limit", "0")


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

        # 3. 50 concurrent status clients for 10 s
        lat: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at: list[float] = []  # set when every client is connected and ready
        barrier = threading.Barrier(CLIENTS, action=lambda: stop_at.append(time.monotonic() + SECONDS))

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
        lat.sort()
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        nan = float("nan")
        rows = [
            ("HTTP runs_status, warm server (median)", http_status, cli_status, "<= 0.010 s", http_status <= 0.010),
            (f"MCP runs_list limit=0: all {N_RUNS} (median)", mcp_list_s, cli_list, "<= 0.100 s", mcp_list_s <= 0.100),
            ("  runs_list CPU per call: server [info]", cpu_per_call[0], nan, "(was 0.035-0.040 s)", True),
            ("  runs_list CPU per call: client SDK [info]", cpu_per_call[1], nan, "(was 0.020-0.025 s)", True),
            (f"{CLIENTS} clients x {SECONDS:g} s: p50 [info]", p50, nan, f"{len(lat)} requests", True),
            (f"{CLIENTS} clients x {SECONDS:g} s: p99 [info]", p99, nan, f"{len(lat) / SECONDS:.0f} req/s", True),
            (f"{CLIENTS} clients x {SECONDS:g} s: errors", float(len(errors)), nan, "0 errors", not errors),
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
