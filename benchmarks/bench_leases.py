#!/usr/bin/env python3
"""Leases: throughput under contention, CLI latency, one scheduling pass over a long queue.

Targets (issue 10):
1. reserve + release in-process through the API, 16 contending processes on 3
   items: >= 300 cycles/s in total with 0 double grants. Beside it, the
   baseline: upstream's `merlin ray resources reserve` / `release`, one process
   per call. The baseline is REPRODUCED here, not run: upstream's algorithm as
   the issue describes it (read the lease file, check the key is free, write
   the holder; no lock, one holder per key, no expiry, no queue), in a
   one-file Python script run once per command, under the same 16-way
   contention. Its double grants are counted from the holders' own logs.
2. `merlin ray resources reserve ... && release` through the CLI: <= 0.3 s per command
   (median), beside the reproduced upstream one-shot command.
3. One scheduling pass with 1,000 waiting requests over 50 items: <= 50 ms.

Then (information) the 30 s contention run of the acceptance test: 16 processes,
3 items, random TTLs, SIGKILLs; double grants, bad fencing sequences,
unreadable files and leases of killed holders must all be 0.

    .venv/bin/python benchmarks/bench_leases.py [--seconds 10] [--contention-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import MERLIN, PY, REPO, env, report, say_baseline, temp_root, upstream_cli

sys.path.insert(0, str(REPO / "tests"))

CYCLER = """
import os, sys, time
from merlin.leases.book import LeaseBook
book = LeaseBook(sys.argv[1])
open(sys.argv[2], "w").close()  # ready
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
end = time.monotonic() + float(sys.argv[4])
n = 0
cpu = time.process_time()
while time.monotonic() < end:
    lease = book.reserve(["slot:1"], pid=os.getpid(), ttl=60, wait=True, timeout=60)
    book.release(lease["lease_id"])
    n += 1
print(n, time.process_time() - cpu)
"""

def upstream(cli: Path, root: Path, *args: str) -> list[str]:
    return [PY, str(cli), "ray", "--state-root", str(root), "resources", *args]


UPSTREAM_DRIVER = r"""
import os, subprocess, sys, time
cli, root, log, go, seconds, me = sys.argv[1:7]
base = [sys.executable, cli, "ray", "--state-root", root, "resources"]
keys = ["slot-0", "slot-1", "slot-2"]
while not os.path.exists(go):
    time.sleep(0.01)
end = time.monotonic() + float(seconds)
n = 0
i = int(me)
while time.monotonic() < end:
    key = keys[i % 3]; i += 1
    r = subprocess.run(base + ["reserve", key, "--owner", me], capture_output=True, text=True)
    if not r.stdout.startswith("Lease ID: "):
        continue  # upstream says the key is busy (ValueError, exit 1)
    start = time.time()
    subprocess.run(base + ["release", r.stdout.split()[2]], capture_output=True)
    with open(log, "a") as f:
        f.write(f"{key} {start} {time.time()}\n")
    n += 1
