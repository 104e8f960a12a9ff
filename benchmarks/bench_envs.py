#!/usr/bin/env python3
"""Run environments, side by side with their baselines in one run (issue 16):

1. warm reuse: a local run whose env is ready costs <= 0.15 s more, submit (the CLI started) to
   the command's first line, than the same run without an env;
2. cold build: merlin's build of a spec (``merlin.envs.build.ensure``, fresh cache) <= 1.2x
   ``uv venv`` + ``uv pip install`` of the same spec by hand (fresh uv cache too);
3. on one private Ray head: merlin's ``runtime`` beside Ray's own ``runtime_env={"uv": [...]}``
   and ``{"pip": [...]}`` for the same package, submit to the command's first line, cold (first
   run of the spec) and warm (median of the next ones); merlin's warm start must beat Ray's.

Packages come from a local wheelhouse (tests/wheelhouse.py: mlnprobe 1.0 and 2.0): no network.
"Submit to first line": the command's first act is to write ``time.time()`` to a file.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MERLIN, REPO, env, private_cluster, report

sys.path.insert(0, str(REPO))

WARM_RUNS = 5
#: warm runs of each on the Ray head (a Ray job's start varies by seconds on a loaded machine: the median of 5)
RAY_WARM_RUNS = 5
FIRST = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"


def wait_file(path: Path, timeout: float = 600.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return float(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.005)
    raise SystemExit(f"the command never wrote {path} within {timeout:.0f}s")


def local_first_line(root: Path, marks: Path, i: int, env_file: Path | None) -> float:
    mark = marks / f"local-{'env' if env_file else 'plain'}-{i}"
    argv = [*MERLIN, "ray", "jobs", "submit", "--engine", "local", "--target", "bench", "--workflow", "envs", "--state-root", str(root)]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    argv += ["--", "python", "-c", FIRST, str(mark)]
    t0 = time.time()
    res = subprocess.run(argv, capture_output=True, env=env(), cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"submit failed: {res.stderr.decode()[-1500:]}")
    return wait_file(mark) - t0


def cold_builds(wheels: Path, work: Path, runs: int = 3) -> tuple[float, float]:
    from merlin.envs.build import ensure
    from merlin.envs.cache import EnvCache
    from merlin.envs.spec import find_uv

    uv = find_uv()
    ours, hand = [], []
    for i in range(runs):
        runtime = {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "packages": ["mlnprobe==2.0"], "find_links": [str(wheels)], "no_index": True}
        t0 = time.perf_counter()
        ensure(runtime, EnvCache(work / f"merlin-cache-{i}"))
        ours.append(time.perf_counter() - t0)
        venv, uvc = work / f"hand-{i}", work / f"hand-uv-{i}"
        e = {**os.environ, "UV_CACHE_DIR": str(uvc), "UV_PYTHON_DOWNLOADS": "never"}
        e.pop("VIRTUAL_ENV", None)
        t0 = time.perf_counter()
        subprocess.run([uv, "venv", "--quiet", "--python", runtime["python"], str(venv)], check=True, env=e)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--no-index", "--find-links", str(wheels), "mlnprobe==2.0"],
                       check=True, env=e)  # fmt: skip
        hand.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(hand)


def ray_first_lines(cp, rec, wheels: Path, marks: Path) -> dict[str, tuple[float, float | None, str]]:
    """kind -> (cold s, warm median s or None, note)."""
    from ray.job_submission import JobSubmissionClient

    from merlin.clusters.auth import headers_for

    client = JobSubmissionClient(rec.address, headers=headers_for(rec.auth, rec.name))
    out: dict[str, tuple[float, float | None, str]] = {}

    def merlin_one(tag: str) -> float:
        mark = marks / tag
        t0 = time.time()
        cp.submit(["python", "-c", FIRST, str(mark)], target="bench", workflow="envs-ray", engine="ray",
                  runtime={"packages": ["mlnprobe==1.0"], "find_links": [str(wheels)], "no_index": True})  # fmt: skip
        return wait_file(mark, 900) - t0

    def ray_one(tag: str, runtime_env: dict) -> float:
        mark = marks / tag
        t0 = time.time()
        sub = client.submit_job(entrypoint=f'python -c "{FIRST}" {mark}', runtime_env=runtime_env)
        deadline = time.monotonic() + 900
        while not mark.exists():
            status = client.get_job_status(sub)
            if str(status) in ("FAILED", "STOPPED") or time.monotonic() > deadline:
                raise RuntimeError(f"Ray job {status}: {(client.get_job_info(sub).message or '')[-300:]}")
            time.sleep(0.05)
        return wait_file(mark) - t0

    opts = ["--no-index", "--find-links", str(wheels)]
    envs = {kind: {kind: {"packages": ["mlnprobe==1.0"], key: opts}} for kind, key in (("uv", "uv_pip_install_options"), ("pip", "pip_install_options"))}
    cold = {"merlin runtime": merlin_one("merlin-cold")}
    notes: dict[str, str] = {}
    for kind, env_ in envs.items():
        try:
            cold[kind] = ray_one(f"ray-{kind}-cold", env_)
        except RuntimeError as exc:
            notes[kind] = str(exc).splitlines()[0][:150]
    warm: dict[str, list[float]] = {k: [] for k in cold}
    order = list(cold)
    for i in range(RAY_WARM_RUNS):  # alternately, each round starting with the next: the same machine state for each
        for kind in order[i % len(order) :] + order[: i % len(order)]:
            if kind == "merlin runtime":
                warm[kind].append(merlin_one(f"merlin-warm-{i}"))
            else:
                warm[kind].append(ray_one(f"ray-{kind}-warm-{i}", envs[kind]))
    for kind, times in warm.items():
        sys.stderr.write(f"warm first lines, {kind}: {', '.join(f'{t:.2f}' for t in times)} s\n")
    out["merlin runtime"] = (cold["merlin runtime"], statistics.median(warm["merlin runtime"]), "")
    for kind in envs:
        out[f"ray runtime_env {kind}"] = (cold[kind], statistics.median(warm[kind]), "") if kind in cold else (float("nan"), None, notes[kind])
    return out


def main() -> int:
    from tests.wheelhouse import build_wheelhouse

    work = Path(tempfile.mkdtemp(prefix="merlin-bench-envs-"))
    try:
        wheels = build_wheelhouse(work / "wh")
        root, marks = work / "state", work / "marks"
        marks.mkdir()
        os.environ["MERLIN_ENV_CACHE"] = str(work / "envcache")
        env_file = work / "runtime.yaml"
        env_file.write_text(json.dumps({"with": ["mlnprobe==2.0"], "find_links": [str(wheels)], "no_index": True}))
        sys.stderr.write("warm reuse on the local engine...\n")
        local_first_line(root, marks, 99, env_file)  # builds it: the measured runs reuse it
        plain, with_env = [], []
        for i in range(WARM_RUNS):
            plain.append(local_first_line(root, marks, i, None))
            with_env.append(local_first_line(root, marks, i, env_file))
        p, w = statistics.median(plain), statistics.median(with_env)
        sys.stderr.write("cold builds...\n")
        ours_cold, hand_cold = cold_builds(wheels, work)
        rows = [
            ("local run, warm env: submit -> first line", w, p, "<= without an env + 0.15 s", w - p <= 0.15),
            ("cold build (fresh cache) vs uv venv+pip install", ours_cold, hand_cold, "<= 1.2x by hand", ours_cold <= 1.2 * hand_cold),
        ]
        for what, ours, base, _t, _ok in rows:  # printed now too: the Ray part below may not get a head on a loaded machine
            sys.stderr.write(f"{what}: merlin {ours:.3f} s, baseline {base:.3f} s\n")
        from merlin.errors import RunFailed

        try:
            with private_cluster(work / "ray-state") as (cp, rec):
                ray = ray_first_lines(cp, rec, wheels, marks)
        except RunFailed as exc:
            print(f"Ray part not measured: no private Ray head started here ({exc.message[:160]})")
            return report("run environments (local and cold build only)", rows) or 2
        m_cold, m_warm, _ = ray["merlin runtime"]
        for kind in ("uv", "pip"):
            cold, warm, note = ray[f"ray runtime_env {kind}"]
            if note:
                print(f"ray runtime_env {kind}: did not start here: {note}")
            rows.append((f"ray head, cold first line vs runtime_env {kind}", m_cold, cold, "(info)", True))
            rows.append((f"ray head, warm first line vs runtime_env {kind}", m_warm, warm if warm is not None else float("nan"),
                         f"< runtime_env {kind}'s warm", warm is None or m_warm < warm))  # fmt: skip
        return report(f"run environments (local: median of {WARM_RUNS}; cold build: median of 3; Ray warm: median of {RAY_WARM_RUNS})", rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
