#!/usr/bin/env python3
"""CLI start-up: `merlin --help` beside upstream merlin's argparse CLI, same run.

Target (issue 7): median wall <= 0.12 s and no slower than upstream's
`tools/merlin.py --help` (vendored in benchmarks/baselines/upstream_merlin,
run by the same interpreter). Also printed, for information: subcommand help,
the ./merlin wrapper, and `python -c pass` (the interpreter floor).
Measured interleaved (fair under a shared, noisy machine). Exits 1 on FAIL.
"""

from __future__ import annotations

import sys

from _common import MERLIN, PY, REPO, interleaved, median_wall, report

RUNS = 21
UPSTREAM = REPO / "benchmarks" / "baselines" / "upstream_merlin" / "tools" / "merlin.py"
TARGET_S = 0.12


def main() -> int:
    upstream = [PY, str(UPSTREAM)]
    ours, base = interleaved([*MERLIN, "--help"], [*upstream, "--help"], runs=RUNS)
    sub, sub_base = interleaved([*MERLIN, "targetgen", "--help"], [*upstream, "targetgen", "--help"], runs=RUNS)
    wrapper = median_wall([str(REPO / "merlin"), "--help"], runs=RUNS)
    floor = median_wall([PY, "-c", "pass"], runs=RUNS)
    rows = [
        ("merlin --help", ours, base, f"<= {TARGET_S:.3f} s and <= upstream", ours <= TARGET_S and ours <= base),
        ("merlin targetgen --help [info]", sub, sub_base, "(no target)", True),
        ("./merlin --help (bash wrapper) [info]", wrapper, base, "(no target)", True),
        ("python -c pass (floor) [info]", floor, float("nan"), "(no target)", True),
    ]
    return report(f"CLI start-up: merlin vs upstream merlin (argparse), median of {RUNS}, interleaved", rows)


if __name__ == "__main__":
    sys.exit(main())
