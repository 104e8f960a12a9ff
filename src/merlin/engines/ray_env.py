"""A Ray job's env launcher (docs/environments.md): the command line the Ray engine puts before a
run's command when the run has a runtime, for the cluster the job goes to."""

from __future__ import annotations

import os
import sys
from typing import Any

from merlin.engines.base import EngineBlocked


def through_launcher(layout: Any, record: Any, request: Any, attempt: int, cluster: Any, env: dict[str, str], fields: dict[str, Any] | None = None) -> list[str]:
    """The env launcher before the command, started by the interpreter that has merlin on the
    cluster's nodes (its record's ``python``), so the env is built on the node the job lands on,
    in the cluster's ``env_cache`` (else its kind's default); nodes that do not see this state root
    (SSH hosts) get the spec on the command line. Secret values join the job's env_vars (Ray keeps
    them in the job's runtime env). ``fields``: the attempt's fields to record at submit: on nodes
    that do not see the state root (no report file), the env id the spec names (the hosts run this
    merlin, the cluster's ``python``), hit or built read later from the launcher's line in the job's log."""
    from merlin.clusters.registry import env_placement
    from merlin.envs.argv import launcher_argv

    assert request.runtime is not None
    for name in request.runtime.secret_env:
        if name not in os.environ:
            raise EngineBlocked(f"secret {name} is not set in the environment of the process handing the run to Ray: export it, then retry", "secret_missing")
        env[name] = os.environ[name]
    python = getattr(cluster, "python", None) or sys.executable
    runtime = request.runtime.model_dump(mode="json")
    sees_root, default_cache = env_placement(cluster.kind)
    cache = getattr(cluster, "env_cache", None) or default_cache
    if not sees_root and fields is not None:
        from merlin.envs.spec import env_id, needs_build

        if needs_build(runtime):
            fields["env_id"] = env_id(runtime)
    return launcher_argv(layout, record.run_id, attempt, runtime, python=python, cache=cache, inline=not sees_root, usage=sees_root and request.replicas is None,
                         memory=request.memory if request.replicas is None else None)


def per_run_exports(env: dict[str, str]) -> dict[str, str]:
    """Take out of ``env`` (a job's runtime_env env_vars) the values merlin gives each run
    (``MERLIN_RUN_ID``, ``MERLIN_ATTEMPT``, its paths, a sweep item's input, ...), for the job's
    entrypoint to export instead. Ray starts jobs that share a runtime env sooner than jobs with a
    runtime env each: 40 trivial jobs with a unique env apiece took 1.4x the wall time of the same
    jobs with one shared env on a busy 2-core head (benchmarks/bench_client.py). Secret-looking
    values stay in the runtime env (an entrypoint is on a process's command line)."""
    from merlin.ledger.text import secret_values

    secret = set(secret_values(env))
    out = {k: v for k, v in env.items() if k.startswith("MERLIN_") and v not in secret}
    for k in out:
        del env[k]
    return out


def working_dir_package(layout: Any, request: Any, cluster: Any, api: Any) -> str | None:
    """For a cluster whose nodes do not see this state root (SSH hosts): the run's working-dir
    snapshot as a Ray package in the cluster's GCS, ``gcs://_ray_pkg_<snapshot id>.zip``, sent once
    (a snapshot already there is not sent again), for the job's ``runtime_env.working_dir``: Ray
    unpacks it on the node the job lands on and starts the job there. None: no working dir, or the
    nodes read the snapshot from the state root themselves (the launcher's ``--snapshot``)."""
    snapshot = request.runtime.working_dir if request.runtime is not None else None
    if not snapshot:
        return None
    from merlin.clusters.registry import env_placement

    if env_placement(cluster.kind)[0]:
        return None
    from merlin.engines import ray_api
    from merlin.envs.snapshot import zip_of  # only here: a submit without one imports no zip, hashing or AST

    uri = f"gcs://_ray_pkg_{snapshot[:40]}.zip"
    try:
        if not api.has_package(uri):
            api.upload_package(uri, zip_of(layout.snapshot(snapshot), layout.blobs))
    except ray_api.RayApiError as exc:
        raise EngineBlocked(f"could not send the working dir to Ray cluster '{cluster.name}' ({exc.message}); retry it", "working_dir_upload") from None
    return uri


def launcher_prefix(layout: Any, record: Any, request: Any, attempt: int, cluster: Any, env: dict[str, str], fields: dict[str, Any] | None = None) -> list[str]:
    """What goes before a Ray job's command: the env launcher for a run with a runtime, else the measurer.
    Either holds the command to the run's memory limit (Ray only reserves ``entrypoint_memory``)."""
    if request.runtime is not None:
        return through_launcher(layout, record, request, attempt, cluster, env, fields)
    return measured(layout, record, attempt, cluster, request.memory)


def measured(layout: Any, record: Any, attempt: int, cluster: Any, memory: int | None = None) -> list[str]:
    """The launcher as a measurer before a job's command when the run has no runtime: the job's resource use
    is written into the run's directory (``Layout.usage_report``), so only where the cluster's nodes see this
    state root; with ``memory`` it holds the command to that many bytes, on any node. Else nothing: the
    command as it is. docs/sweeps.md, "Results and resource use"."""
    from merlin.clusters.registry import env_placement
    from merlin.envs.argv import usage_argv

    sees_root = env_placement(cluster.kind)[0]
    if not sees_root and memory is None:
        return []
    return usage_argv(layout, record.run_id, attempt, python=getattr(cluster, "python", None) or sys.executable, usage=sees_root, memory=memory)


