"""``python -m merlin.cli.retention_prune STATE_ROOT OLDER_THAN [STATUS...]``: the detached prune a
retention policy with ``auto = true`` starts (merlin.control.retention). It writes one JSON line to
``retention/prune.log``: when, what it removed and freed, what it kept and why (or the error)."""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    from merlin.clock import iso
    from merlin.controlplane import ControlPlane
    from merlin.errors import MerlinError

    root, older_than, *statuses = argv
    line: dict[str, object] = {"at": iso(time.time()), "older_than": float(older_than), "status": statuses}
    try:
        report = ControlPlane(root).prune_runs(float(older_than), statuses)
    except MerlinError as exc:
        line["error"] = exc.message
        code = 2
    else:
        line.update(report.to_json())
        code = 0
    sys.stdout.write(json.dumps(line) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
