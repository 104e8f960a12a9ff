#!/usr/bin/env python3
"""Spec loading speed: `targetgen validate` / `plan` of one upstream spec and
its overlay, beside upstream merlin's CLI on the same files in the same run,
plus where merlin's time goes (import of the spec layer, one load, and
whether the load needed pydantic: a valid pair is checked by merlin.spec.fast).

Target (issue 7): validate and plan each <= 0.15 s (upstream measured
0.124 / 0.127 s on these 2 cores). The upstream CLI is tools/merlin.py of the
checkout named by MERLIN_UPSTREAM (benchmarks/README.md); without it the baseline column
says "not available". The spec is MERLIN_BENCH_SPEC or the first of
../shared/upstream-specs (looked for beside the repo and one level up, for a
worktree). Plans go to temp dirs. Exits 1 if a target is missed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import MERLIN, PY, REPO, env, interleaved, median_wall, report, say_baseline, upstream_cli

RUNS = 15
TARGET_S = 0.15


def spec_pair() -> tuple[Path, Path | None]:
    if os.environ.get("MERLIN_BENCH_SPEC"):
        cap = Path(os.environ["MERLIN_BENCH_SPEC"])
    else:
        found = [
            p
            for shared in (REPO.parent / "shared", REPO.parent.parent / "shared")
            for p in sorted((shared / "upstream-specs").glob("*/capability.yaml"))
        ]
        if not found:
            raise SystemExit("no upstream spec found: set MERLIN_BENCH_SPEC=/path/to/capability.yaml")
        cap = found[0]
    overlays = sorted((cap.parent / "overlays").glob("*.yaml"))
    return cap, (overlays[0] if overlays else None)


_BREAKDOWN = """
import sys, time
c = time.perf_counter
t0 = c(); import yaml
t1 = c(); from merlin.spec.loader import load_pair
t2 = c(); cap, ovl = load_pair(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
t3 = c(); print(t1 - t0, t2 - t1, t3 - t2, int("pydantic" in sys.modules))
"""


def breakdown(cap: Path, ovl: Path | None, runs: int = 9) -> tuple[float, float, float, bool]:
    """Median seconds of: importing PyYAML, importing merlin's spec layer, one load of the pair;
    and whether the load imported pydantic (it should not, for a valid pair: merlin.spec.fast)."""
    samples = []
    for _ in range(runs + 1):
        res = subprocess.run(
            [PY, "-c", _BREAKDOWN, str(cap), *([str(ovl)] if ovl else [])],
            capture_output=True, text=True, env=env(), cwd=REPO, check=True,
        )
        samples.append([float(x) for x in res.stdout.split()])
    samples = samples[1:]  # the first run writes the bytecode caches
    libs, layer, load = (statistics.median(s[i] for s in samples) for i in range(3))
    return libs, layer, load, any(s[3] for s in samples)


def main() -> int:
    cap, ovl = spec_pair()
    pair = [str(cap), *(["--overlay", str(ovl)] if ovl else [])]
    upstream = upstream_cli()
    out = Path(tempfile.mkdtemp(prefix="merlin-bench-spec-"))
    try:
        validate = [*MERLIN, "targetgen", "validate", *pair]
        plan = [*MERLIN, "targetgen", "plan", *pair, "--out-dir", str(out / "merlin")]
        if upstream is not None:
            up = [PY, str(upstream), "targetgen"]
            up_pair = [str(cap), *(["--overlay", str(ovl)] if ovl else [])]
            v, v_base = interleaved(validate, [*up, "validate", *up_pair], runs=RUNS)
            p, p_base = interleaved(plan, [*up, "plan", *up_pair, "--out-dir", str(out / "upstream")], runs=RUNS)
        else:
            v, p = median_wall(validate, RUNS), median_wall(plan, RUNS)
            v_base = p_base = float("nan")
        floor = median_wall([PY, "-c", "pass"], RUNS)
        libs, spec_layer, load, used_pydantic = breakdown(cap, ovl)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    name = f"{cap.parent.name}" + (f" + {ovl.stem}" if ovl else "")
    say_baseline(upstream)
    print(f"interpreter floor (python -c pass): {floor:.3f} s")
    print(f"in-process: import yaml {libs:.3f} s, import merlin.spec.loader {spec_layer:.3f} s, load_pair {load:.3f} s"
          f" ({'imported pydantic' if used_pydantic else 'pydantic not imported: the fast checker vouched for both files'})")
    rows = [
        (f"targetgen validate ({name})", v, v_base, f"<= {TARGET_S:.2f} s", v <= TARGET_S),
        (f"targetgen plan ({name})", p, p_base, f"<= {TARGET_S:.2f} s", p <= TARGET_S),
    ]
    return report(f"spec validate/plan: merlin vs upstream merlin, median wall of {RUNS}", rows)


if __name__ == "__main__":
    sys.exit(main())