def report_from_log(client: Any, info: Any, kind: str) -> dict[str, Any] | None:
    """The launcher's report where it could write none (``--spec-inline``: nodes that do not see
    the state root, e.g. SSH hosts): its ``merlin-env: environment ENV_ID (cache hit|built)`` line,
    else its last ``merlin-env: building ENV_ID (Ns): LINE`` (the env is being built there), read
    from the job's log once the job runs (None before, or on nodes that write the file). A log with
    none of its lines says ``silent``: not started yet, or a log this host cannot be served whole."""
    import re

    from merlin.clusters.registry import env_placement
    from merlin.engines import ray_api

    if env_placement(kind)[0] or info.status not in ("RUNNING", "SUCCEEDED", "FAILED", "STOPPED") or not info.submission_id:
        return None
    try:
        text = client.logs(info.submission_id)
    except ray_api.RayApiError:
        return None
    found = re.search(r"^merlin-env: environment ([0-9a-f]{64}) \((cache hit|built)\)", text, re.M)
    if found is None:
        failed = re.search(r"^merlin-env: failed: (.+)$", text, re.M)  # the launcher's line for a build uv could not make
        if failed:
            return {"state": "failed", "line": failed[1].strip()}
        building = re.findall(r"^merlin-env: building ([0-9a-f]{64}) \(\d+s\): (.*)$", text, re.M)
        if building:
            return {"state": "building", "env_id": building[-1][0], "line": building[-1][1].strip()}
        preparing = re.search(r"^merlin-env: preparing ([0-9a-f]{64})$", text, re.M)
        return {"state": "preparing", "env_id": preparing[1]} if preparing else {"state": "silent"}
    return {"state": "ready", "env_id": found[1], "cache": "hit" if found[2] == "cache hit" else "built"}


def with_launch_report(ledger: Any, r: Any, obs: Any, cluster: Any, client: Any, info: Any) -> Any:
    """``obs`` with the env launcher's report: its file (written where the job ran: readable when that
    is this host), or, from nodes that do not see the state root (SSH hosts), its lines in the job's log."""
    import json

    try:
        report = json.loads(ledger.layout.env_report(r.run_id, len(r.attempts)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = report_from_log(client, info, cluster.kind)
    return with_report(obs, report, waits=_needs_env(ledger, r.run_id), run_id=r.run_id)


#: seconds after its start within which a job whose log has no launcher line yet is still taken as preparing
SILENT_GRACE = 30.0


def _just_started(obs: Any) -> bool:
    """The job started less than :data:`SILENT_GRACE` ago (or its start is unknown)."""
    import time

    start = getattr(obs, "start_time", None)
    return start is None or time.time() - start.timestamp() < SILENT_GRACE


def _needs_env(ledger: Any, run_id: str) -> bool:
    """Whether the run's request asks for an env the launcher must find or build (and report)."""
    from merlin.envs.spec import needs_build
    from merlin.errors import MerlinError

    try:
        runtime = ledger.read_request(run_id).runtime
    except (MerlinError, OSError, ValueError):  # missing or unreadable: no env to wait for
        return False
    return runtime is not None and needs_build(runtime.model_dump(mode="json"))


def with_report(obs: Any, report: Any, *, waits: bool = False, run_id: str = "") -> Any:
    """The observation of a Ray job with the env launcher's report (its file, or its line in the log) applied:
    the env id and hit or built once ready; a job that ended because its env could not be built is
    ``blocked`` (its command never ran), with uv's line, as on the local engine (docs/environments.md).

    ``waits``: the launcher reports on an env it must find or build (its file where the nodes see the
    state root, its lines in the job's log elsewhere). Until the report says ready, a job Ray calls
    running is the launcher preparing the env, not the command: the run is ``waiting`` (``waiting_on``
    says on what), as a local run is."""
    from merlin.engines.base import Observation
    from merlin.ledger import RunStatus

    ready = isinstance(report, dict) and report.get("state") == "ready"
    if isinstance(report, dict) and report.get("state") == "silent" and not _just_started(obs):
        waits = False  # no word from the launcher in the log Ray serves here: it cannot tell, so Ray's state stands
    if waits and obs.status == RunStatus.RUNNING and not ready:
        building = isinstance(report, dict) and report.get("state") == "building"
        eid = str(report.get("env_id") or "")[:12] if isinstance(report, dict) else ""
        what = f"env {eid} building" if building else "env being prepared"
        line = str(report.get("line") or "") if building and isinstance(report, dict) else ""  # uv's, from the job's log (SSH hosts)
        text = (f"waiting for its environment {eid} to build on the node" + (f": {line}" if line else "") if building
                else "waiting: the env launcher is preparing its environment on the node")  # fmt: skip
        from merlin.nextsteps import Action, step

        return Observation(status=RunStatus.WAITING, known=obs.known, message=text, extra={"waiting_on": what},
                           next_steps=[step(Action.WHY, run_id=run_id), step(Action.CANCEL, run_id=run_id)])  # fmt: skip
    if not isinstance(report, dict):
        return obs
    if report.get("state") == "ready" and report.get("cache") in ("hit", "built"):
        obs.extra.update(env_id=report.get("env_id"), env_cache=report["cache"])
    elif report.get("state") == "failed" and obs.status == RunStatus.FAILED:
        extra = {k: report[k] for k in ("env_id", "no_space", "cache_dir") if report.get(k) is not None}
        return Observation(status=RunStatus.BLOCKED, exit_code=obs.exit_code, error_type="ENV_BUILD_FAILED",
                           message=str(report.get("line") or "uv failed"), start_time=obs.start_time, end_time=obs.end_time, extra=extra)  # fmt: skip
    return obs
