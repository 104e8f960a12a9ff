"""Next steps as tool calls.

Records and errors carry ``next_steps`` as ``{action, args}`` (``merlin.nextsteps``);
the gateway offers each as a call of the tool that performs it. The table is keyed
by :class:`merlin.nextsteps.Action` and must name every action, with ``None`` for an
action no tool performs: :func:`action_tools` refuses a table that misses an action
or names something that is not one, so a new action cannot ship without a decision
here (``tests/test_gateway_steps.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from merlin.gateway.registry import by_name, step
from merlin.nextsteps import Action

#: action -> the tool that performs it; None: no tool (an install or a shell command line, a lab
#: maintainer's decision on the inventory, a scheduler's own command). A forced release, too,
#: stays a person's decision: see ``_forced``.
TOOL_OF_ACTION: dict[Action, str | None] = {
    Action.RETRY: "runs_retry",
    Action.CANCEL: "runs_cancel",
    Action.LOGS: "runs_logs",
    Action.STATUS: "runs_status",
    Action.ARTIFACTS: "artifacts_list",
    Action.LIST_RUNS: "runs_list",
    Action.START_CLUSTER: "clusters_start",
    Action.CLUSTER_STATUS: "clusters_status",
    Action.LIST_CLUSTERS: "clusters_list",
    Action.INSTALL: None,
    Action.TARGETGEN_EXECUTE: "targetgen_execute",
    Action.TARGETGEN_ANSWER: "targetgen_answer",
    Action.TARGETGEN_RESPOND: "review_respond",
    Action.TARGETGEN_STATUS: "targetgen_status",
    Action.TARGETGEN_RETRY: "targetgen_retry",
    Action.RUN_AGAIN: None,
    Action.WHY: "runs_why",
    Action.STOP_CLUSTER: "clusters_stop",
    Action.SCHEDULER_QUERY: None,
    Action.LEASES_LIST: "leases_list",
    Action.LEASES_QUEUE: "leases_queue",
    Action.LEASE_WHY: "leases_why",
    Action.RESERVE: "leases_reserve",
    Action.RELEASE: "leases_release",
    Action.ITEM_HEALTH: None,
    Action.DRAIN_ITEM: None,
    Action.DEFINE_INVENTORY: None,
    Action.SWEEP_STATUS: "sweeps_status",
    Action.SWEEP_RETRY: "sweeps_retry",
}


def action_tools(actions: Iterable[Action], table: Mapping[Any, str | None]) -> dict[str, str]:
    """``{action value: tool}`` from ``table``, which must name every action of ``actions`` and nothing else."""
    known = list(actions)
    missing = [a.value for a in known if a not in table]
    extra = [str(k) for k in table if k not in known]
    if missing or extra:
        raise RuntimeError(f"gateway tool table: actions without an entry {missing}, entries that are no action {extra}")
    return {a.value: tool for a, tool in table.items() if tool is not None}


#: ``next_steps`` actions named by records (``{action, args}``) -> the tool that performs them.
ACTION_TOOLS = action_tools(Action, TOOL_OF_ACTION)
#: actions with no tool (nothing to call)
NO_TOOL = frozenset(a.value for a, tool in TOOL_OF_ACTION.items() if tool is None)


def map_steps(steps: Any) -> list[dict[str, Any]]:
    """Next steps as tool calls: records' ``{action, args}`` mapped through ACTION_TOOLS (keeping only the
    arguments the tool takes: a CLI-only flag such as ``follow`` is dropped); ours pass through."""
    tools = by_name()
    out = []
    for s in steps or []:
        if not isinstance(s, dict):
            continue
        if "tool" in s:
            out.append(s)
        elif _forced(s):
            continue
        elif s.get("action") in ACTION_TOOLS:
            s = _toolable(s)
            tool = ACTION_TOOLS[s["action"]]
            fields = tools[tool].input.model_fields if tool in tools else {}
            out.append(step(tool, **{k: v for k, v in (s.get("args") or {}).items() if k in fields}))
    return out


def _forced(s: dict[str, Any]) -> bool:
    """A forced release (someone else's lease) stays a person's decision: no tool call stands for it."""
    return s.get("action") == "release" and bool((s.get("args") or {}).get("force"))


def _toolable(s: dict[str, Any]) -> dict[str, Any]:
    """``clusters_start`` starts a local head on loopback only: a step that starts another kind (or
    binds another host) becomes a status call."""
    args = s.get("args") or {}
    if s.get("action") == "start_cluster" and (args.get("kind") not in (None, "local") or args.get("host")):
        return {"action": "cluster_status", "args": {"name": args.get("name", "default")}}
    return s
