"""The gateway's tool table is derived from merlin.nextsteps.Action: every action has an entry
(a tool, or None for an action no tool performs) and every entry is an action."""

from __future__ import annotations

from enum import Enum

import pytest

pytest.importorskip("mcp", reason="the gateway extra is not installed")

from merlin.gateway.ops import by_name
from merlin.gateway.steps import ACTION_TOOLS, NO_TOOL, TOOL_OF_ACTION, action_tools
from merlin.nextsteps import ARGS, Action


def test_the_table_names_every_action_and_only_actions() -> None:
    values = {a.value for a in Action}
    assert set(TOOL_OF_ACTION) == set(Action)
    assert set(ACTION_TOOLS) <= values, f"tool keys that are no action: {set(ACTION_TOOLS) - values}"
    assert set(ACTION_TOOLS) | NO_TOOL == values and not set(ACTION_TOOLS) & NO_TOOL
    tools = by_name()
    for action, tool in ACTION_TOOLS.items():
        assert tool in tools, f"{action} -> {tool}: no such tool"
        # the tool takes every required argument of its action (so a mapped step is a valid call)
        required, _optional = ARGS[Action(action)]
        assert set(required) <= set(tools[tool].input.model_fields) or action == "targetgen_respond", (action, tool)


def test_a_new_action_without_a_tool_fails() -> None:
    grown = Enum("Grown", {**{a.name: a.value for a in Action}, "NEW_THING": "new_thing"}, type=str)  # type: ignore[misc]
    with pytest.raises(RuntimeError, match="new_thing"):
        action_tools([*Action, grown.NEW_THING], TOOL_OF_ACTION)
    less = {a: t for a, t in TOOL_OF_ACTION.items() if a is not Action.WHY}
    with pytest.raises(RuntimeError, match="without an entry \\['why'\\]"):
        action_tools(Action, less)


def test_a_tool_key_without_an_action_fails() -> None:
    for key in ("renew", "fetch", "prompt"):  # keys the hand-kept table had, naming no action
        with pytest.raises(RuntimeError, match=f"no action \\['{key}'\\]"):
            action_tools(Action, {**TOOL_OF_ACTION, key: "leases_renew"})
    assert action_tools(Action, TOOL_OF_ACTION) == ACTION_TOOLS
