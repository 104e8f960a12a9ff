"""merlin's job API, with fray's names: explicit clients, typed requests, handles.

    from merlin.client import Entrypoint, JobRequest, LocalClient, set_current_client, current_client

    with LocalClient() as client, set_current_client(client):
        handle = current_client().submit(JobRequest("hello", Entrypoint.from_binary("echo", ["hi"])))
        handle.wait()
        print(handle.logs())

Importing it imports neither Ray nor pydantic and opens no connection. Beneath it
is :class:`merlin.controlplane.ControlPlane` (``client.cp``); docs/api.md documents
each name and the status mapping.
"""

from merlin.client.core import Client, JobHandle, LocalClient, current_client, set_current_client, submit_request, wait_all
from merlin.client.types import (
    DEFAULT_MAX_RETRIES_PREEMPTION,
    STATUS_OF_RUN,
    Entrypoint,
    EnvironmentConfig,
    JobAlreadyExists,
    JobFailed,
    JobRequest,
    JobStatus,
    ResourceConfig,
    submit_kwargs,
)

__all__ = [
    "DEFAULT_MAX_RETRIES_PREEMPTION",
    "STATUS_OF_RUN",
    "Client",
    "Entrypoint",
    "EnvironmentConfig",
    "JobAlreadyExists",
    "JobFailed",
    "JobHandle",
    "JobRequest",
    "JobStatus",
    "LocalClient",
    "ResourceConfig",
    "current_client",
    "set_current_client",
    "submit_kwargs",
    "submit_request",
    "wait_all",
]
