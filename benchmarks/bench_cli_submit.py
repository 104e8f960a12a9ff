#!/usr/bin/env python3
"""Client CPU of 50 `./merlin ray jobs submit` beside Ray's SDK submitting 50 in one process, same run.

Target (issue 15): the CPU the client side spends (user+sys of the client
processes, children included) on 50 CLI submissions of a trivial command is
<= 3x what Ray's SDK spends submitting the same 50 with
``JobSubmissionClient.submit_job`` in one Python process (its imports
included). merlin's figure includes ./merlin's wrapper, its imports, and
writing each run's request, record and events; the SDK writes nothing. Before
issue 15 it was about 6.7x, half of a submit's imports being pydantic's.

Starts a private Ray head on free ports; ``--rounds N`` alternates the two
sides N times and takes the median. Exits 1 on FAIL. ``--breakdown`` also
shows where one submit's CPU goes: the interpreter's start, each group of
imports, then the submit itself (median CPU of fresh interpreters, each step's
figure the CPU it added), beside the per-submission budget the target allows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from _common import PY, REPO, env, private_cluster, report, temp_root

N = 50
TARGET = 3.0
WRAPPER = str(REPO / "merlin")

SDK = r"""
import json, os, sys
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1], headers=json.loads(os.environ["MERLIN_BENCH_HEADERS"]) or None)
ids = [client.submit_job(entrypoint="true") for _ in range(int(sys.argv[2]))]
assert len(set(ids)) == int(sys.argv[2]), ids
"""


#: The steps of one submit, in the order a submit meets them: (label, modules imported). Each group's
#: figure is what it adds to the groups before it (a module shared with an earlier group is counted there).
STEPS = [
    ("typing, re, enum, functools, collections, shlex", ["typing", "re", "enum", "functools", "collections", "contextlib", "shlex"]),
    ("json", ["json"]),
    ("pathlib (+ urllib.parse, ipaddress, fnmatch)", ["pathlib"]),
    ("datetime (merlin.clock, the records)", ["datetime"]),
    ("merlin: entry, fast path, output", ["merlin.cli.entry", "merlin.cli.fast_submit", "merlin.cli.submit_options", "merlin.cli.output",
                                          "merlin.cli.nextsteps", "merlin.cli.common", "merlin.cli.jobs_submit"]),
    ("merlin: ledger (status, Layout, store, atomic, text)", ["merlin.ledger", "merlin.ledger.text"]),
    ("merlin: records, facade, job API types", ["merlin.ledger.models", "merlin.ledger.record", "merlin.controlplane", "merlin.client",
                                                "merlin.control.submit", "merlin.control.checks"]),
    ("merlin: the Ray engine and its client", ["merlin.engines.registry", "merlin.engines.ray_engine", "merlin.engines.ray_api",
                                               "merlin.engines.http11", "merlin.engines.base", "merlin.clusters.auth", "merlin.clusters.fit",
                                               "merlin.procid"]),
]  # fmt: skip

BREAKDOWN = r"""
import json, sys, time
marks = [("python start-up and site", time.process_time())]
for label, modules in json.loads(sys.argv[1]):
    for m in modules:
        __import__(m)
    marks.append((label, time.process_time()))
from merlin.cli import entry
code = 0
try:
    entry.main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
