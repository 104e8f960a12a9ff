"""The test run's watchdog: stops the Ray heads a pytest run started once that
run's controller is gone, however it went (a SIGKILL included).

``python tests/ray_reaper.py SHARED_DIR PID START_TICKS`` detaches (it forks,
the parent returns at once, the child leaves the session) and polls the
controller ``PID``, identified with its start time so a reused pid does not
keep it waiting. When the controller is gone it waits a bounded time for the
processes that started heads (``SHARED_DIR/starters``) to end, then stops,
through merlin's own ``ControlPlane.stop_cluster``, every cluster still live
in the state roots the run recorded: the shared head's (``SHARED_DIR/state``)
and each one listed in ``SHARED_DIR/roots``. It never stops anything else,
and never runs ``ray stop``. After a run that ended normally every cluster is
already stopped, and it only reads the records. What it did goes to
``SHARED_DIR/reaper.log``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

POLL = 0.5
STARTERS_GRACE = 30.0


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # a zombie is gone as far as we are concerned
        return None
    return int(fields[19])


def alive(pid: int, ticks: int | None) -> bool:
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def _pairs(path: Path) -> list[tuple[int, int | None]]:
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        pid, _, ticks = line.partition(" ")
        if pid.strip().isdigit():
            out.append((int(pid), int(ticks) if ticks.strip().isdigit() else None))
    return out


def roots(shared: Path) -> list[Path]:
    listed = [Path(x) for x in (shared / "roots").read_text().splitlines() if x.strip()] if (shared / "roots").exists() else []
    return [shared / "state", *dict.fromkeys(listed)]


def stop_live_clusters(shared: Path, log) -> int:
    """Stop every live cluster recorded in the run's state roots; the number stopped."""
    from merlin.controlplane import ControlPlane

    stopped = 0
    for root in roots(shared):
        if not (root / "cluster").is_dir():
            continue
        cp = ControlPlane(root)
        for name in cp.ledger.cluster_names():
            rec = cp.ledger.read_cluster(name)
            if rec is None or rec.status == "stopped":
                continue
            try:
                cp.stop_cluster(name, grace=2.0, force=True)
                stopped += 1
                log(f"stopped cluster '{name}' of {root}")
            except Exception as exc:  # keep going: the other clusters still need stopping
                log(f"could not stop cluster '{name}' of {root}: {type(exc).__name__}: {exc}")
    return stopped


def watch(shared: Path, pid: int, ticks: int | None) -> None:
    def log(text: str) -> None:
        with (shared / "reaper.log").open("a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} [{os.getpid()}] {text}\n")

    log(f"watching controller {pid}")
    while alive(pid, ticks):
        time.sleep(POLL)
    log(f"controller {pid} is gone")
    deadline = time.monotonic() + STARTERS_GRACE
    while True:  # a worker may still be starting a head: sweep until those processes are gone too
        stop_live_clusters(shared, log)
        starters = [p for p, t in _pairs(shared / "starters") if alive(p, t)]
        if not starters or time.monotonic() > deadline:
            break
        time.sleep(2 * POLL)
    if starters:
        log(f"gave up waiting for starters {starters}")
    log("done")


def main(argv: list[str]) -> int:
    shared, pid, ticks = Path(argv[0]), int(argv[1]), (int(argv[2]) if argv[2].isdigit() else None)
    if os.fork():  # the caller's child returns at once; the watchdog is nobody's child to wait for
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        watch(shared, pid, ticks)
    except BaseException:  # the log is the only place anyone will see it
        import traceback

        with (shared / "reaper.log").open("a") as fh:
            fh.write(traceback.format_exc())
    finally:
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
