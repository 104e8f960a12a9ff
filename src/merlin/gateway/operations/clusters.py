"""Clusters: list and status (always), start and stop (only with merlin serve --allow-cluster-control)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from merlin.errors import Blocked
from merlin.gateway.registry import Input, NoInput, Result, operation, report, step
from merlin.gateway.shared import Name

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway


class ClusterState(BaseModel):
    """A cluster observed now."""

    model_config = ConfigDict(extra="allow")
    name: str
    state: str
    message: str | None = None


class ClusterResult(ClusterState, Result):
    """One cluster observed now, with the tool calls to make next."""


class ClustersListResult(Result):
    clusters: list[ClusterState]


class ClusterStartResult(Result):
    started: bool
    cluster: dict[str, Any] = Field(description="The cluster's record.")


class ClusterStopResult(Result):
    """The stopped cluster's record."""

    name: str


class ClusterInput(Input):
    name: Name = Field("default", description="Cluster name.")


class ClusterStartInput(ClusterInput):
    port: int | None = Field(None, ge=1, le=65535, description="GCS port (default 6379); a restart step keeps the recorded one.")
    dashboard_port: int | None = Field(None, ge=1, le=65535, description="Jobs API / dashboard port (default 8265).")
    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources of the head node.")


class ClusterStopInput(ClusterInput):
    force: bool = Field(False, description="Stop it although runs are active on it: they are recorded as cancelled (cluster stopped), their logs kept.")


@operation("clusters_list", "clusters", NoInput, ClustersListResult, mutating=False)
def clusters_list(gw: Gateway, a: NoInput) -> dict[str, Any]:
    """Clusters merlin knows, each observed now (state, message, processes)."""
    states = [s.to_json() for s in gw.cp.list_clusters()]
    return {"clusters": states, "next_steps": [step("clusters_status", name=s["name"]) for s in states][:5]}


@operation("clusters_status", "clusters", ClusterInput, ClusterResult, mutating=False)
def clusters_status(gw: Gateway, a: ClusterInput) -> dict[str, Any]:
    """One cluster, observed now."""
    data = gw.cp.cluster_status(a.name).to_json()
    data["next_steps"] = []
    return data


@operation("clusters_start", "clusters", ClusterStartInput, ClusterStartResult, mutating=True, requires="cluster_control")
def clusters_start(gw: Gateway, a: ClusterStartInput) -> dict[str, Any]:
    """Start a private local Ray head on loopback (or find it active), with the given ports and resources. Only with merlin serve --allow-cluster-control."""
    given = {k: getattr(a, k) for k in ("port", "dashboard_port", "num_cpus", "num_gpus") if getattr(a, k) is not None}
    extra: dict[str, Any] = {"resources": dict(a.resources)} if a.resources else {}
    report(f"clusters_start {a.name}: starting or finding the local Ray head")
    rec, started = gw.cp.start_local_cluster(a.name, **given, **extra, progress=report)
    return {"started": started, "cluster": rec.model_dump(mode="json"), "next_steps": [step("clusters_status", name=a.name)]}


@operation("clusters_stop", "clusters", ClusterStopInput, ClusterStopResult, mutating=True, requires="cluster_control")
def clusters_stop(gw: Gateway, a: ClusterStopInput) -> dict[str, Any]:
    """Stop a cluster merlin started; refused (blocked, exit 3) while runs are active on it unless force. Only with merlin serve --allow-cluster-control."""
    try:
        rec = gw.cp.stop_cluster(a.name, force=a.force)
    except Blocked as exc:
        if exc.cause != "cluster_has_runs":
            raise
        # the forced stop is said in the text only: ending other runs stays a decision, never a next step
        raise Blocked(f"{exc.message}: call clusters_stop with force=true", exc.cause, next_steps=exc.next_steps) from None
    return {**rec.model_dump(mode="json"), "next_steps": []}