marks.append(("the submit (parse, records, 2 HTTP requests, output)", time.process_time()))
sys.stderr.write("BREAKDOWN:" + json.dumps(marks) + "\n")
entry._end(code)  # as run() ends the process after a fast-path submit
"""


def breakdown(cli: Sequence[str], budget: float, reps: int = 15) -> None:
    """Median CPU each step adds to one submit (fresh interpreters), then the rest of the process as measured from outside."""
    runs: list[list[float]] = []
    whole: list[float] = []
    argv = [PY, "-c", BREAKDOWN, json.dumps(STEPS), *cli[1:]]
    labels: list[str] = []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(), cwd=REPO, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = [x for x in res.stderr.splitlines() if x.startswith("BREAKDOWN:")]
        if not line:
            raise SystemExit(f"breakdown failed: {res.stderr[-2000:]}")
        marks = json.loads(line[-1][len("BREAKDOWN:") :])
        labels = [m[0] for m in marks]
        runs.append([b - a for a, b in zip([0.0] + [m[1] for m in marks[:-1]], [m[1] for m in marks], strict=True)])
        whole.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    steps = [statistics.median(r[i] for r in runs) for i in range(len(labels))]
    rest = statistics.median(whole) - sum(steps)
    cli_whole = statistics.median(measured([cli])[0] for _ in range(reps))
    print(f"where one submit's CPU goes (median of {reps} fresh interpreters; ms; budget per submission at the target: {budget * 1000:.1f} ms)")
    for label, value in [*zip(labels, steps, strict=True), ("the process's end (measured from outside)", rest)]:
        print(f"  {label:58} {value * 1000:7.1f}")
    print(f"  {'sum (python -m merlin, one process)':58} {statistics.median(whole) * 1000:7.1f}")
    print(f"  {'./merlin, measured whole (the wrapper included)':58} {cli_whole * 1000:7.1f}")


def measured(argvs: Sequence[Sequence[str]], extra_env: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of running each argv in turn: user+sys of the processes and their children."""
    e = {**env(), **(extra_env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for argv in argvs:
        res = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e, cwd=REPO)
        if res.returncode != 0:
            raise SystemExit(f"benchmark command failed ({res.returncode}): {' '.join(argv)}\n{res.stderr.decode()[-2000:]}")
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="alternate CLI and SDK this many times; medians are reported")
    ap.add_argument("-n", type=int, default=N, help=f"submissions per side and round (default {N})")
    ap.add_argument("--breakdown", action="store_true", help="also show where one submit's CPU goes, step by step")
    args = ap.parse_args()
    root = temp_root("merlin-bench-cli-submit-")
    try:
        with private_cluster(root) as (cp, rec):
            from merlin.clusters.auth import headers_for

            sdk_env = {"MERLIN_BENCH_HEADERS": json.dumps(headers_for(rec.auth, rec.name) or {})}
            cli = [WRAPPER, "ray", "jobs", "submit", "--engine", "ray", "--target", "bench", "--workflow", "cli-submit",
                   "--state-root", str(root), "--", "true"]
            sdk = [PY, "-c", SDK, rec.address]
            measured([cli])  # warm-up: bytecode caches on both sides, the first connection to the head
            measured([[*sdk, "1"]], sdk_env)
            ours_cpu, base_cpu, ours_wall, base_wall = [], [], [], []
            for _ in range(args.rounds):
                cpu, wall = measured([cli] * args.n)
                ours_cpu.append(cpu)
                ours_wall.append(wall)
                cpu, wall = measured([[*sdk, str(args.n)]], sdk_env)
                base_cpu.append(cpu)
                base_wall.append(wall)
            submitted = len(cp.list_runs())
            assert submitted == 1 + args.rounds * args.n, submitted  # the warm-up and every measured submission recorded
            ours, base = statistics.median(ours_cpu), statistics.median(base_cpu)
            ratio = ours / base
            rows = [
                (f"client CPU, {args.n} CLI submits vs SDK", ours, base, f"<= {TARGET:g}x baseline (ratio {ratio:.2f}x)", ratio <= TARGET),
                ("  CPU per submission [info]", ours / args.n, base / args.n, "(no target)", True),
                ("  wall, all submissions [info]", statistics.median(ours_wall), statistics.median(base_wall), "(no target)", True),
            ]
            # the figures before the private head stops: stopping it cancels each run still queued, slow under load
            print(f"ratio (CLI / SDK client CPU): {ratio:.2f}x, target <= {TARGET:g}x (load {os.getloadavg()[0]:.1f})", flush=True)
            code = report(
                f"{args.n} x `./merlin ray jobs submit --engine ray -- true` vs Ray SDK submit_job x{args.n} in one process "
                f"(median of {args.rounds} round(s), pid {os.getpid()})",
                rows,
            )
            sys.stdout.flush()
            if args.breakdown:
                breakdown(cli, TARGET * base / args.n)
                sys.stdout.flush()
        return code
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
