"""merlin's ledger: the durable record of runs, clusters and leases (see docs/ray.md).

Importing this package is cheap; the records (``models.py``, light, no pydantic) load when first used.
"""

from merlin.ledger.paths import Layout, resolve_state_root
from merlin.ledger.status import RunStatus
from merlin.ledger.store import Ledger, set_status

__all__ = ["Layout", "Ledger", "RunStatus", "resolve_state_root", "set_status"]
