#!/usr/bin/env python3
"""CLI start-up: `merlin --help` beside upstream merlin's argparse CLI, same run.

Targets: median wall <= 0.12 s (issue 7) and, when upstream's checkout is there
($MERLIN_UPSTREAM, see benchmarks/README.md), <= 0.6x upstream's
`tools/merlin.py --help` run by the same interpreter (issue 15). Without the
checkout the baseline is absent and merlin alone is measured. Also printed, for
information: subcommand help, the ./merlin wrapper, and `python -c pass` (the
interpreter floor). Measured interleaved (fair under a shared, noisy machine).
Exits 1 on FAIL.
"""

from __future__ import annotations

import sys

from _common import MERLIN, PY, REPO, interleaved, median_wall, report, say_baseline, upstream_cli

RUNS = 21
TARGET_S = 0.12
TARGET_RATIO = 0.6
NAN = float("nan")


def main() -> int:
    cli = upstream_cli()
    say_baseline(cli)
    if cli is not None:
        upstream = [PY, str(cli)]
        ours, base = interleaved([*MERLIN, "--help"], [*upstream, "--help"], runs=RUNS)
        sub, sub_base = interleaved([*MERLIN, "targetgen", "--help"], [*upstream, "targetgen", "--help"], runs=RUNS)
    else:
        ours, sub = median_wall([*MERLIN, "--help"], runs=RUNS), median_wall([*MERLIN, "targetgen", "--help"], runs=RUNS)
        base = sub_base = NAN
    wrapper = median_wall([str(REPO / "merlin"), "--help"], runs=RUNS)
    floor = median_wall([PY, "-c", "pass"], runs=RUNS)
    ratio_ok = cli is None or ours <= TARGET_RATIO * base
    rows = [
        ("merlin --help", ours, base, f"<= {TARGET_S:.3f} s" + (f", <= {TARGET_RATIO:g}x upstream" if cli else ""), ours <= TARGET_S and ratio_ok),
        ("merlin targetgen --help [info]", sub, sub_base, "(no target)", True),
        ("./merlin --help (bash wrapper) [info]", wrapper, base, "(no target)", True),
        ("python -c pass (floor) [info]", floor, NAN, "(no target)", True),
    ]
    if cli is not None:
        print(f"merlin --help / upstream --help: {ours / base:.2f}x (target <= {TARGET_RATIO:g}x)")
    return report(f"CLI start-up: merlin vs upstream merlin (argparse), median of {RUNS}, interleaved", rows)


if __name__ == "__main__":
    sys.exit(main())
