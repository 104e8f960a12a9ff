"""A sweep item's states and the one table of its legal moves (docs/sweeps.md shows it).

An item is one input of a sweep (docs/sweeps.md); each of its rounds is one ordinary run.
``submitting`` is written *before* the run is submitted, with the run id it will have,
so a driver killed between the two finds the run (or submits it, once) on its next pass.
"""

from __future__ import annotations

from enum import Enum

from merlin import statemachine


class ItemState(str, Enum):
    """Where a sweep item is."""

    #: Waiting for a slot of the sweep (its ``parallel`` and its lease).
    QUEUED = "queued"
    #: Its run id is recorded; the run is being handed to its engine.
    SUBMITTING = "submitting"
    #: Its run exists and may still change (waiting for a lease, pending, running, retrying).
    ACTIVE = "active"
    #: Its run succeeded.
    SUCCEEDED = "succeeded"
    #: Its run failed (after its automatic retries).
    FAILED = "failed"
    #: Its run was lost by the infrastructure (after its automatic retries) or blocked.
    LOST = "lost"
    #: The sweep was cancelled before the item ended.
    CANCELLED = "cancelled"


ITEM_TRANSITIONS: dict[ItemState | None, frozenset[ItemState]] = {
    None: frozenset({ItemState.QUEUED}),
    ItemState.QUEUED: frozenset({ItemState.SUBMITTING, ItemState.CANCELLED}),
    ItemState.SUBMITTING: frozenset({ItemState.ACTIVE, ItemState.LOST, ItemState.CANCELLED}),
    ItemState.ACTIVE: frozenset({ItemState.SUCCEEDED, ItemState.FAILED, ItemState.LOST, ItemState.CANCELLED}),
    ItemState.SUCCEEDED: frozenset(),
    # -> queued: `retry` with `failed`: a new round, a new run
    ItemState.FAILED: frozenset({ItemState.QUEUED}),
    ItemState.LOST: frozenset({ItemState.QUEUED}),
    ItemState.CANCELLED: frozenset({ItemState.QUEUED}),
}

ITEMS: statemachine.Machine[ItemState] = statemachine.Machine(
    ItemState, ITEM_TRANSITIONS, noop_is_move=True, noun="sweep item",
    terminal=(ItemState.SUCCEEDED, ItemState.FAILED, ItemState.LOST, ItemState.CANCELLED),
    hint=" (another process changed it first; look at it again)",
)  # fmt: skip

#: states that hold one of the sweep's slots
BUSY = frozenset({ItemState.SUBMITTING, ItemState.ACTIVE})
