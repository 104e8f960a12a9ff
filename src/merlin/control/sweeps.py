"""Sweeps: one command over many inputs, one ordinary run per input (docs/sweeps.md).

A sweep is a record in the ledger (``Layout.sweep_record``): its spec, its inputs and
their hash, and one item per input (:mod:`merlin.ledger.sweep_states`). The queue lives
there. A detached driver (``python -m merlin.cli.sweep_driver ROOT NAME``; its life is
:func:`drive`) holds ``Layout.sweep_driver_lock`` for its whole life and keeps at most
``parallel`` items busy; an item run that needs a lease waits for it in the lease book,
so the throttle is the smaller of ``parallel`` and the slots free to the sweep. Every
change of the record happens under ``Layout.sweep_lock``; an item's run id is written
(``submitting``) before the run is submitted, so a driver killed at any moment leaves
nothing that a new one would run twice or skip. Retries are the runs' own
(``max_retries_failure``/``max_retries_preemption``, docs/retries.md).
"""

from __future__ import annotations

import glob as globmod
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.clock import iso
from merlin.control.sweep_liveness import driver_alive, missing_secrets
from merlin.errors import BadInput, MerlinError, NotFound
from merlin.ledger.sweep_states import BUSY, ITEMS, ItemState

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane

#: seconds between the driver's passes while a busy item's run has no process the driver watches
#: (a Ray job: one poll_many per engine and cluster for them all)
POLL = 0.2
#: seconds between its passes while every busy run's supervisor is watched (its exit wakes the driver)
WATCHED_POLL = 1.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
PLACEHOLDERS = ("{input}", "{index}", "{name}")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:  # (fullmatch: '$' lets a trailing newline through)
        raise BadInput(f"invalid sweep name {name!r}: use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'", argument="name")
    return name


