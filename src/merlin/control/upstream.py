"""merlin's records in upstream Merlin's shape (``--format upstream``; the mapping is docs/records/upstream.md).

Upstream Merlin (ucb-bar/merlin, ``tools/raycp/model.py`` and ``service.py``) keeps
the same files under the same state root (``runs/<id>/run_record.json``,
``runs/<id>/artifacts.json``, ``resources/leases/<id>.json``) with flat records:
one ``submission_id`` per run, statuses ``submitted``/``running``/``completed``/
``failed``/``cancelled``/``blocked``/``error``, a bare list of artifacts, and leases
``active``/``released`` on one ``resource_type``. These functions turn merlin's
JSON records into those shapes, field for field, so a script written for
upstream's files reads merlin's output unchanged. What upstream has no field for
stays in ``metadata`` under ``merlin_*`` keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput

if TYPE_CHECKING:
    from merlin.control.plane import Plane

KINDS = ("run", "artifacts", "lease")

#: merlin's run status -> upstream's (``_parse_job_status`` and the submit paths of tools/raycp/service.py)
RUN_STATUS = {
    "waiting": "submitted",  # recorded, waiting for its lease: upstream had no lease wait, its nearest is "not running yet"
    "pending": "submitted",  # upstream: Ray's PENDING -> submitted
    "running": "running",
    "succeeded": "completed",  # upstream: Ray's SUCCEEDED -> completed
    "failed": "failed",
    "cancelled": "cancelled",
    "blocked": "blocked",
    "lost": "error",  # merlin lost track of it; upstream's only status for "the control plane could not tell"
}

#: merlin's lease state -> upstream's (upstream leases are only ``active`` or ``released``)
LEASE_STATUS = {"granted": "active", "waiting": "waiting", "released": "released", "expired": "released", "revoked": "released", "cancelled": "released"}


def _time(value: Any) -> str | None:
    """A record's time as upstream wrote it: ``datetime.isoformat()`` in UTC (``+00:00``)."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).isoformat()


def run_record(rec: dict[str, Any]) -> dict[str, Any]:
    """runs/<id>/run_record.json in upstream's ``RunRecord`` fields."""
    attempts = rec.get("attempts") or []
    last = attempts[-1] if attempts else {}
    cluster = rec.get("cluster") or {}
    extra = {
        "merlin_status": rec.get("status"),
        "merlin_outcome": rec.get("outcome"),
        "merlin_attempts": len(attempts),
        "merlin_cluster": cluster.get("name"),
        "merlin_exit_code": last.get("exit_code"),
    }
    return {
        "run_id": rec["run_id"],
        "target": rec["target"],
        "workflow": rec["workflow"],
        "source": rec["source"],
        "engine": rec["engine"],
        "status": RUN_STATUS.get(str(rec.get("status")), str(rec.get("status"))),
        "target_dir": rec["target_dir"],
        "workdir": rec["workdir"],
        "command": list(rec.get("command") or []),
        "cluster_address": cluster.get("address"),
        "submission_id": last.get("submission_id"),
        "message": rec.get("message") or None,
        "metadata": {**(rec.get("metadata") or {}), **{k: v for k, v in extra.items() if v is not None}},
        "created_at": _time(rec.get("created_at")),
        "updated_at": _time(rec.get("updated_at")),
    }


def artifacts(index: dict[str, Any]) -> list[dict[str, Any]]:
    """runs/<id>/artifacts.json as upstream's bare list of ``ArtifactRecord``."""
    base = str(index.get("target_dir") or "")
    return [
        {
            "run_id": index["run_id"],
            "name": f["name"],
            "path": str(PurePosixPath(base) / f["name"]) if base else f["name"],
            "kind": PurePosixPath(f["name"]).suffix.lstrip(".") or "file",  # upstream: the file's suffix, or "file"
            "size_bytes": f["size"],
            "created_at": _time(index.get("indexed_at")),
        }
        for f in index.get("files") or []
    ]


def lease(rec: dict[str, Any]) -> dict[str, Any]:
    """resources/leases/<id>.json in upstream's ``ResourceLease`` fields."""
    owner = rec.get("owner") or {}
    pools = [b["pool"] for b in rec.get("bundles") or []]
    times = [rec.get(k) for k in ("ended_at", "renewed_at", "granted_at", "created_at") if rec.get(k)]
    extra = {
        "merlin_state": rec.get("state"),
        "merlin_bundles": rec.get("bundles"),
        "merlin_items": rec.get("items"),
        "merlin_expires_at": rec.get("expires_at"),
        "merlin_owner": owner,
        "merlin_reason": rec.get("reason") or None,
    }
    return {
        "lease_id": rec["lease_id"],
        "resource_type": ",".join(dict.fromkeys(pools)),
        "owner": owner.get("user", ""),
        "status": LEASE_STATUS.get(str(rec.get("state")), str(rec.get("state"))),
        "metadata": {k: v for k, v in extra.items() if v is not None},
        "created_at": _time(rec.get("created_at")),
        "updated_at": _time(max(times, key=lambda t: datetime.fromisoformat(str(t).replace("Z", "+00:00")))) if times else None,
    }


def record(cp: Plane, kind: str, ident: str) -> Any:
    """The record ``kind`` (run, artifacts or lease) of ``ident`` in upstream's shape, read through the facade ``cp``."""
    if kind == "run":
        return run_record(cp.status_json(ident))
    if kind == "artifacts":
        return artifacts(cp.artifacts(ident).model_dump(mode="json"))
    if kind == "lease":
        return lease(dict(cp.leases.show(ident)))
    raise BadInput(f"`kind` {kind!r}: expected one of {', '.join(KINDS)}", argument="kind")
