"""What holds a run back, as data: one *condition* per reason, from the layer that knows it.

``merlin ray jobs why`` (``ControlPlane.why``) lists them layer by layer, in
:data:`LAYERS` order: leases, the cluster, the engine (Ray itself), the
cluster's scheduler (Slurm, PBS), then the run record. Each layer builds its
own with :func:`condition`; nobody else interprets another layer's evidence.

A condition is ``{layer, code, message, evidence, observed_at, next_steps, hint}``:
``code`` is stable (docs/leases.md lists them), ``evidence`` is what was seen
(who holds an item, what Ray said), ``next_steps`` are ``{action, args}``
(:mod:`merlin.nextsteps`) that front ends render as commands or tool calls,
and ``hint`` is plain text for what no command does ("it starts by itself").
Imports nothing heavy; the record schema is ``ledger.models.Condition``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: the order of the layers in ``jobs why`` (the issue's order; the run record last).
#: An engine's conditions carry the engine's name as their layer (``ray``), in the "engine" place.
LAYERS = ("leases", "cluster", "engine", "scheduler", "run")


def condition(
    layer: str,
    code: str,
    message: str,
    evidence: dict[str, Any],
    observed_at: str,
    next_steps: Iterable[dict[str, Any]] = (),
    hint: str | None = None,
) -> dict[str, Any]:
    """One condition; ``next_steps`` are :func:`merlin.nextsteps.step` dicts."""
    return {
        "layer": layer,
        "code": code,
        "message": message,
        "evidence": evidence,
        "observed_at": observed_at,
        "next_steps": list(next_steps),
        "hint": hint,
    }


