#!/usr/bin/env python3
"""`targetgen validate` and `plan` of one upstream spec, beside upstream merlin's, same run.

Target (issue 7): each <= 0.15 s (upstream measured 0.124 / 0.127 s). The spec
is the first of ../shared/upstream-specs (or MERLIN_BENCH_SPEC=path); upstream
is the argparse CLI of the checkout $MERLIN_UPSTREAM names (benchmarks/README.md),
run by the same interpreter; without it the baseline is absent and merlin alone
is measured. Plans are written to temp dirs. Exits 1 on FAIL.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import MERLIN, PY, REPO, interleaved, median_wall, report, say_baseline, upstream_cli

RUNS = 15
TARGET_S = 0.15


def spec() -> Path:
    if os.environ.get("MERLIN_BENCH_SPEC"):
        return Path(os.environ["MERLIN_BENCH_SPEC"])
    found = sorted((REPO.parent / "shared" / "upstream-specs").glob("*/capability.yaml"))
    if not found:
        raise SystemExit("no upstream spec found: set MERLIN_BENCH_SPEC=/path/to/capability.yaml")
    return found[0]


def main() -> int:
    cap = str(spec())
    out = Path(tempfile.mkdtemp(prefix="merlin-bench-plan-"))
    cli = upstream_cli()
    say_baseline(cli)
    try:
        validate = [*MERLIN, "targetgen", "validate", cap]
        plan = [*MERLIN, "targetgen", "plan", cap, "--out-dir", str(out / "merlin")]
        if cli is not None:
            upstream = [PY, str(cli), "targetgen"]
            v, v_base = interleaved(validate, [*upstream, "validate", cap], runs=RUNS)
            p, p_base = interleaved(plan, [*upstream, "plan", cap, "--out-dir", str(out / "upstream")], runs=RUNS)
        else:
            v, p = median_wall(validate, RUNS), median_wall(plan, RUNS)
            v_base = p_base = float("nan")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rows = [
        ("targetgen validate (one upstream spec)", v, v_base, f"<= {TARGET_S:.3f} s", v <= TARGET_S),
        ("targetgen plan (one upstream spec)", p, p_base, f"<= {TARGET_S:.3f} s", p <= TARGET_S),
    ]
    return report(f"targetgen validate/plan of {Path(cap).parent.name}: merlin vs upstream merlin, median of {RUNS}", rows)


if __name__ == "__main__":
    sys.exit(main())
