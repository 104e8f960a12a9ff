"""Full-size reliability probes (issue 9): the suite runs them small (tests/test_reliability.py).

    .venv/bin/python benchmarks/probe_reliability.py [--submits 200] [--retries 100] [--storm 50]

Prints tried/survived/lost/stuck for the refresh race (submits and retries
beside a refresh loop in another process; any lost is a false lost) and the
SIGKILL storm (submitters killed mid-submit; a lost there is a true lost: its
submitter died before starting the supervisor). The baseline is the same probe
on the code before the fix: 10 false lost of 45 at suite size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from merlin.controlplane import ControlPlane
from test_reliability import refresh_race, sigkill_storm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--submits", type=int, default=200)
    ap.add_argument("--retries", type=int, default=100)
    ap.add_argument("--storm", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        race = refresh_race(ControlPlane(Path(tmp) / "race"), args.submits, args.retries)
        print(f"refresh race: {race} ({time.monotonic() - t0:.0f}s)")
        t0 = time.monotonic()
        storm = sigkill_storm(ControlPlane(Path(tmp) / "storm"), args.storm)
        print(f"SIGKILL storm: {storm} ({time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
