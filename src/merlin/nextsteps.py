"""What a person (or an agent) can do next, as data: ``{"action": ..., "args": {...}}``.

Records and errors carry ``next_steps`` lists built with :func:`step`; the
vocabulary is :class:`Action` with the arguments each action takes
(:data:`ARGS`). Nothing below ``cli/`` spells a shell command: the CLI renders
each step as a command to paste (``merlin.cli.nextsteps``) and the gateway
renders them as tool calls. Imports nothing heavy.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """Every next step merlin suggests."""

    #: a new attempt of a run
    RETRY = "retry"
    #: stop a run
    CANCEL = "cancel"
    #: read (or follow) a run's log
    LOGS = "logs"
    #: look at a run again (asks its engine)
    STATUS = "status"
    #: list the files a run produced
    ARTIFACTS = "artifacts"
    #: list runs
    LIST_RUNS = "list_runs"
    #: start (or restart) a cluster, keeping its ports and resources
    START_CLUSTER = "start_cluster"
    #: ask a cluster how it is
    CLUSTER_STATUS = "cluster_status"
    #: every recorded cluster
    LIST_CLUSTERS = "list_clusters"
    #: install a Python package into merlin's environment
    INSTALL = "install"
    #: run the TargetGen executor on a target directory
    TARGETGEN_EXECUTE = "targetgen_execute"
    #: answer an operator question
    TARGETGEN_ANSWER = "targetgen_answer"
    #: write the response file a prompt asks for (no command: a file to write)
    TARGETGEN_RESPOND = "targetgen_respond"
    #: a target's task table and open questions
    TARGETGEN_STATUS = "targetgen_status"
    #: return a blocked task to planned
    TARGETGEN_RETRY = "targetgen_retry"
    #: run a recorded command line again (argv)
    RUN_AGAIN = "run_again"
    #: every condition holding a run back
    WHY = "why"
    #: stop a cluster (and what it started)
    STOP_CLUSTER = "stop_cluster"
    #: ask a cluster's scheduler about its allocation (argv of the scheduler's own tool)
    SCHEDULER_QUERY = "scheduler_query"
    #: the inventory's items, their health, holders and the queue
    LEASES_LIST = "leases_list"
    #: the waiting requests in order (runs a scheduling pass)
    LEASES_QUEUE = "leases_queue"
    #: every condition holding a waiting lease back
    LEASE_WHY = "lease_why"
    #: request items again (bundles as ``POOL[:COUNT][,k=v...]``)
    RESERVE = "reserve"
    #: give a lease back (force: someone else's, with a reason)
    RELEASE = "release"
    #: record an item's health (good, bad, ...)
    ITEM_HEALTH = "item_health"
    #: drain an item (undo: accept leases again)
    DRAIN_ITEM = "drain_item"
    #: load the lab's inventory file
    DEFINE_INVENTORY = "define_inventory"
    #: a sweep's counts, slots, throughput, ETA and failures (restarts a dead driver)
    SWEEP_STATUS = "sweep_status"
    #: new runs for a sweep's failed and lost items (args: failed, cancelled: which)
    SWEEP_RETRY = "sweep_retry"


#: action -> (required args, optional args)
ARGS: dict[Action, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Action.RETRY: (("run_id",), ("cluster",)),
    Action.CANCEL: (("run_id",), ()),
    Action.LOGS: (("run_id",), ("follow", "attempt")),
    Action.STATUS: (("run_id",), ()),
    Action.ARTIFACTS: (("run_id",), ()),
    Action.LIST_RUNS: ((), ("status",)),
    Action.START_CLUSTER: (("name",), ("kind", "port", "dashboard_port", "num_cpus", "num_gpus", "resources", "host", "options")),
    Action.CLUSTER_STATUS: (("name",), ()),
    Action.LIST_CLUSTERS: ((), ()),
    Action.INSTALL: (("package",), ()),
    Action.TARGETGEN_EXECUTE: (("target_dir",), ("engine", "cluster")),
    Action.TARGETGEN_ANSWER: (("target_dir", "question_id", "choice"), ()),
    Action.TARGETGEN_RESPOND: (("response_file",), ("prompt_file",)),
    Action.TARGETGEN_STATUS: (("target_dir",), ()),
    Action.TARGETGEN_RETRY: (("target_dir", "task"), ()),
    Action.RUN_AGAIN: (("argv",), ()),
    Action.WHY: (("run_id",), ()),
    Action.STOP_CLUSTER: (("name",), ("force",)),
    Action.SCHEDULER_QUERY: (("argv",), ()),
    Action.LEASES_LIST: ((), ()),
    Action.LEASES_QUEUE: ((), ()),
    Action.LEASE_WHY: (("lease_id",), ()),
    Action.RESERVE: (("bundles",), ("priority",)),
    Action.RELEASE: (("lease_id",), ("force", "reason")),
    Action.ITEM_HEALTH: (("item", "state"), ("reason",)),
    Action.DRAIN_ITEM: (("item",), ("undo", "reason")),
    Action.DEFINE_INVENTORY: ((), ("file",)),
    Action.SWEEP_STATUS: (("name",), ()),
    Action.SWEEP_RETRY: (("name",), ("failed", "cancelled")),
}


def step(action: Action | str, **args: Any) -> dict[str, Any]:
    """One next step; ``None`` arguments are left out. Unknown actions or arguments are a bug."""
    act = Action(action)
    required, optional = ARGS[act]
    given = {k: v for k, v in args.items() if v is not None}
    missing = [k for k in required if k not in given]
    unknown = [k for k in given if k not in required and k not in optional]
    if missing or unknown:
        raise ValueError(f"next step {act.value}: missing {missing}, unknown {unknown}")
    return {"action": act.value, "args": given}
