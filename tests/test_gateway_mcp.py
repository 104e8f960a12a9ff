"""A scripted agent drives x86_cpu_baseline (host_local) from plan to completed
through MCP tools only: in-memory, over a real `merlin mcp` stdio subprocess,
and over streamable HTTP against a real `merlin serve`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from conftest import REPO
from merlin.gateway.mcp_server import build_server
from merlin.gateway.ops import OPERATIONS, Gateway
from test_gateway_support import CAPABILITY, call, drive_agent, server_env, start_server


def test_every_tool_has_a_closed_typed_schema_and_a_description() -> None:
    async def main() -> None:
        async with Client(build_server(Gateway())) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {op.name for op in OPERATIONS if op.requires is None}
        for op in OPERATIONS:
            if op.requires:
                continue
            t = tools[op.name]
            assert t.description and t.input_schema["type"] == "object"
            assert t.input_schema.get("additionalProperties") is False, op.name
            assert t.annotations.read_only_hint is (not op.mutating)

    anyio.run(main)


@pytest.mark.slow  # several seconds: left out of --quick
def test_in_memory_agent_reaches_completed(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "state")

    async def main() -> None:
        async with Client(build_server(gw)) as client:
            final = await drive_agent(client, tmp_path / "out")
            runs = await call(client, "runs_list", {})
            # every execute is a recorded run; the last one is the completed one
            assert runs["total"] >= 3 and runs["runs"][0]["run_id"] == final["run"]["run_id"]
            logs = await call(client, "runs_logs", {"run_id": final["run"]["run_id"], "max_chars": 10})
            assert logs["cursor"] == 0 and logs["next_cursor"] == len(logs["text"]) <= 10
            rest = await call(client, "runs_logs", {"run_id": final["run"]["run_id"], "cursor": logs["next_cursor"]})
            assert rest["complete"] is True and rest["next_steps"] == []
            arts = await call(client, "artifacts_list", {"run_id": final["run"]["run_id"]})
            name = next(f["name"] for f in arts["files"] if f["name"] == "execution_state.json")
            got = await call(client, "artifacts_fetch", {"run_id": final["run"]["run_id"], "name": name})
            assert got["encoding"] == "utf-8" and json.loads(got["content"])["tasks"]
            small = await call(client, "artifacts_fetch", {"run_id": final["run"]["run_id"], "name": name, "max_bytes": 8})
            assert small["content"] is None and Path(small["path"]).is_file()

    anyio.run(main)
    audit = [json.loads(line) for line in (tmp_path / "state" / "gateway" / "audit.jsonl").read_text().splitlines()]
    assert {a["operation"] for a in audit} >= {"targetgen_plan", "targetgen_execute", "targetgen_answer", "review_respond"}
    assert all(a["result"] == "ok" and a["client"].startswith("mcp-stdio") for a in audit)


def test_errors_are_tool_errors_with_merlins_code_never_a_traceback(tmp_path: Path) -> None:
    async def main() -> None:
        async with Client(build_server(Gateway(tmp_path / "state"))) as client:
            missing = await client.call_tool("runs_status", {"run_id": "no-such-run-20260101-000000-000000"})
            assert missing.is_error and missing.structured_content["exit_code"] == 4
            assert missing.structured_content["code"] == "not_found"
            bad = await client.call_tool("targetgen_validate", {"capability": str(tmp_path / "nope.yaml")})
            assert bad.is_error and bad.structured_content["exit_code"] == 2
            extra = await client.call_tool("runs_list", {"bogus": 1})
            assert extra.is_error and "bogus" in extra.structured_content["error"]
            for r in (missing, bad, extra):
                assert "Traceback" not in r.content[0].text
            outside = await client.call_tool("targetgen_status", {"target_dir": str(tmp_path)})
            assert outside.is_error and outside.structured_content["code"] == "bad_input"

    anyio.run(main)


def test_cluster_control_only_when_allowed() -> None:
    async def main() -> None:
        async with Client(build_server(Gateway(allow_cluster_control=True))) as client:
            names = {t.name for t in (await client.list_tools()).tools}
        assert {"clusters_start", "clusters_stop", "clusters_list", "clusters_status"} <= names

    anyio.run(main)


@pytest.mark.slow
def test_stdio_subprocess_agent_reaches_completed(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out"
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "merlin", "mcp", "--state-root", str(state)], env=server_env(state, out), cwd=str(REPO)
    )

    async def main() -> None:
        async with Client(params, read_timeout_seconds=300) as client:
            await drive_agent(client, out)

    anyio.run(main)
    assert (out / "x86_cpu_baseline" / "execution_state.json").is_file()
    assert CAPABILITY.is_file()


@pytest.mark.slow
def test_streamable_http_agent_reaches_completed(tmp_path: Path) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    server = start_server(tmp_path)
    try:

        async def main() -> None:
            async with httpx2.AsyncClient(headers=server.headers(), timeout=300) as http:
                async with Client(streamable_http_client(f"{server.url}/mcp", http_client=http), read_timeout_seconds=300) as client:
                    await drive_agent(client, server.out_dir)

        anyio.run(main)
        audit = [json.loads(x) for x in (server.state_root / "gateway" / "audit.jsonl").read_text().splitlines()]
        assert audit and all(a["client"].startswith("mcp-http 127.0.0.1") for a in audit)
    finally:
        server.stop()


def test_lease_tools_reserve_queue_why_renew_release(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "state")
    gw.cp.leases.define([{"id": "fpga0", "pool": "fpga"}, {"id": "fpga1", "pool": "fpga"}], source="test")

    async def main() -> None:
        async with Client(build_server(gw)) as client:
            first = await call(client, "leases_reserve", {"bundles": ["fpga:2"], "ttl": "10m"})
            assert first["state"] == "granted" and sorted(first["items"]) == ["fpga0", "fpga1"]
            assert [s["tool"] for s in first["next_steps"]] == ["leases_renew", "leases_release"]
            second = await call(client, "leases_reserve", {"bundles": ["fpga:1"]})
            assert second["state"] == "waiting" and second["next_steps"][0] == {"tool": "leases_why", "args": {"lease_id": second["lease_id"]}}
            queue = await call(client, "leases_queue", {})
            assert [q["lease_id"] for q in queue["queue"]] == [second["lease_id"]] and queue["queue"][0]["position"] == 1
            why = await call(client, "leases_why", {"lease_id": second["lease_id"]})
            assert why["conditions"] and all(c["code"] and c["next_steps"] and "tool" in c["next_steps"][0] for c in why["conditions"])
            renewed = await call(client, "leases_renew", {"lease_id": first["lease_id"], "ttl": "20m"})
            assert renewed["state"] == "granted" and renewed["ttl_seconds"] == 1200
            released = await call(client, "leases_release", {"lease_id": first["lease_id"]})
            assert released["state"] == "released"
            listed = await call(client, "leases_list", {})
            holders = {i["id"]: (i["holder"] or {}).get("lease_id") for i in listed["items"]}
            assert second["lease_id"] in holders.values() and not listed["queue"]
            gone = await client.call_tool("leases_renew", {"lease_id": first["lease_id"]})
            assert gone.is_error and gone.structured_content["exit_code"] == 3

    anyio.run(main)
    ops = [json.loads(x)["operation"] for x in (tmp_path / "state" / "gateway" / "audit.jsonl").read_text().splitlines()]
    assert ops == ["leases_reserve", "leases_reserve", "leases_renew", "leases_release", "leases_renew"]


def test_runs_why_names_the_holder_with_evidence_and_tool_calls(tmp_path: Path) -> None:
    """runs_why is `merlin ray jobs why` as a tool: the conditions with code, evidence and observed time,
    each with next steps that are calls of tools this server offers."""
    from merlin.gateway.ops import by_name

    gw = Gateway(tmp_path / "state")
    gw.cp.leases.define([{"id": "board0", "pool": "vcu118"}], source="test")

    async def main() -> None:
        async with Client(build_server(gw)) as client:
            args = {"command": ["sleep", "30"], "target": "why", "workflow": "smoke", "target_dir": str(tmp_path / "t")}
            first = await call(client, "runs_submit", args)
            second = await call(client, "runs_submit", {**args, "target_dir": str(tmp_path / "t2")})
            holder = await call(client, "leases_reserve", {"bundles": ["vcu118:1"], "run_id": first["run_id"]})
            waiting = await call(client, "leases_reserve", {"bundles": ["vcu118:1"], "run_id": second["run_id"]})
            assert holder["state"] == "granted" and waiting["state"] == "waiting"
            why = await call(client, "runs_why", {"run_id": second["run_id"]})
            assert why["run_id"] == second["run_id"] and why["held"] is True
            c = why["conditions"][0]
            assert c["layer"] == "leases" and c["code"] == "lease_item_held" and c["observed_at"]
            ev = c["evidence"]
            assert ev["item"] == "board0" and ev["holder_lease"] == holder["lease_id"] and ev["run_id"] == first["run_id"] and ev["until"] == holder["expires_at"]
            assert c["next_steps"][0] == {"tool": "runs_why", "args": {"run_id": first["run_id"]}}  # ask about the holder's run
            offered = by_name()
            for s in why["next_steps"] + [s for c in why["conditions"] for s in c["next_steps"]]:
                offered[s["tool"]].input.model_validate(s["args"])  # every step is a valid call of a real tool
            # the same conditions as the CLI's `merlin ray jobs why --json`
            cli = gw.cp.why(second["run_id"])
            assert [x["code"] for x in cli] == [x["code"] for x in why["conditions"]]
            # the holder's run waits for nothing: no condition, one next step (look at it)
            free = await call(client, "runs_why", {"run_id": first["run_id"]})
            assert free["held"] is False and free["conditions"] == [] and free["next_steps"] == [{"tool": "runs_status", "args": {"run_id": first["run_id"]}}]
            await call(client, "leases_release", {"lease_id": holder["lease_id"]})
            after = await call(client, "runs_why", {"run_id": second["run_id"]})
            assert "lease_item_held" not in [x["code"] for x in after["conditions"]]
            for rid in (first["run_id"], second["run_id"]):
                await call(client, "runs_cancel", {"run_id": rid})
            missing = await client.call_tool("runs_why", {"run_id": "no-such-run"})
            assert missing.is_error and missing.structured_content["code"] == "not_found"

    anyio.run(main)


def test_runs_list_summaries_follow_record_changes(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "state")

    async def main() -> None:
        async with Client(build_server(gw)) as client:
            sub = await call(client, "runs_submit", {"command": ["sleep", "30"], "target": "lister", "workflow": "smoke", "target_dir": str(tmp_path / "t")})
            assert sub["status"] in ("pending", "running") and sub["next_steps"]
            assert all(s["args"].get("run_id") == sub["run_id"] for s in sub["next_steps"] if s["tool"].startswith("runs_"))
            listed = await call(client, "runs_list", {})
            assert listed["runs"][0]["run_id"] == sub["run_id"] and listed["runs"][0]["status"] in ("pending", "running")
            assert set(listed["runs"][0]) >= {"run_id", "status", "outcome", "message", "created_at", "attempts"}
            cancelled = await call(client, "runs_cancel", {"run_id": sub["run_id"]})
            assert cancelled["status"] == "cancelled"
            again = await call(client, "runs_list", {"status": ["cancelled"]})
            assert [r["run_id"] for r in again["runs"]] == [sub["run_id"]] and again["runs"][0]["status"] == "cancelled"
            full = await call(client, "runs_list", {"full": True})
            assert full["runs"][0]["attempts"][0]["number"] == 1
            bad = await client.call_tool("runs_list", {"status": ["sideways"]})
            assert bad.is_error and bad.structured_content["exit_code"] == 2

    anyio.run(main)


def test_record_next_steps_map_to_tools_through_one_table() -> None:
    from merlin.gateway.ops import ACTION_TOOLS, _map_steps, by_name

    # every mapped tool exists (or is a cluster-control tool offered only when allowed)
    assert set(ACTION_TOOLS.values()) <= set(by_name())
    steps = [{"action": "retry", "args": {"run_id": "r1"}}, {"action": "logs", "args": {"run_id": "r1"}}, {"action": "unknown"}, "junk"]
    assert _map_steps(steps) == [{"tool": "runs_retry", "args": {"run_id": "r1"}}, {"tool": "runs_logs", "args": {"run_id": "r1"}}]
    assert _map_steps([{"tool": "runs_status", "args": {"run_id": "r1"}}]) == [{"tool": "runs_status", "args": {"run_id": "r1"}}]
    # arguments only the CLI has are dropped, so the call validates
    assert _map_steps([{"action": "logs", "args": {"run_id": "r1", "follow": True}}]) == [{"tool": "runs_logs", "args": {"run_id": "r1"}}]
    from merlin.gateway.ops import NO_TOOL
    from merlin.nextsteps import Action

    assert {a.value for a in Action} - set(ACTION_TOOLS) == NO_TOOL  # the rest have no tool (nothing to call)
    # a forced release stays a person's decision; clusters_start starts a local head only, so another kind is looked at
    assert _map_steps([{"action": "release", "args": {"lease_id": "l1", "force": True}}, {"action": "release", "args": {"lease_id": "l2"}}]) == [
        {"tool": "leases_release", "args": {"lease_id": "l2"}}]  # fmt: skip
    slurm = {"action": "start_cluster", "args": {"name": "lab", "kind": "slurm", "options": {"nodes": 2}}}
    assert _map_steps([slurm, {"action": "start_cluster", "args": {"name": "x", "port": 1, "resources": {"fpga": 1}}}]) == [
        {"tool": "clusters_status", "args": {"name": "lab"}}, {"tool": "clusters_start", "args": {"name": "x", "port": 1, "resources": {"fpga": 1}}}]  # fmt: skip


def test_a_waiting_execute_holds_no_worker_thread(tmp_path: Path) -> None:
    """execute(wait=true) sleeps on the event loop between quick polls: while it waits,
    the worker threads are free for every other request."""
    from test_gateway_support import OVERLAY

    gw = Gateway(tmp_path / "state")
    samples: list[int] = []

    async def main() -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        done = anyio.Event()

        async def execute() -> None:
            result = await gw.acall("targetgen_execute", {"capability": str(CAPABILITY), "overlay": str(OVERLAY), "out_dir": str(tmp_path / "out")})
            assert result["outcome"] == "awaiting_operator" and result["run"]["status"] == "succeeded"
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            while not done.is_set():
                await anyio.sleep(0.02)
                samples.append(limiter.borrowed_tokens)

    anyio.run(main)
    assert len(samples) > 10 and samples.count(0) > len(samples) // 2, samples
