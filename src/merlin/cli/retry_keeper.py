"""``python -m merlin.cli.retry_keeper RUN_DIR``: the detached retry keeper of a run with a retry
budget. Only its entry point lives here (it builds the run's ControlPlane, which only the front
ends may do); its life is :func:`merlin.control.retries.keep`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from merlin.control.retries import keep
    from merlin.controlplane import ControlPlane

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_dir = Path(argv[0]).resolve()
    return keep(ControlPlane(run_dir.parent.parent), run_dir.name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