print(n)
"""


def throughput(seconds: float, procs: int = 16) -> tuple[float, dict]:
    from merlin.leases.audit import audit
    from merlin.leases.book import LeaseBook

    root = temp_root("merlin-bench-leases-")
    LeaseBook(root).define([{"id": f"slot-{n}", "pool": "slot"} for n in range(3)])
    ready, go = root.parent / "ready", root.parent / "go"
    workers = [subprocess.Popen([PY, "-c", CYCLER, str(root), f"{ready}{n}", str(go), str(seconds)], stdout=subprocess.PIPE, text=True, env=env())
               for n in range(procs)]  # fmt: skip
    while not all(Path(f"{ready}{n}").exists() for n in range(procs)):
        time.sleep(0.02)
    t0 = time.monotonic()
    go.touch()
    outs = [w.communicate()[0].split() for w in workers]
    elapsed = time.monotonic() - t0
    counts = [int(o[0]) for o in outs]
    result = audit(root)
    result["cpu_s"] = sum(float(o[1]) for o in outs)  # inside the measured loops: no interpreter start-up
    result["cycles"] = sum(counts)
    shutil.rmtree(root.parent, ignore_errors=True)
    return sum(counts) / elapsed, result


def upstream_throughput(cli: Path, seconds: float, procs: int = 16) -> tuple[float, int]:
    work = Path(temp_root("merlin-bench-upstream-")).parent
    work.mkdir(parents=True, exist_ok=True)
    driver = work / "driver.py"
    driver.write_text(UPSTREAM_DRIVER)
    path, log, go = work / "state", work / "grants.log", work / "go"
    drivers = [subprocess.Popen([PY, str(driver), str(cli), str(path), str(log), str(go), str(seconds), str(n)], stdout=subprocess.PIPE, text=True, env=env())
               for n in range(procs)]  # fmt: skip
    time.sleep(0.5)
    t0 = time.monotonic()
    go.touch()
    counts = [int(d.communicate()[0].strip() or 0) for d in drivers]
    elapsed = time.monotonic() - t0
    spans: dict[str, list[tuple[float, float]]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        key, a, b = line.split()
        spans.setdefault(key, []).append((float(a), float(b)))
    double = 0
    for s in spans.values():
        s.sort()
        double += sum(1 for (_, end), (start, _) in zip(s, s[1:], strict=False) if start < end)
    shutil.rmtree(work, ignore_errors=True)
    return sum(counts) / elapsed, double


def cli_latency(runs: int, cli: Path | None) -> tuple[float, float]:
    """Median wall of one `merlin ray resources reserve` / `release` command, and of upstream's (NaN: absent)."""
    from merlin.leases.book import LeaseBook

    root = temp_root("merlin-bench-leases-cli-")
    LeaseBook(root).define([{"id": "board-01", "pool": "board"}])
    ours: list[float] = []
    base: list[float] = []
    up_root = root.parent / "upstream"
    for n in range(runs + 1):
        t = time.perf_counter()
        res = subprocess.run([*MERLIN, "ray", "resources", "reserve", "board:1", "--state-root", str(root)], capture_output=True, text=True, env=env())
        a = time.perf_counter() - t
        assert res.returncode == 0, res.stderr
        t = time.perf_counter()
        res2 = subprocess.run([*MERLIN, "ray", "resources", "release", res.stdout.strip(), "--state-root", str(root)], capture_output=True, text=True, env=env())
        b = time.perf_counter() - t
        assert res2.returncode == 0, res2.stderr
        if n:  # the first round warms the bytecode caches
            ours += [a, b]
        if cli is None:
            continue
        t = time.perf_counter()
        up = subprocess.run(upstream(cli, up_root, "reserve", "board-01", "--owner", "me"), capture_output=True, text=True, env=env())
        c = time.perf_counter() - t
        assert up.stdout.startswith("Lease ID: "), up.stderr
        t = time.perf_counter()
        subprocess.run(upstream(cli, up_root, "release", up.stdout.split()[2]), capture_output=True, env=env(), check=True)
        d = time.perf_counter() - t
        if n:
            base += [c, d]
    shutil.rmtree(root.parent, ignore_errors=True)
    return statistics.median(ours), statistics.median(base) if base else float("nan")


