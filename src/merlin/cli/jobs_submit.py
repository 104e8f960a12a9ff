"""The body of ``merlin ray jobs submit``, whichever parser read the command line.

Two parsers call :func:`submit` with the same keyword arguments: the Typer
command (``jobs_cmd.jobs_submit``, which passes its parameters on as they are)
and the fast path (:mod:`merlin.cli.fast_submit`, from the table generated from
that command). ``tests/test_submit_fast_path.py`` keeps the three in step. This
module imports neither Typer nor anything heavy: a submit is mostly Python's
start-up and one HTTP request.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from merlin.cli.common import control_plane, exit_for_run, key_values, say, say_next


def submit(
    command: list[str],
    target: str,
    workflow: str,
    engine: str,
    target_dir: Path | None,
    num_cpus: float | None,
    num_gpus: float | None,
    memory: str | None,
    resource: list[str] | None,
    env: list[str] | None,
    wait: bool,
    cluster: str | None,
    lease: list[str] | None,
    time_: float | None,
    requirements: Path | None,
    lock: Path | None,
    with_: list[str] | None,
    python: str | None,
    working_dir: Path | None,
    secret_env: list[str] | None,
    index_url: list[str] | None,
    find_links: list[str] | None,
    no_index: bool,
    env_file: Path | None,
    retries: int,
    retries_infra: int,
    retry_backoff: float | None,
    replicas: int | None,
    placement: str | None,
    name: str | None,
    state_root: Path | None,
    json: bool,
    typed: frozenset[str] = frozenset(),
) -> None:
    """Record a run, hand it to its engine, print its id (and wait for it with ``wait``).

    ``typed``: the parameters given on the command line (the others came from their
    defaults or the config files, cli/config.py)."""
    from merlin.cli.output import emit_json
    from merlin.safety import check_number

    check_number(num_cpus, "--num-cpus")
    check_number(num_gpus, "--num-gpus")

    cp = control_plane(state_root)
    if cluster is not None and "cluster" not in typed and not cp.engine(engine).uses_cluster:
        cluster = None  # a configured cluster is for the engines that run on one
    if time_ is not None:
        _warn_short_allocation(cp, engine, cluster or "default", time_)
    from merlin.client import Entrypoint, EnvironmentConfig, JobRequest, ResourceConfig, submit_request

    # the JobRequest the gateway's runs_submit and merlin.client build too: the front ends submit alike
    request = JobRequest(
        name,
        Entrypoint.from_binary(command[0], command[1:]),
        resources=ResourceConfig(
            cpu=num_cpus, device=None if num_gpus is None else f"gpu:{num_gpus:g}", ram=memory, leases=tuple(lease or ()),
            custom=key_values(resource, "--resource", True) or {},
        ),
        environment=EnvironmentConfig(
            env_vars=key_values(env, "--env", False) or {},
            options=runtime_from_flags(
                env_file, requirements_file=requirements, lock_file=lock, packages=with_, python=python, working_dir=working_dir,
                secret_env=secret_env, index_url=index_url, find_links=find_links, no_index=no_index,
            ) or {},
        ),
        replicas=replicas,
        max_retries_failure=retries,
        max_retries_preemption=retries_infra,
        retry_backoff=retry_backoff,
        placement=placement,
        target=target,
        workflow=workflow,
        target_dir=None if target_dir is None else str(target_dir),
    )
    rec = submit_request(cp, request, engine=engine, cluster=cluster, source="cli")
    from merlin.cli.config import keep_retention

    keep_retention(cp)
    announced = False
    if wait and (not rec.status.is_terminal() or rec.retry_keeper) and rec.status.value != "blocked":
        import gc

        from merlin.cli.waiting import announce, wait_for_run

        gc.enable()  # waiting may take hours: the collector as usual (the CLI starts with it off, cli/entry.py)
        if not json:
            announce(rec)
            announced = True
        rec = wait_for_run(cp, rec, quiet=json)
    if json:
        emit_json(rec.model_dump(mode="json"))
    else:
        if rec.status.value == "succeeded" or (not wait and rec.status.value != "blocked"):
            say(f"run {rec.run_id}: {rec.message}")
            say_next(rec)
        if not announced:
            sys.stdout.write(rec.run_id + "\n")
    exit_for_run(rec, waited=wait)


def runtime_from_flags(env_file: Path | None, **flags: Any) -> dict[str, Any] | None:
    """The facade's ``runtime`` from `--env-file` (paths relative to it) and the flags (which win); None if neither."""
    out: dict[str, Any] = {}
    if env_file is not None:
        from merlin.cli.env_file import read_env_file

        out = read_env_file(env_file)
    for k, v in flags.items():
        if v not in (None, False, [], ()):
            out[k] = [str(x) for x in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v
    return out or None


def _warn_short_allocation(cp: Any, engine: str, cluster: str, seconds: float) -> None:
    """`jobs submit --time`: warn (not refuse) when the cluster's walltime ends first, or that
    the engine has no walltime (the local engine: the run ends when its command does)."""
    from merlin.cli.output import warn
    from merlin.clusters.walltime import short_of_time
    from merlin.durations import describe

    if not cp.engine(engine).uses_cluster:
        warn(f"--time {describe(seconds)} is ignored: the {engine} engine has no walltime (the run ends when its command does)")
        return
    record = cp.ledger.read_cluster(cluster)
    text = short_of_time(record, seconds) if record is not None else None
    if text:
        warn(text)
