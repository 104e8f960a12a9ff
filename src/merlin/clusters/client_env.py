"""The environment that lets Ray's own tools reach a merlin cluster (``ray cluster env``).

Measured on Ray 2.60 against a merlin head started with token authentication
(tests/test_cluster_env.py runs Ray's CLI and SDK with exactly these):

- ``RAY_API_SERVER_ADDRESS``: the jobs API URL; ``ray job submit/list/logs/stop``
  and ``JobSubmissionClient()`` take it before ``RAY_ADDRESS``
  (``ray.dashboard.utils.get_address_for_submission_client``).
- ``RAY_ADDRESS``: the GCS address, for ``ray status`` and ``ray.init()``.
- ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` (or ``RAY_AUTH_TOKEN`` from the
  variable the cluster reads it from): without them every call fails with
  "Missing authentication token".
- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` for a head on loopback: otherwise Ray
  replaces 127.0.0.1 by the machine's other address and ``ray status`` times out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from merlin.clusters.net import LOOPBACK
from merlin.errors import Blocked, NotFound
from merlin.nextsteps import Action, step


@dataclass
class ClusterEnv:
    """Environment variables (name -> value, in order), and what a person needs beside them."""

    name: str
    variables: dict[str, str]
    #: variables whose value is another variable's (``RAY_AUTH_TOKEN`` from ``$TOKEN_ENV``): name -> that variable
    references: dict[str, str] = field(default_factory=dict)
    dashboard_url: str | None = None
    token_file: str | None = None
    unset: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "variables": dict(self.variables),
            "references": dict(self.references),
            "unset": list(self.unset),
            "dashboard_url": self.dashboard_url,
            "token_file": self.token_file,
        }


def client_env(ledger: Any, name: str) -> ClusterEnv:
    """The variables for cluster ``name`` of ``ledger``; ``NotFound`` if none is recorded, ``Blocked`` when it has no head yet."""
    ledger.layout.cluster_record(name)  # validates the name
    record = ledger.read_cluster(name)
    if record is None:
        raise NotFound(f"no cluster '{name}' recorded in {ledger.root}", argument="name", next_steps=[step(Action.LIST_CLUSTERS)])
    if not record.address or not record.gcs_address:
        raise Blocked(f"cluster '{name}' has no head address recorded yet ({record.message}); wait until it is active", "cluster_not_active")
    variables = {"RAY_API_SERVER_ADDRESS": record.address, "RAY_ADDRESS": record.gcs_address}
    references: dict[str, str] = {}
    unset: list[str] = []
    auth = record.auth
    if auth.mode == "token":
        variables["RAY_AUTH_MODE"] = "token"
        if auth.token_file:
            variables["RAY_AUTH_TOKEN_PATH"] = auth.token_file
            unset.append("RAY_AUTH_TOKEN")  # Ray prefers it over the file: a stale one would win
        elif auth.token_env:
            references["RAY_AUTH_TOKEN"] = auth.token_env
    else:
        variables["RAY_AUTH_MODE"] = "disabled"
        unset += ["RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"]
    gcs_host = record.gcs_address.rsplit(":", 1)[0]
    if gcs_host in LOOPBACK:
        variables["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return ClusterEnv(name, variables, references, record.dashboard_url, auth.token_file if auth.mode == "token" else None, unset)