def expand_inputs(inputs: str | None = None, inputs_file: str | os.PathLike[str] | None = None, range_: str | None = None, values: Sequence[str] | None = None) -> list[str]:
    """The sweep's inputs from exactly one of: a glob (sorted), a file (one a line, blank lines and ``#`` skipped), a range ``A-B`` (inclusive), a list."""
    given = [k for k, v in (("inputs", inputs), ("inputs_file", inputs_file), ("range", range_), ("values", values)) if v is not None]
    if len(given) != 1:
        raise BadInput("give exactly one of `inputs` (a glob), `inputs_file` and `range`", argument=given[1] if len(given) > 1 else "inputs")
    if inputs is not None:
        out = sorted(globmod.glob(inputs, recursive=True))
        if not out:
            raise BadInput(f"no file matches {inputs!r}: check the pattern (quote it so the shell leaves it to merlin)", argument="inputs")
    elif inputs_file is not None:
        try:
            text = Path(inputs_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot read the inputs file {str(inputs_file)!r}: {exc.strerror or exc}", argument="inputs_file") from None
        out = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    elif range_ is not None:
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", range_)
        if not m or int(m.group(1)) > int(m.group(2)):
            raise BadInput(f"invalid range {range_!r}: give A-B with A <= B, e.g. 0-199", argument="range")
        out = [str(i) for i in range(int(m.group(1)), int(m.group(2)) + 1)]
    else:
        out = [str(v) for v in values or ()]
    if not out:
        raise BadInput("the sweep has no inputs", argument=given[0])
    if len(out) > 100_000:
        raise BadInput(f"{len(out)} inputs: a sweep takes at most 100000", argument=given[0])
    for v in out:
        if "\x00" in v:
            raise BadInput("an input holds a NUL byte", argument=given[0])
    return out


def inputs_hash(inputs: Sequence[str]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(list(inputs)).encode("utf-8")).hexdigest()


def item_command(command: Sequence[str], name: str, index: int, value: str) -> list[str]:
    """``command`` with ``{input}``, ``{index}`` and ``{name}`` replaced inside each word: each word stays one argument (no shell)."""
    subs = {"{input}": value, "{index}": str(index), "{name}": name}
    pat = re.compile("|".join(re.escape(k) for k in subs))
    return [pat.sub(lambda m: subs[m.group(0)], w) for w in command]


# ---------------------------------------------------------------- the record


def _read(cp: Plane, name: str) -> dict[str, Any]:
    path = cp.layout.sweep_record(_check_name(name))
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise NotFound(f"no sweep named {name!r}", argument="name") from None


def _write(cp: Plane, rec: dict[str, Any]) -> None:
    from merlin.atomic import atomic_write_bytes

    rec["updated_at"] = iso(time.time())
    atomic_write_bytes(cp.layout.sweep_record(rec["name"]), dump_record(rec).encode("utf-8"))


def dump_record(rec: Mapping[str, Any]) -> str:
    """The record as JSON a person reads: one top-level key a line (sorted, two-space indent, as
    ``merlin.atomic.dump_json``), but each item on one line and each other value compact, so the driver's
    write takes the C encoder (``dump_json``'s indent takes Python's: 10x the CPU on 200 items)."""
    lines = []
    for key in sorted(rec):
        value = rec[key]
        if key == "items" and value:
            body = ",\n".join("    " + json.dumps(it, sort_keys=True, ensure_ascii=False, allow_nan=False) for it in value)
            text = "[\n" + body + "\n  ]"
        else:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
        lines.append(f"  {json.dumps(key, ensure_ascii=False)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _fingerprint(rec: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the driver and the user's operations change in a record (cheap: no serialising)."""
    items = tuple((it["state"], it["run_id"], it.get("requeued"), it.get("error")) for it in rec["items"])
    return rec.get("cancelled"), rec.get("finished_at"), rec.get("retried"), items


@contextmanager
def _locked(cp: Plane, name: str) -> Iterator[dict[str, Any]]:
    """The record under the sweep's lock; written back (once) when the block ends without an error and changed it."""
    from merlin.atomic import file_lock

    with file_lock(cp.layout.sweep_lock(name), timeout=30.0, holder=f"sweep {name}"):
        rec = _read(cp, name)
        before = _fingerprint(rec)
        yield rec
        if _fingerprint(rec) != before:
            _write(cp, rec)


def _move(item: dict[str, Any], new: ItemState, sweep: str) -> None:
    ITEMS.check(f"{sweep}[{item['index']}]", item["state"], new)
    item["state"] = new.value


def item_run_id(name: str, index: int, round_: int) -> str:
    return f"sweep-{name}-{index:05d}-r{round_}"


def submit(
    cp: Plane, name: str, command: Sequence[str], inputs: Sequence[str], *, parallel: int = 4, leases: Sequence[str] = (),
    retries: int = 0, retries_infra: int = 0, engine: str | None = None, cluster: str | None = None,
    runtime: Any = None, env: Mapping[str, str] | None = None, workdir: str | None = None, start_driver: bool = True,
    memory: int | str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Record the sweep (or adopt the one of the same name and inputs) and start its driver."""
    from merlin.atomic import file_lock, make_dir

    _check_name(name)
    if not command:
        raise BadInput("the sweep needs a command", argument="command")
    if not isinstance(parallel, int) or parallel < 1 or parallel > 10_000:
        raise BadInput(f"parallel must be 1..10000, not {parallel!r}", argument="parallel")
    for arg, v in (("retries", retries), ("retries_infra", retries_infra)):
        if not isinstance(v, int) or v < 0 or v > 100:
            raise BadInput(f"`{arg}` must be 0..100, not {v!r}", argument=arg)
    from merlin.units import memory_bytes

    memory = memory_bytes(memory)  # each item's (docs/ray.md: --memory)
    inputs = [str(v) for v in inputs]
    digest = inputs_hash(inputs)
    make_dir(cp.layout.sweep_dir(name))
    with file_lock(cp.layout.sweep_lock(name), timeout=30.0, holder=f"sweep {name}"):
        path = cp.layout.sweep_record(name)
        if path.is_file():
            old = _read(cp, name)
            if old["inputs_hash"] != digest:
                raise MerlinError(
                    f"sweep {name!r} exists with other inputs ({len(old['inputs'])} inputs, {old['inputs_hash'][:19]}); choose another name",
                    argument="name",
                )
            old["adopted"] = True
            rec = old
        else:
            rec = {
                "schema_version": 1, "name": name, "created_at": iso(time.time()), "command": list(command), "inputs": inputs,
                "inputs_hash": digest, "parallel": parallel, "leases": list(leases), "retries": retries,
                "retries_infra": retries_infra, "engine": engine, "cluster": cluster, "runtime": runtime,
                "env": dict(env or {}), "workdir": workdir, "memory": memory, "cancelled": False, "finished_at": None,
                "items": [{"index": i, "input": v, "state": ItemState.QUEUED.value, "round": 0, "run_id": None, "runs": []} for i, v in enumerate(inputs)],
            }  # fmt: skip
            _write(cp, rec)
            rec["adopted"] = False
    if start_driver:
        ensure_driver(cp, name)
    return view(cp, rec)


# ---------------------------------------------------------------- the driver


def _finished(rec: Mapping[str, Any]) -> bool:
    return all(ITEMS.is_terminal(it["state"]) for it in rec["items"])


def ensure_driver(cp: Plane, name: str) -> bool:
    """Start the sweep's driver if it has work and none holds its lock (a killed one: this is the restart). True if started."""
    rec = _read(cp, name)
    if _finished(rec) or driver_alive(cp, name) or missing_secrets(rec):
        return False
    from merlin.atomic import atomic_write_text, open_state_file
    from merlin.procid import start_time

    with open_state_file(cp.layout.sweep_driver_log(name)) as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "merlin.cli.sweep_driver", str(cp.root), name],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(cp.layout.sweep_dir(name)),
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    atomic_write_text(cp.layout.sweep_driver_started(name), json.dumps({"pid": proc.pid, "start": start_time(proc.pid)}))
    return True


#: a record's top-level ``finished_at`` line (:func:`dump_record`: sorted keys, one a line, two-space indent,
#: so it comes before the inputs and items; a nested key is never at the start of a line, and a JSON
#: string holds no newline)
_FINISHED_AT = re.compile(rb'\n  "finished_at": (null|"[^"\n]*")')


def ended_by_head(path: Path) -> bool | None:
    """Whether the sweep at ``path`` has ended, read from the first 64 KiB of its record only (a finished
    sweep of 100,000 items costs a listing one small read): True or False, None when it cannot tell."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    m = _FINISHED_AT.search(head)
    return None if m is None else m.group(1) != b"null"


def restart_drivers(cp: Plane) -> list[str]:
    """The next look's duty: every unfinished sweep without a driver gets one. A finished sweep is skipped
    from its record's head (:func:`ended_by_head`): no parse, no lock, no driver."""
    started: list[str] = []
    root = cp.layout.sweeps
    if not root.is_dir():
        return started
    for d in sorted(root.iterdir()):
        path = cp.layout.sweep_record(d.name)
        ended = ended_by_head(path)
        if ended or (ended is None and not path.is_file()) or driver_alive(cp, d.name):
            continue  # ended, no record (a stray directory), or driven; a head that cannot tell: read it whole below
        try:
            if ensure_driver(cp, d.name):
                started.append(d.name)
        except (MerlinError, OSError, ValueError):
            continue
    return started


def drive(cp: Plane, name: str) -> int:
    """The driver's life: a pass, then a wait until a watched run's supervisor ends (or :data:`POLL` seconds,
    :data:`WATCHED_POLL` when every busy run is watched), until every item has ended."""
    from merlin.atomic import file_lock
    from merlin.control.sweep_exits import Exits
    from merlin.errors import LockBusy

    try:
        with file_lock(cp.layout.sweep_driver_lock(name), timeout=0.0, holder=f"sweep driver {name} (pid {os.getpid()})"):
            _fork_supervisors(cp, _read(cp, name))
            exits = Exits()
            try:
                while True:
                    unwatched = one_pass(cp, name, exits)
                    if unwatched is None:
                        break
                    exits.wait(POLL if unwatched else WATCHED_POLL)
            finally:
                exits.close()
    except LockBusy:
        return 0  # another driver has it
    return 0


def _fork_supervisors(cp: Plane, rec: Mapping[str, Any]) -> None:
    """An engine that can start its supervisors by forking (the local one) does so in the driver: the driver
    is long-lived, single-threaded and has merlin imported, so an item starts without a new interpreter."""
    from merlin.engines.registry import DEFAULT_ENGINE

    eng = cp.engine(rec.get("engine") or DEFAULT_ENGINE)
    if hasattr(eng, "fork_supervisor") and hasattr(os, "fork"):
        import threading

        eng.fork_supervisor = threading.active_count() == 1


def one_pass(cp: Plane, name: str, exits: Any = None) -> int | None:
    """Observe the busy items (one refresh of their runs), fill the free slots; None when the sweep has
    ended, else how many busy items have no process ``exits`` watches (their end is noticed by polling).

    One record write per pass that changed something, made before any run is submitted (the new items'
    run ids are on disk, ``submitting``, before their runs exist); an item whose submit succeeded is
    written ``active`` by the next write (a ``submitting`` item with a run is ``active``: :func:`_submitting`)."""
    from merlin.atomic import file_lock

    with file_lock(cp.layout.sweep_lock(name), timeout=30.0, holder=f"sweep {name}"):
        rec = _read(cp, name)
        before = _fingerprint(rec)
        _observe(cp, rec, [it for it in rec["items"] if it["state"] in BUSY])
        starting: list[dict[str, Any]] = []
        if not rec["cancelled"]:
            free = rec["parallel"] - sum(1 for it in rec["items"] if it["state"] in BUSY)
            starting = [it for it in rec["items"] if it["state"] == ItemState.QUEUED.value][: max(free, 0)]
            for it in starting:
                _new_round(rec, it)
                _move(it, ItemState.SUBMITTING, rec["name"])
        done = _finished(rec)
        if done and not rec.get("finished_at"):
            rec["finished_at"] = iso(time.time())
        if _fingerprint(rec) != before:
            _write(cp, rec)
        for it in starting:
            _submit_run(cp, rec, it)
            if it["state"] == ItemState.SUBMITTING.value:
                it["state"] = ItemState.ACTIVE.value  # as the next write records it (see above)
        if any(it["state"] == ItemState.LOST.value for it in starting):
            _write(cp, rec)  # a submit that failed: its item is lost (rare; written now)
        if done:
            return None
        busy_ids = [it["run_id"] for it in rec["items"] if it["state"] in BUSY]
    if exits is None:
        return len(busy_ids)
    return sum(1 for rid in busy_ids if not exits.watch_run(cp, rid))


def _observe(cp: Plane, rec: dict[str, Any], busy: list[dict[str, Any]]) -> None:
    """Settle the busy items whose runs ended: a run still active on disk is asked of its engine once, in one
    :meth:`refresh` for them all (one ``poll_many`` per engine); a run that ended is read once."""
    from merlin.errors import NotFound
    from merlin.ledger.status import RunStatus

    live: list[dict[str, Any]] = []
    ended: list[dict[str, Any]] = []
    for it in busy:
        if it["state"] == ItemState.SUBMITTING.value and not _submitting(cp, rec, it):
            continue
        try:
            raw = cp.ledger.read_raw(it["run_id"])
        except (NotFound, OSError, ValueError):
            continue
        (ended if RunStatus(raw["status"]).is_terminal() else live).append(it)
    if live:
        try:
            fresh = {r.run_id: r for r in cp.refresh([it["run_id"] for it in live], touch=False)}
        except MerlinError:
            fresh = {}
        ended += [it for it in live if it["run_id"] in fresh and fresh[it["run_id"]].status.is_terminal()]
    for it in ended:
        try:
            _settle(cp, rec, it, cp.get(it["run_id"]))
        except MerlinError:
            continue


def _submitting(cp: Plane, rec: dict[str, Any], it: dict[str, Any]) -> bool:
    """An item left ``submitting`` by a driver that died: its run exists (now ``active``: True), or is submitted now (once)."""
    run_id = it["run_id"]
    if cp.layout.record(run_id).is_file():
        _move(it, ItemState.ACTIVE, rec["name"])
        return True
    if rec["cancelled"]:
        _move(it, ItemState.CANCELLED, rec["name"])
        return False
    if cp.layout.run_dir(run_id).exists():  # its creation was cut short (no record: never launched): a fresh id
        _new_round(rec, it)
        _write(cp, rec)
    _submit_run(cp, rec, it)
    return False


def _settle(cp: Plane, rec: dict[str, Any], it: dict[str, Any], r: Any) -> None:
    """The item of a run that has ended (unless the run's own retry comes)."""
    from merlin.ledger.status import RunStatus

    if not r.status.is_terminal():
        return
    from merlin.control.retries import pending_retry

    if pending_retry(cp, r):  # the run's own retry comes (one retry mechanism: the run's)
        return
    new = {
        RunStatus.SUCCEEDED: ItemState.SUCCEEDED, RunStatus.FAILED: ItemState.FAILED, RunStatus.CANCELLED: ItemState.CANCELLED,
    }.get(r.status, ItemState.LOST)  # fmt: skip
    _move(it, new, rec["name"])
    att = r.attempts[-1] if r.attempts else None
    never_ran = att is None or (att.start_time is None and att.pid is None)
    if new == ItemState.LOST and never_ran and not rec["cancelled"] and it.get("requeued", 0) < 3:
        # lost before its command ran (e.g. the driver, its submitter, was killed while handing it over): run it now, once
        it["requeued"] = it.get("requeued", 0) + 1
        _move(it, ItemState.QUEUED, rec["name"])
    elif new == ItemState.LOST:
        it["error"] = r.message


def _new_round(rec: dict[str, Any], it: dict[str, Any]) -> None:
    it["round"] = int(it.get("round", 0)) + 1
    it["run_id"] = item_run_id(rec["name"], it["index"], it["round"])
    it["runs"] = [*it.get("runs", []), it["run_id"]]


def _submit_run(cp: Plane, rec: dict[str, Any], it: dict[str, Any]) -> None:
    name, index, value = rec["name"], it["index"], it["input"]
    env = {**rec.get("env", {}), "MERLIN_SWEEP_NAME": name, "MERLIN_SWEEP_INDEX": str(index), "MERLIN_SWEEP_INPUT": value}
    try:
        cp.submit(
            item_command(rec["command"], name, index, value), target=f"sweep-{name}", workflow="sweep", engine=rec.get("engine"),
            cluster=rec.get("cluster"), env=env, leases=rec.get("leases") or (), runtime=rec.get("runtime"),
            workdir=rec.get("workdir"), source="sweep", metadata={"sweep": name, "sweep_index": index}, run_id=it["run_id"],
            max_retries_failure=rec.get("retries", 0), max_retries_preemption=rec.get("retries_infra", 0), retry_backoff=0,
            memory=rec.get("memory"),
        )  # fmt: skip
    except MerlinError as exc:
        it["error"] = exc.message
        _move(it, ItemState.LOST, name)


# ---------------------------------------------------------------- the user's operations


def cancel(cp: Plane, name: str) -> dict[str, Any]:
    """Queued items never start; running items are ended."""
    with _locked(cp, name) as rec:
        rec["cancelled"] = True
        for it in rec["items"]:
            if it["state"] == ItemState.QUEUED.value:
                _move(it, ItemState.CANCELLED, name)
        busy = [it["run_id"] for it in rec["items"] if it["state"] in BUSY and it["run_id"]]
    for run_id in busy:
        try:
            cp.cancel(run_id)
        except MerlinError:
            continue
    ensure_driver(cp, name)  # it records how the busy ones ended
    return view(cp, _read(cp, name))


def retry_failed(cp: Plane, name: str, failed: bool = True, cancelled: bool = False) -> dict[str, Any]:
    """A new round (a new run) for each failed or lost item (``failed``) and each cancelled one
    (``cancelled``: resume a cancelled sweep); the others stay as they are."""
    if not failed and not cancelled:
        raise MerlinError("say which items to retry: the failed ones, the cancelled ones, or both", argument="failed")
    states = ({ItemState.FAILED.value, ItemState.LOST.value} if failed else set()) | ({ItemState.CANCELLED.value} if cancelled else set())
    with _locked(cp, name) as rec:
        again = [it for it in rec["items"] if it["state"] in states]
        if not again:
            which = " or ".join([*(["failed or lost"] if failed else []), *(["cancelled"] if cancelled else [])])
            others = sum(1 for it in rec["items"] if it["state"] == ItemState.CANCELLED.value) if not cancelled else 0
            more = f" ({others} are cancelled: retry those as cancelled ones)" if others else ""
            raise MerlinError(f"sweep {name!r} has no {which} items to retry{more}", argument="cancelled" if others else "failed")
        rec["cancelled"] = False
        rec["finished_at"] = None
        for it in again:
            _move(it, ItemState.QUEUED, name)
            it.pop("error", None)
        rec["retried"] = [it["index"] for it in again]
    ensure_driver(cp, name)
    return view(cp, _read(cp, name))


def list_sweeps(cp: Plane) -> list[dict[str, Any]]:
    root = cp.layout.sweeps
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if cp.layout.sweep_record(d.name).is_file():
            out.append(view(cp, _read(cp, d.name), with_items=False))
    return out


def status(cp: Plane, name: str, restart: bool = True) -> dict[str, Any]:
    """Counts by state, slots in use, throughput, ETA, the failures with their last log line. Restarts a dead driver."""
    if restart:
        ensure_driver(cp, name)
    return view(cp, _read(cp, name), failures=True)


def view(cp: Plane, rec: Mapping[str, Any], *, with_items: bool = False, failures: bool = False) -> dict[str, Any]:
    from merlin.clock import parse

    counts: dict[str, int] = {s.value: 0 for s in ItemState}
    for it in rec["items"]:
        counts[it["state"]] += 1
    total = len(rec["items"])
    ended = sum(counts[s] for s in ("succeeded", "failed", "lost", "cancelled"))
    started = parse(rec["created_at"]) or time.time()
    end = parse(rec["finished_at"]) or time.time()
    elapsed = max(end - started, 1e-6)
    rate = ended / elapsed
    finished = _finished(rec)
    state = ("cancelled" if rec.get("cancelled") else "succeeded" if counts["succeeded"] == total else "failed") if finished else "running"
    out: dict[str, Any] = {
        "name": rec["name"], "state": state, "total": total, "counts": counts, "parallel": rec["parallel"],
        "slots_in_use": counts["submitting"] + counts["active"], "leases": rec.get("leases", []),
        "throughput_per_min": round(rate * 60, 2), "elapsed_s": round(elapsed, 2),
        "eta_s": None if finished or rate <= 0 else round((total - ended) / rate, 1), "created_at": rec["created_at"],
        "finished_at": rec.get("finished_at"), "inputs_hash": rec["inputs_hash"], "command": rec["command"],
        "driver_alive": driver_alive(cp, rec["name"]), "adopted": bool(rec.get("adopted")),
    }  # fmt: skip
    from merlin.nextsteps import Action, step

    steps = [step(Action.SWEEP_STATUS, name=rec["name"])] if state == "running" else []
    if counts["failed"] or counts["lost"]:
        steps.append(step(Action.SWEEP_RETRY, name=rec["name"]))
    if state == "cancelled" and counts["cancelled"]:
        steps.append(step(Action.SWEEP_RETRY, name=rec["name"], failed=False, cancelled=True))
    out["next_steps"] = steps
    if rec.get("retried") is not None:
        out["retried"] = rec["retried"]
    if failures:
        out["failures"] = [
            {"index": it["index"], "input": it["input"], "state": it["state"], "run_id": it["run_id"], "last_line": it.get("error") or _last_line(cp, it["run_id"])}
            for it in rec["items"] if it["state"] in ("failed", "lost")
        ]  # fmt: skip
    if with_items:
        out["items"] = rec["items"]
    return out


def _last_line(cp: Plane, run_id: str | None) -> str:
    if not run_id:
        return ""
    try:
        text = cp.logs(run_id)
    except (MerlinError, OSError):
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def summary(cp: Plane, name: str) -> dict[str, Any]:
    """One row per input: its run's facts, the fields of its ``result.json``, its resource use; ``ok`` only if every item succeeded."""
    rec = _read(cp, name)
    rows = []
    for it in rec["items"]:
        row: dict[str, Any] = {"index": it["index"], "input": it["input"], "status": it["state"], "run_id": it["run_id"], "rounds": it.get("round", 0)}
        if it["run_id"] and cp.layout.record(it["run_id"]).is_file():
            r = cp.get(it["run_id"])
            att = r.attempts[-1] if r.attempts else None
            row["attempts"] = len(r.attempts)
            row["exit_code"] = att.exit_code if att else None
            if att and att.start_time and att.end_time:
                row["duration_s"] = round((att.end_time - att.start_time).total_seconds(), 3)
            usage = getattr(att, "usage", None) if att else None
            if usage:
                row.update({f"usage_{k}": v for k, v in dict(usage).items()})
            row["result"] = _result(cp, it["run_id"])
        rows.append(row)
    return {"name": name, "ok": all(r["status"] == "succeeded" for r in rows), "rows": rows}


def _result(cp: Plane, run_id: str) -> dict[str, Any]:
    """The run's ``result.json`` if it is a flat JSON object (scalars only), else {}."""
    try:
        data = json.loads(cp.layout.run_result(run_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, (str, int, float, bool)) or v is None}


def dispatch(cp: Plane, action: str, name: str | None = None, **kwargs: Any) -> Any:
    """The facade's ``sweeps(action, name, ...)``."""
    if action == "list":
        return list_sweeps(cp)
    if action == "inputs":
        return expand_inputs(**kwargs)
    fns: dict[str, Callable[..., Any]] = {"submit": submit, "status": status, "summary": summary, "retry": retry_failed, "cancel": cancel, "drive": drive}
    fn = fns.get(action)
    if fn is None or name is None:
        raise BadInput(f"unknown sweep action {action!r} (or no `name`)", argument="action")
    return fn(cp, name, **kwargs)
