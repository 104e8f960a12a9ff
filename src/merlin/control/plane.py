"""``Plane``: what the control plane's parts use of the object they work for.

The parts (``merlin.control.*``, ``merlin.integrations.*``) are functions over one
control plane. They take this protocol, defined here below the facade, not
``merlin.controlplane.ControlPlane`` itself: the facade imports the parts and the
parts never import the facade, not even for the type checker (import-linter
checks ``TYPE_CHECKING`` imports too). ``ControlPlane`` satisfies it; mypy checks
that wherever the facade hands itself to a part.

The members are the state root and its ledger, the engines and cluster backends
(each built once per control plane), the lease book, and the few facade methods
a part calls back (a retry waits, a submit of TargetGen's executor submits a run).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from merlin.clusters.base import ClusterBackend, ClusterState
    from merlin.engines.base import Engine
    from merlin.leases.book import LeaseBook
    from merlin.ledger.models import ArtifactIndex, ClusterRecord, RunRecord
    from merlin.ledger.paths import Layout
    from merlin.ledger.store import Ledger


class Plane(Protocol):
    """One state root's runs, clusters and leases, as the parts see them."""

    root: Path
    ledger: Ledger
    layout: Layout

    @property
    def leases(self) -> LeaseBook: ...

    def engine(self, name: str) -> Engine: ...

    def cluster_backend(self, kind: str | None = None) -> ClusterBackend: ...

    def cluster_status(self, name: str = "default", sockets: bool = True) -> ClusterState: ...

    def start_cluster(self, kind: str, name: str, *, wait: bool = True, progress: Any = None, **options: Any) -> tuple[ClusterRecord, bool]: ...

    def get(self, run_id: str) -> RunRecord: ...

    def status(self, run_id: str, refresh: bool = True) -> RunRecord: ...

    def status_json(self, run_id: str, refresh: bool = True) -> dict[str, Any]: ...

    def refresh(self, run_ids: Iterable[str] | None = None, *, touch: bool = True) -> list[RunRecord]: ...

    def wait(self, run_id: str, timeout: float | None = None, poll: float = 0.5) -> RunRecord: ...

    def cancel(self, run_id: str, grace: float = 5.0, timeout: float = 15.0) -> RunRecord: ...

    def index_artifacts(self, run_id: str) -> ArtifactIndex: ...

    def artifacts(self, run_id: str) -> ArtifactIndex: ...

    def submit(
        self,
        command: Sequence[str],
        *,
        target: str,
        workflow: str,
        engine: str | None = None,
        target_dir: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        resources: Mapping[str, float] | None = None,
        env: Mapping[str, str] | None = None,
        cluster: str | None = None,
        source: str = "api",
        metadata: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        leases: Sequence[str] = (),
        runtime: Any = None,
        max_retries_failure: int = 0,
        max_retries_preemption: int = 0,
        retry_backoff: float | str | None = None,
        memory: int | str | None = None,
    ) -> RunRecord: ...

    def logs(self, run_id: str, attempt: int | None = None) -> str: ...

    def submit_targetgen(
        self,
        target_dir: str | os.PathLike[str],
        target: str,
        *,
        engine: str = "ray",
        cluster: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        workflow: str = "targetgen-execute",
        extra_args: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunRecord: ...
