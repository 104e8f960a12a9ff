"""Sweeps (docs/sweeps.md): one command over many inputs, one run per input."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from merlin.gateway.registry import Input, Later, NoInput, Result, operation, step
from merlin.gateway.shared import DEFAULT_ENGINE, EngineChoice, Name

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway

SWEEP_NAME = r"^(?!.*\.\.)[a-z0-9][a-z0-9._-]{0,62}$"


class SweepInput(Input):
    name: str = Field(pattern=SWEEP_NAME, description="The sweep's name (1-63 lowercase letters, digits, '.', '_', '-').")


class SweepSubmitInput(SweepInput):
    command: list[str] = Field(min_length=1, max_length=1000, description="argv; {input}, {index} and {name} are replaced inside each word (no shell).")
    inputs: list[str] = Field(min_length=1, max_length=100_000, description="The inputs, one run each (the same name and inputs adopts the sweep).")
    parallel: int = Field(4, ge=1, le=10_000, description="At most this many items at once.")
    leases: list[str] = Field(default_factory=list, max_length=16, description="Hardware each item needs, POOL[:COUNT] (its free slots throttle the sweep too).")
    retries: int = Field(0, ge=0, le=100, description="Automatic retries of an item whose command fails.")
    retries_infra: int = Field(0, ge=0, le=100, description="Automatic retries of an item the infrastructure loses.")
    engine: EngineChoice = Field(DEFAULT_ENGINE, description="Engine of every item's run.")
    cluster: Name | None = Field(None, description="Cluster of the runs (ray).")
    memory: str | None = Field(
        None, max_length=32, description="The most memory each item's command may use, e.g. 512MiB or 4GiB: merlin ends it past that (MEMORY_LIMIT); Ray also reserves it on the node."
    )


class SweepStatusInput(SweepInput):
    wait: float = Field(0.0, ge=0, le=3600, description="Seconds to wait for the sweep to end (0: answer now); progress is sent when the client asks for it.")


class SweepRetryInput(SweepInput):
    failed: bool = Field(True, description="Retry the failed and lost items.")
    cancelled: bool = Field(False, description="Retry the cancelled items (resume a cancelled sweep).")


class SweepResult(Result):
    """A sweep's progress: counts by item state, slots in use, throughput, ETA, failures with their last log line."""

    name: str
    state: str
    total: int
    counts: dict[str, int]


class SweepSummaryResult(Result):
    """One row per input: status, attempts, exit code, duration, resource use and the fields of its result.json."""

    name: str
    ok: bool
    rows: list[dict[str, Any]]


def _steps(v: dict[str, Any]) -> dict[str, Any]:
    name = v["name"]
    if v.get("state") == "running":
        steps = [step("sweeps_status", name=name, wait=600.0), step("sweeps_cancel", name=name)]
    elif v.get("counts", {}).get("succeeded") != v.get("total"):
        steps = [step("sweeps_summary", name=name), step("sweeps_retry", name=name)]
    else:
        steps = [step("sweeps_summary", name=name)]
    return {**v, "next_steps": steps}


def _line(v: dict[str, Any]) -> str:
    c = v["counts"]
    done = c["succeeded"] + c["failed"] + c["lost"] + c["cancelled"]
    return f"sweep {v['name']}: {done}/{v['total']} ended ({c['succeeded']} succeeded, {c['failed'] + c['lost']} failed), {v['slots_in_use']} running"


@operation("sweeps_submit", "sweeps", SweepSubmitInput, SweepResult, mutating=True)
def sweeps_submit(gw: Gateway, a: SweepSubmitInput) -> dict[str, Any]:
    """Record a sweep (one run per input, at most parallel at once, retried by the runs' own retries) and start its driver; the same name and inputs adopts it."""
    v = gw.cp.sweeps(
        "submit", a.name, command=a.command, inputs=a.inputs, parallel=a.parallel, leases=a.leases, retries=a.retries,
        retries_infra=a.retries_infra, engine=a.engine, cluster=a.cluster, memory=a.memory,
    )  # fmt: skip
    return _steps(v)


@operation("sweeps_status", "sweeps", SweepStatusInput, SweepResult, mutating=False)
def sweeps_status(gw: Gateway, a: SweepStatusInput) -> dict[str, Any] | Later:
    """A sweep's progress (restarts its driver if it died); with wait, until it ends, sending progress when the client asks for it."""
    first = gw.cp.sweeps("status", a.name)
    if a.wait <= 0 or first["state"] != "running":
        return _steps(first)

    def check() -> dict[str, Any] | None:
        now = gw.cp.sweeps("status", a.name)
        later.note = _line(now)
        return _steps(now) if now["state"] != "running" else None

    later = Later(check=check, expired=lambda: _steps(gw.cp.sweeps("status", a.name)), deadline=time.monotonic() + a.wait, interval=0.5)
    later.note = _line(first)
    return later


@operation("sweeps_summary", "sweeps", SweepInput, SweepSummaryResult, mutating=False)
def sweeps_summary(gw: Gateway, a: SweepInput) -> dict[str, Any]:
    """One row per input: its run's facts, resource use and the fields of its result.json; ok only if every item succeeded."""
    s = gw.cp.sweeps("summary", a.name)
    return {**s, "next_steps": [] if s["ok"] else [step("sweeps_retry", name=a.name)]}


@operation("sweeps_retry", "sweeps", SweepRetryInput, SweepResult, mutating=True)
def sweeps_retry(gw: Gateway, a: SweepRetryInput) -> dict[str, Any]:
    """New runs for the sweep's failed and lost items (``failed``, the default) and its cancelled ones (``cancelled``)."""
    return _steps(gw.cp.sweeps("retry", a.name, failed=a.failed, cancelled=a.cancelled))


@operation("sweeps_cancel", "sweeps", SweepInput, SweepResult, mutating=True)
def sweeps_cancel(gw: Gateway, a: SweepInput) -> dict[str, Any]:
    """Cancel a sweep: its running items end, its queued ones never start."""
    return _steps(gw.cp.sweeps("cancel", a.name))


class SweepsListResult(Result):
    """Every sweep with its progress."""

    sweeps: list[dict[str, Any]]


@operation("sweeps_list", "sweeps", NoInput, SweepsListResult, mutating=False)
def sweeps_list(gw: Gateway, a: NoInput) -> dict[str, Any]:
    """Every sweep with its progress: counts by item state, slots in use, throughput, ETA."""
    rows = gw.cp.sweeps("list")
    return {"sweeps": rows, "next_steps": [step("sweeps_status", name=v["name"]) for v in rows if v["state"] == "running"][:5]}