def scheduling_pass(waiting: int = 1000, items: int = 50) -> tuple[float, float, float]:
    """(locked pass with nothing to grant, release that grants the next waiters, policy.schedule alone), median seconds."""
    from merlin.clock import iso
    from merlin.leases import policy
    from merlin.leases.book import LeaseBook, new_lease

    rng = random.Random(1)
    root = temp_root("merlin-bench-leases-pass-")
    book = LeaseBook(root)
    pools = [f"pool{p}" for p in range(5)]
    book.define([{"id": f"item-{n:02d}", "pool": pools[n % 5], "labels": {"rack": f"r{n % 2}"}} for n in range(items)])
    # fabricate the queue straight into the journal (set-up, not the measured path): every item held, 1,000 waiting
    state = {"schema_version": 1, "seq": 1, "fences": {}, "live": {}, "outbox": []}
    now = time.time()
    owner = {"user": "bench", "host": "bench-host", "pid": None, "pid_start": None, "run_id": None}
    for n in range(items):
        lease = new_lease(f"lease-held-{n:04d}", owner, [{"pool": pools[n % 5], "count": 1, "labels": {"rack": f"r{n % 2}"}}], 0, 3600, now)
        lease.update(state="granted", items=[f"item-{n:02d}"], tokens={f"item-{n:02d}": 1}, granted_at=iso(now), expires_at=iso(now + 3600), seq=2, rev=2)
        state["live"][lease["lease_id"]] = lease
        state["fences"][f"item-{n:02d}"] = 1
    for n in range(waiting):
        bundles = [{"pool": p, "count": rng.randint(1, 3), "labels": ({"rack": "r1"} if rng.random() < 0.3 else {})} for p in rng.sample(pools, rng.randint(1, 2))]
        lease = new_lease(f"lease-wait-{n:04d}", owner, bundles, rng.randint(0, 3), 600, now + n * 0.001)
        lease.update(state="waiting", seq=1, rev=1)
        state["live"][lease["lease_id"]] = lease
    book.layout.book.write_text("\n" + json.dumps(state, separators=(",", ":")) + "\n")
    idle = []
    for _ in range(7):
        t = time.perf_counter()
        book.refresh()
        idle.append(time.perf_counter() - t)
    grant = []
    for n in range(7):
        t = time.perf_counter()
        book.release(f"lease-held-{n:04d}", force=True, reason="bench")
        grant.append(time.perf_counter() - t)
    st, inv = book.snapshot()
    waiting_now = [x for x in st["live"].values() if x["state"] == "waiting"]
    held = {i for x in st["live"].values() if x["state"] == "granted" for i in x["items"]}
    pure = []
    for _ in range(7):
        t = time.perf_counter()
        policy.schedule(waiting_now, inv["items"], held - {"item-10", "item-11"})
        pure.append(time.perf_counter() - t)
    shutil.rmtree(root.parent, ignore_errors=True)
    return statistics.median(idle), statistics.median(grant), statistics.median(pure)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    ap.add_argument("--contention-seconds", type=float, default=30.0, help="length of the SIGKILL contention run (0: skip)")
    ap.add_argument("--cli-runs", type=int, default=7)
    args = ap.parse_args()
    upstream_cli_path = upstream_cli()
    say_baseline(upstream_cli_path)
    rate, result = throughput(args.seconds)
    up_rate, up_double = upstream_throughput(upstream_cli_path, args.seconds) if upstream_cli_path else (float("nan"), float("nan"))
    cli, cli_base = cli_latency(args.cli_runs, upstream_cli_path)
    idle, grant, pure = scheduling_pass()
    rows = [
        ("reserve+release cycles/s, 16 procs, 3 items", rate, up_rate, ">= 300/s, 0 double grants", rate >= 300 and result["double_grants"] == 0),
        ("  double grants (merlin | upstream)", float(result["double_grants"]), float(up_double), "merlin 0", result["double_grants"] == 0),
        ("  CPU ms per cycle, all processes [info]", 1000 * result["cpu_s"] / max(1, result["cycles"]), float("nan"), "(no target; load-independent)", True),
        ("  fencing sequences broken [merlin]", float(result["bad_token_sequences"]), float("nan"), "0", result["bad_token_sequences"] == 0),
        ("CLI reserve / release, s per command", cli, cli_base, "<= 0.3 s", cli <= 0.3),
        ("scheduling pass, 1000 waiting x 50 items", idle, float("nan"), "<= 0.050 s", idle <= 0.050),
        ("  release granting the next waiters [info]", grant, float("nan"), "(no target)", True),
        ("  policy.schedule alone [info]", pure, float("nan"), "(no target)", True),
    ]
    if args.contention_seconds > 0:
        from test_leases_contention import contend

        c = contend(temp_root("merlin-bench-leases-kill-"), args.contention_seconds)
        ok = all(c[k] == 0 for k in ("double_grants", "bad_token_sequences", "unreadable", "live_leases_of_killed"))
        print(f"contention {args.contention_seconds:g}s, 16 procs, 3 items, SIGKILLs: {json.dumps(c, sort_keys=True)}")
        rows.append((f"SIGKILL contention {args.contention_seconds:g}s: grants", float(c["grants"]), float("nan"), "0 double/unreadable/leaked", ok))
    print(f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return report("leases (merlin beside upstream's CLI when $MERLIN_UPSTREAM is set, same run)", rows)


if __name__ == "__main__":
    sys.exit(main())
