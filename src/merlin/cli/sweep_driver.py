"""``python -m merlin.cli.sweep_driver STATE_ROOT NAME``: the detached driver of a sweep. Only its
entry point lives here (it builds the ControlPlane, which only the front ends may do); its life
is :func:`merlin.control.sweeps.drive`."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import resource
    import time

    from merlin.controlplane import ControlPlane

    t0 = time.monotonic()
    code = int(ControlPlane(Path(argv[0])).sweeps("drive", argv[1]))
    ru = resource.getrusage(resource.RUSAGE_SELF)  # the driver alone: not the supervisors it forked
    print(f"merlin sweep driver: ended after {time.monotonic() - t0:.2f}s; driver CPU {ru.ru_utime + ru.ru_stime:.3f}s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
