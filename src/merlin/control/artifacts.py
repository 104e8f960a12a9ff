"""Reading one indexed artifact of a run: its entry, where it is, and its bytes when small enough."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from merlin.errors import BadInput, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane


@dataclass(frozen=True)
class ArtifactRead:
    """One artifact as indexed: ``data`` is its content (sha256 checked against the index), or
    None when it is larger than asked for (read it at ``path``)."""

    run_id: str
    name: str
    size: int
    sha256: str | None
    path: Path
    data: bytes | None


def read_artifact(cp: Plane, run_id: str, name: str, max_bytes: int) -> ArtifactRead:
    """The artifact ``name`` of ``run_id`` (as ``artifacts`` lists it); NotFound if it is not
    indexed or is gone, BadInput if it changed since it was indexed."""
    from merlin.control.observe import artifacts
    from merlin.ledger.artifacts import sha256_file
    from merlin.ledger.paths import check_relative, inside

    check_relative(name)  # a name that climbs out is refused before the run is looked up
    idx = artifacts(cp, run_id)
    entry = next((f for f in idx.files if f.name == name), None)
    src = inside(Path(idx.target_dir), name)
    if entry is None:
        raise NotFound(f"run {run_id} has no artifact {name!r} (see artifacts_list)")
    if not src.is_file():
        raise NotFound(f"artifact {name!r} of run {run_id} is indexed but {src} is gone")
    if entry.size > max_bytes:
        return ArtifactRead(run_id, name, entry.size, entry.sha256, src, None)
    data = src.read_bytes()
    if entry.sha256 and sha256_file(src) != entry.sha256:
        raise BadInput(f"artifact {name!r} of run {run_id} changed since it was indexed; not returned")
    return ArtifactRead(run_id, name, entry.size, entry.sha256, src, data)
