"""``python -m merlin.cli.sweep_driver STATE_ROOT NAME``: the detached driver of a sweep. Only its
entry point lives here (it builds the ControlPlane, which only the front ends may do); its life
is :func:`merlin.control.sweeps.drive`."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from merlin.controlplane import ControlPlane

    return int(ControlPlane(Path(argv[0])).sweeps("drive", argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
