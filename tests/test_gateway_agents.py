"""The gateway for agents at full speed, over a real `merlin mcp` stdio server and the official SDK's
client: every tool declares an outputSchema and its structured results conform; argument errors are
tool errors naming the argument; progress arrives during targetgen_execute; a cancelled runs_wait
leaves the run running; an elicitation-capable client answers a TargetGen question in-line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from conftest import REPO
from merlin.gateway.ops import OPERATIONS, Gateway
from test_gateway_support import CAPABILITY, OVERLAY, drive_agent, server_env


def stdio(tmp: Path) -> StdioServerParameters:
    state, out = tmp / "state", tmp / "out"
    return StdioServerParameters(command=sys.executable, args=["-m", "merlin", "mcp", "--state-root", str(state)], env=server_env(state, out), cwd=str(REPO))


class Recorder:
    """The SDK client, remembering every successful tool result (to validate them all afterwards)."""

    def __init__(self, client: Client) -> None:
        self.client, self.results = client, []  # type: ignore[var-annotated]

    async def call_tool(self, name: str, args: dict[str, Any] | None = None, *a: Any, **kw: Any) -> Any:
        result = await self.client.call_tool(name, args, *a, **kw)
        if not result.is_error:
            self.results.append((name, result.structured_content))
        return result

    async def list_tools(self) -> Any:
        return await self.client.list_tools()


async def ok(rec: Recorder, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await rec.call_tool(tool, args)
    assert not result.is_error, (tool, result.structured_content)
    return result.structured_content


@pytest.mark.slow  # several seconds: left out of --quick
def test_every_tool_declares_an_output_schema_and_every_result_conforms(tmp_path: Path) -> None:
    Gateway(tmp_path / "state").cp.leases.define([{"id": "fpga0", "pool": "fpga"}], source="test")
    offered = {op.name for op in OPERATIONS if op.requires is None}

    async def main() -> dict[str, Any]:
        async with Client(stdio(tmp_path), read_timeout_seconds=300) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            rec = Recorder(client)
            final = await drive_agent(rec, tmp_path / "out")
            tdir, rid = final["target_dir"], final["run"]["run_id"]
            await ok(rec, "targetgen_explain", {"capability": str(CAPABILITY), "overlay": str(OVERLAY)})
            await ok(rec, "targetgen_orchestrate", {"capability": str(CAPABILITY), "overlay": str(OVERLAY), "out_dir": str(tmp_path / "out")})
            nothing = await rec.call_tool("targetgen_retry", {"target_dir": tdir})  # every task completed: nothing to retry
            assert nothing.is_error and nothing.structured_content["code"] == "bad_input"
            for tool, args in [("runs_list", {}), ("runs_list", {"full": True}), ("runs_status", {"run_id": rid}), ("runs_status", {"run_id": rid, "refresh": False}),
                               ("runs_why", {"run_id": rid}), ("runs_logs", {"run_id": rid}), ("runs_wait", {"run_id": rid}), ("artifacts_list", {"run_id": rid}),
                               ("artifacts_fetch", {"run_id": rid, "name": "execution_state.json"}), ("clusters_list", {})]:
                await ok(rec, tool, args)
            sleeper = await ok(rec, "runs_submit", {"command": ["sleep", "30"], "target": "t", "workflow": "w"})
            await ok(rec, "runs_cancel", {"run_id": sleeper["run_id"]})
            await ok(rec, "runs_retry", {"run_id": sleeper["run_id"]})
            await ok(rec, "runs_cancel", {"run_id": sleeper["run_id"]})
            lease = await ok(rec, "leases_reserve", {"bundles": ["fpga:1"]})
            waiting = await ok(rec, "leases_reserve", {"bundles": ["fpga:1"]})
            for tool, args in [("leases_list", {}), ("leases_queue", {}), ("leases_why", {"lease_id": waiting["lease_id"]}),
                               ("leases_renew", {"lease_id": lease["lease_id"]}), ("leases_release", {"lease_id": lease["lease_id"]})]:
                await ok(rec, tool, args)
            await ok(rec, "sweeps_submit", {"name": "agents", "command": ["false"], "inputs": ["a", "b"], "parallel": 2})
            await ok(rec, "sweeps_status", {"name": "agents", "wait": 120.0})  # both items fail: a failed sweep
            for tool in ("sweeps_summary", "sweeps_retry", "sweeps_cancel"):
                await ok(rec, tool, {"name": "agents"})
            await ok(rec, "sweeps_list", {})
            status = await rec.call_tool("clusters_status", {"name": "default"})  # no cluster: a result or a not-found error
            called = {name for name, _ in rec.results}
            assert called >= offered - {"clusters_status", "targetgen_retry"}, offered - called
            assert "clusters_status" in called or status.is_error
            return {"tools": tools, "results": rec.results}

    got = anyio.run(main)
    tools, results = got["tools"], got["results"]
    for name in offered:
        schema = tools[name].output_schema
        assert schema and schema["type"] == "object" and "next_steps" in schema["required"], name
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema == next(op for op in OPERATIONS if op.name == name).output_schema(inline=True)  # the REST response's model
        assert "$ref" not in json.dumps(schema)
    assert len(results) > 30
    for name, data in results:
        jsonschema.validate(data, tools[name].output_schema)


def test_argument_errors_are_tool_errors_naming_the_argument(tmp_path: Path) -> None:
    async def main() -> None:
        async with Client(stdio(tmp_path), read_timeout_seconds=120) as client:
            for tool, args, arg in [("runs_list", {"limit": "many"}, "limit"), ("runs_list", {"bogus": 1}, "bogus"), ("runs_status", {}, "run_id"),
                                    ("runs_logs", {"run_id": "xyz", "cursor": -1}, "cursor"), ("targetgen_execute", {"timeout": 0}, "timeout"),
                                    ("runs_submit", {"command": [], "target": "t", "workflow": "w"}, "command")]:
                r = await client.call_tool(tool, args)  # a protocol error would raise here
                assert r.is_error, (tool, args)
                assert r.structured_content["code"] == "bad_input" and arg in r.structured_content["error"], r.structured_content

    anyio.run(main)


def test_progress_arrives_during_targetgen_execute(tmp_path: Path) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async def main() -> dict[str, Any]:
        async with Client(stdio(tmp_path), read_timeout_seconds=300) as client:
            spec = {"capability": str(CAPABILITY), "overlay": str(OVERLAY), "out_dir": str(tmp_path / "out")}
            r = await client.call_tool("targetgen_execute", spec, progress_callback=on_progress)
            assert not r.is_error, r.structured_content
            return r.structured_content

    result = anyio.run(main)
    assert result["outcome"] == "awaiting_operator"
    assert seen, "no progress notification arrived"
    assert [p for p, _ in seen] == sorted({p for p, _ in seen})  # increasing
    assert all(m and result["run"]["run_id"] in m for _, m in seen), seen


@pytest.mark.slow  # several seconds: left out of --quick
def test_a_cancelled_runs_wait_stops_waiting_and_leaves_the_run_running(tmp_path: Path) -> None:
    async def main() -> None:
        async with Client(stdio(tmp_path), read_timeout_seconds=120) as client:
            run = (await client.call_tool("runs_submit", {"command": ["sleep", "60"], "target": "t", "workflow": "w"})).structured_content
            rid = run["run_id"]
            t0 = time.monotonic()
            with anyio.move_on_after(2) as scope:  # the SDK sends notifications/cancelled for the abandoned request
                await client.call_tool("runs_wait", {"run_id": rid, "timeout": 120})
            assert scope.cancelled_caught and time.monotonic() - t0 < 10
            await anyio.sleep(1.5)
            status = (await client.call_tool("runs_status", {"run_id": rid})).structured_content
            assert status["status"] == "running", status
            short = await client.call_tool("runs_wait", {"run_id": rid, "timeout": 0.5})
            assert short.structured_content["ended"] is False and short.structured_content["status"] == "running"
            await client.call_tool("runs_cancel", {"run_id": rid})

    anyio.run(main)


@pytest.mark.slow  # several seconds: left out of --quick
def test_an_elicitation_capable_client_answers_the_question_in_line(tmp_path: Path) -> None:
    asked: list[dict[str, Any]] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        schema = params.requested_schema  # type: ignore[union-attr]
        asked.append({"message": params.message, "schema": schema})
        choice = schema["properties"]["choice"]
        return types.ElicitResult(action="accept", content={"choice": choice["default"], "note": "answered in-line"})

    async def main() -> dict[str, Any]:
        async with Client(stdio(tmp_path), read_timeout_seconds=300, elicitation_callback=answer, mode="legacy") as client:
            spec = {"capability": str(CAPABILITY), "overlay": str(OVERLAY), "out_dir": str(tmp_path / "out")}
            r = await client.call_tool("targetgen_execute", spec)
            assert not r.is_error, r.structured_content
            return r.structured_content

    result = anyio.run(main)
    assert asked, "the question was not asked"
    first = asked[0]["schema"]["properties"]["choice"]
    assert {o["const"] for o in first["oneOf"]} >= {"continue_skip_validation"} and all(o["title"] for o in first["oneOf"])
    assert first["default"] == "continue_skip_validation"
    assert result["outcome"] != "awaiting_operator" or result["open_question"]["id"] not in asked[0]["message"]
    answers = [json.loads(x) for x in (Path(result["target_dir"]) / "answers.jsonl").read_text().splitlines()]
    assert answers[0]["choice"] == "continue_skip_validation" and answers[0]["question_id"] in asked[0]["message"]
    assert answers[0].get("note") == "answered in-line"
    state = json.loads((Path(result["target_dir"]) / "execution_state.json").read_text())
    assert answers[0]["question_id"] in json.dumps(state)


@pytest.mark.slow  # several seconds: left out of --quick
def test_without_elicitation_or_on_decline_the_result_is_awaiting_operator(tmp_path: Path) -> None:
    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async def main() -> None:
        spec = {"capability": str(CAPABILITY), "overlay": str(OVERLAY), "out_dir": str(tmp_path / "out")}
        async with Client(stdio(tmp_path), read_timeout_seconds=300, elicitation_callback=decline, mode="legacy") as client:
            r = await client.call_tool("targetgen_execute", spec)
            assert r.structured_content["outcome"] == "awaiting_operator"
        async with Client(stdio(tmp_path), read_timeout_seconds=300, mode="legacy") as client:
            r = await client.call_tool("targetgen_execute", {"target_dir": r.structured_content["target_dir"]})
            assert r.structured_content["outcome"] == "awaiting_operator" and r.structured_content["open_question"]

    anyio.run(main)


@pytest.mark.slow  # several seconds: left out of --quick
@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the 2025-era subscription this test is about
def test_runs_and_questions_are_resources_and_a_subscriber_hears_a_question_open(tmp_path: Path) -> None:
    updated: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async def until(uri: str, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            while uri not in updated:
                await anyio.sleep(0.1)
            return True
        return False

    async def main() -> None:
        async with Client(stdio(tmp_path), read_timeout_seconds=300, message_handler=on_message, mode="legacy") as client:
            listed = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
            assert listed == {"merlin://runs/{run_id}", "merlin://targets/{name}/questions"}
            questions = "merlin://targets/x86_cpu_baseline/questions"
            before = json.loads((await client.read_resource(questions)).contents[0].text)
            assert before["questions"] == []
            await client.session.subscribe_resource(questions)
            spec = {"capability": str(CAPABILITY), "overlay": str(OVERLAY), "out_dir": str(tmp_path / "out"), "wait": False}
            started = (await client.call_tool("targetgen_execute", spec)).structured_content
            assert await until(questions, 120), "no notifications/resources/updated for the question"
            after = json.loads((await client.read_resource(questions)).contents[0].text)
            assert [q["recommended_option"] for q in after["questions"]] == ["continue_skip_validation"]
            assert after["next_steps"][0]["tool"] == "targetgen_answer"
            run_uri = f"merlin://runs/{started['run']['run_id']}"
            record = json.loads((await client.read_resource(run_uri)).contents[0].text)
            assert record["run_id"] == started["run"]["run_id"] and record["status"] in ("running", "succeeded")  # the executor is ending
            assert run_uri in {r.uri for r in (await client.list_resources()).resources}
            sleeper = (await client.call_tool("runs_submit", {"command": ["sleep", "2"], "target": "t", "workflow": "w"})).structured_content
            mine = f"merlin://runs/{sleeper['run_id']}"
            await client.session.subscribe_resource(mine)
            status = "running"
            for _ in range(5):  # each notification is a change (a message, then the end)
                assert await until(mine, 60), f"no notifications/resources/updated while the run was {status}"
                updated.remove(mine)
                status = json.loads((await client.read_resource(mine)).contents[0].text)["status"]
                if status == "succeeded":
                    break
            assert status == "succeeded"

    anyio.run(main)
