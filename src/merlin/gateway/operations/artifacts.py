"""Artifacts: the files a run left in its target directory, and one file's content."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from merlin.gateway.operations.runs import RunInput
from merlin.gateway.registry import Result, operation, step
from merlin.gateway.shared import ArtifactName

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway

#: Bytes of an artifact returned inline by artifacts_fetch (larger ones: a path).
DEFAULT_FETCH_LIMIT = 256 * 1024


class ArtifactsResult(Result):
    """The run's artifact index."""

    run_id: str
    files: list[dict[str, Any]]


class FetchResult(Result):
    run_id: str
    name: str
    size: int = Field(ge=0)
    sha256: str
    path: str
    encoding: Literal["utf-8", "base64"] | None = Field(description="null: too large, read it at path.")
    content: str | None
    truncated_reason: str | None = None


class FetchInput(RunInput):
    name: ArtifactName = Field(description="Artifact name as listed (relative path).")
    max_bytes: int = Field(DEFAULT_FETCH_LIMIT, ge=1, le=4 * 1024 * 1024, description="Larger artifacts are returned as a path.")


@operation("artifacts_list", "artifacts", RunInput, ArtifactsResult, mutating=False)
def artifacts_list(gw: Gateway, a: RunInput) -> dict[str, Any]:
    """Files of the run's target directory, as indexed when it ended."""
    data = gw.cp.artifacts(a.run_id).model_dump(mode="json")
    data["next_steps"] = [step("artifacts_fetch", run_id=a.run_id, name=f["name"]) for f in data["files"][:5]]
    return data


@operation("artifacts_fetch", "artifacts", FetchInput, FetchResult, mutating=False)
def artifacts_fetch(gw: Gateway, a: FetchInput) -> dict[str, Any]:
    """One artifact's content (text, or base64 for binary) within max_bytes, its sha256 checked; larger ones come back as a path."""
    got = gw.cp.read_artifact(a.run_id, a.name, a.max_bytes)
    out: dict[str, Any] = {"run_id": a.run_id, "name": a.name, "size": got.size, "sha256": got.sha256, "path": str(got.path), "next_steps": []}
    if got.data is None:
        return {**out, "encoding": None, "content": None, "truncated_reason": f"{got.size} bytes > max_bytes {a.max_bytes}: read it at path"}
    try:
        return {**out, "encoding": "utf-8", "content": got.data.decode("utf-8")}
    except UnicodeDecodeError:
        return {**out, "encoding": "base64", "content": base64.b64encode(got.data).decode("ascii")}
