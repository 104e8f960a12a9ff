#!/usr/bin/env python3
"""`targetgen validate` and `plan` of one upstream spec, beside upstream merlin's, same run.

Target (issue 7): each <= 0.15 s (upstream measured 0.124 / 0.127 s). The spec
is the first of ../shared/upstream-specs (or MERLIN_BENCH_SPEC=path); upstream
is the vendored argparse CLI in benchmarks/baselines/upstream_merlin, run by the
same interpreter. Plans are written to temp dirs. Exits 1 on FAIL.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import MERLIN, PY, REPO, interleaved, report

RUNS = 15
UPSTREAM = REPO / "benchmarks" / "baselines" / "upstream_merlin" / "tools" / "merlin.py"
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
    try:
        upstream = [PY, str(UPSTREAM), "targetgen"]
        v, v_base = interleaved([*MERLIN, "targetgen", "validate", cap], [*upstream, "validate", cap], runs=RUNS)
        p, p_base = interleaved(
            [*MERLIN, "targetgen", "plan", cap, "--out-dir", str(out / "merlin")],
            [*upstream, "plan", cap, "--out-dir", str(out / "upstream")],
            runs=RUNS,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rows = [
        ("targetgen validate (one upstream spec)", v, v_base, f"<= {TARGET_S:.3f} s", v <= TARGET_S),
        ("targetgen plan (one upstream spec)", p, p_base, f"<= {TARGET_S:.3f} s", p <= TARGET_S),
    ]
    return report(f"targetgen validate/plan of {Path(cap).parent.name}: merlin vs upstream merlin, median of {RUNS}", rows)


if __name__ == "__main__":
    sys.exit(main())
