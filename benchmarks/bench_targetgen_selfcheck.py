#!/usr/bin/env python3
"""`targetgen execute`'s first validations (`targetgen validate` + `plan` on the inputs):
in-process (merlin.targetgen.selfcheck, what execute does now) against starting merlin
again in a subprocess for each (what it did before, the baseline), same run.

Target (issue 7): no step starts merlin again for checks it can do in-process; the
two checks together cost well under the 0.6 s the subprocesses did. Exits 1 if the
in-process pair is not at least 3x faster than the subprocess pair.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, env, report

RUNS = 7


def main() -> int:
    from merlin.targetgen.probes import run_command

    cap = REPO / "target_specs" / "examples" / "x86_cpu_baseline" / "capability.yaml"
    if not cap.is_file():
        cap = next((REPO / "target_specs").rglob("capability.yaml"))
    ovl = sorted((cap.parent / "overlays").glob("*.yaml"))
    scratch = Path(tempfile.mkdtemp(prefix="merlin-bench-selfcheck-"))
    overlay_args = ["--overlay", str(ovl[0])] if ovl else []
    checks = [
        [sys.executable, "-m", "merlin", "targetgen", "validate", str(cap), *overlay_args],
        [sys.executable, "-m", "merlin", "targetgen", "plan", str(cap), *overlay_args, "--out-dir", str(scratch), "--json"],
    ]

    def inprocess() -> float:
        t = time.perf_counter()
        for argv in checks:
            assert run_command(argv, timeout=60, cwd=scratch).passed
        return time.perf_counter() - t

    def subprocesses() -> float:
        t = time.perf_counter()
        for argv in checks:
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=scratch, check=True)
        return time.perf_counter() - t

    inprocess(), subprocesses()  # warm-up (imports, bytecode)
    ours = statistics.median(inprocess() for _ in range(RUNS))
    base = statistics.median(subprocesses() for _ in range(RUNS))
    return report(
        "targetgen execute: first step's checks (validate + plan)",
        [("validate + plan, in-process vs subprocesses", ours, base, "in-process >= 3x faster", ours * 3 <= base)],
    )


if __name__ == "__main__":
    sys.exit(main())
