"""The facade's upkeep face: what keeps a state root from growing without end (pruning old runs, a
retention policy that prunes by itself) or holding debris (the sweep of what a SIGKILL left).

A part of :class:`merlin.controlplane.ControlPlane` (its base class), as the TargetGen face is; it
holds no state of its own, and hands the facade itself to the parts, as the other methods do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.store import Ledger


class UpkeepFace:
    """Prune, retention and the ledger's sweep, over the facade's ledger."""

    root: Path
    ledger: Ledger

    def prune_runs(self, older_than: float, statuses: Sequence[str] = (), *, dry_run: bool = False) -> Any:
        """Remove terminal runs older than ``older_than`` seconds, never an active or leased one (a
        :class:`merlin.control.find.PruneReport`: what was freed, runs and bytes, and what was kept)."""
        from merlin.control.find import prune

        return prune(cast("Plane", self), older_than, statuses, dry_run=dry_run)

    def keep_retention(self, older_than: float, statuses: Sequence[str] = (), *, every: float = 86400.0) -> int | None:
        """A retention policy applied by itself: a detached :meth:`prune_runs` when none began in the
        last ``every`` seconds (its pid), else None (:mod:`merlin.control.retention`)."""
        from merlin.control.retention import keep

        return keep(cast("Plane", self), older_than, statuses, every=every)

    def sweep(self, everything: bool = False, min_age: float | None = None) -> Any:
        """Complete (as lost) or remove run directories that a SIGKILL left without a record,
        and remove stale temp files (:mod:`merlin.ledger.sweep`). ``everything``: the whole
        state root (``ray doctor``); else only what the run index saw (cheap, ``jobs list``)."""
        from merlin.ledger.index import RunIndex
        from merlin.ledger.sweep import MIN_AGE, SweepReport, sweep

        age = MIN_AGE if min_age is None else min_age
        if everything:
            return sweep(self.ledger, None, min_age=age)
        ids = RunIndex(self.root).unrecorded_ids()
        return sweep(self.ledger, ids, min_age=age, temps=False) if ids else SweepReport()
