"""``python -m merlin.cli.lease_waiter RUN_DIR ATTEMPT LEASE_ID``: the detached waiter of a run
that needs hardware. Only its entry point lives here (it builds the run's ControlPlane, which
only the front ends may do); its life is :func:`merlin.control.leased.serve`."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from merlin.control.leased import serve
    from merlin.controlplane import ControlPlane

    return serve(ControlPlane(Path(argv[0]).resolve().parent.parent), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
