"""The CLI's flags as gateway inputs, through the official MCP client: `strict` on the
TargetGen tools and `force` on clusters_stop,
each defined once in merlin.gateway.ops."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from conftest import EXAMPLES, REPO
from merlin.gateway.mcp_server import build_server
from merlin.gateway.ops import Gateway
from merlin.spec import load_pair
from merlin.spec.pairing import spec_warnings
from test_gateway_support import call, server_env

RVV = EXAMPLES / "rvv_generic_zvl256" / "capability.yaml"
OTHERS_OVERLAY = EXAMPLES / "gemmini_rocc_dev" / "overlays" / "firesim_u250.yaml"  # belongs to another target


def test_strict_turns_the_pair_warnings_into_a_spec_error_on_validate_plan_and_execute(tmp_path: Path) -> None:
    """Over a real `merlin mcp` stdio server: strict=false keeps the warnings, strict=true is exit 2 with them."""
    warnings = spec_warnings(*load_pair(RVV, OTHERS_OVERLAY))
    assert len(warnings) >= 2
    state, out = tmp_path / "state", tmp_path / "out"
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "merlin", "mcp", "--state-root", str(state)], env=server_env(state, out), cwd=str(REPO)
    )
    pair = {"capability": str(RVV), "overlay": str(OTHERS_OVERLAY)}

    async def main() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            for name in ("targetgen_validate", "targetgen_plan", "targetgen_explain", "targetgen_execute"):
                prop = tools[name].input_schema["properties"]["strict"]
                assert prop["type"] == "boolean" and prop["default"] is False and "warnings" in prop["description"] and "--" not in prop["description"], name
            assert (await call(client, "targetgen_validate", pair))["warnings"] == warnings  # default: warnings only
            for name, extra in (("targetgen_validate", {}), ("targetgen_plan", {"out_dir": str(out)}), ("targetgen_execute", {"out_dir": str(out)})):
                res = await client.call_tool(name, {**pair, **extra, "strict": True})
                doc = res.structured_content
                assert res.is_error and doc["exit_code"] == 2 and doc["code"] == "spec_error", (name, doc)
                assert doc["errors"] == [*warnings, f"`strict`: {len(warnings)} warnings treated as errors"], name
                assert doc["argument"] == "strict", name
                assert "Traceback" not in res.content[0].text
            # nothing was planned, orchestrated or recorded by the refused calls
            assert not (out / "rvv_generic_zvl256").exists()
            runs = await call(client, "runs_list", {})
            assert runs["total"] == 0
            # strict goes with a capability: a target_dir was checked when it was orchestrated
            bad = await client.call_tool("targetgen_execute", {"target_dir": str(out), "strict": True})
            assert bad.is_error and bad.structured_content["code"] == "bad_input" and "strict goes with capability" in bad.structured_content["error"]
            # a pair without warnings passes strict
            own = EXAMPLES / "gemmini_rocc_dev" / "capability.yaml"
            ok = await call(client, "targetgen_validate", {"capability": str(own), "overlay": str(OTHERS_OVERLAY), "strict": True})
            assert ok["valid"] is True and ok["warnings"] == []

    anyio.run(main)


@pytest.mark.ray_own_head
@pytest.mark.slow
def test_clusters_stop_is_refused_with_active_runs_until_force(cluster_root: Path) -> None:
    """A real local cluster with a run on it: clusters_stop is blocked (exit 3) naming the run and the
    force=true call; with force=true it stops and the run is recorded cancelled by the stop."""
    from merlin.clusters.net import free_ports
    from merlin.ledger import RunStatus

    gw = Gateway(cluster_root, allow_cluster_control=True)
    port, dash = free_ports(2)
    rec, started = gw.cp.start_local_cluster("gwstop", port=port, dashboard_port=dash, num_cpus=1, object_store_memory=100 * 1024 * 1024)
    assert started and rec.status == "active"
    run = gw.cp.submit([sys.executable, "-c", "print('gw-run-started', flush=True); import time; time.sleep(300)"],
                       target="demo", workflow="gwstop", engine="ray", cluster="gwstop")
    deadline = time.monotonic() + 120
    while gw.cp.status(run.run_id).status != RunStatus.RUNNING:
        assert time.monotonic() < deadline, gw.cp.get(run.run_id).message
        time.sleep(0.5)

    async def main() -> None:
        async with Client(build_server(gw)) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            force = tools["clusters_stop"].input_schema["properties"]["force"]
            assert force["type"] == "boolean" and force["default"] is False and "runs are active" in force["description"] and "--" not in force["description"]
            refused = await client.call_tool("clusters_stop", {"name": "gwstop"})
            doc = refused.structured_content
            assert refused.is_error and doc["exit_code"] == 3 and run.run_id in doc["error"] and "force=true" in doc["error"]
            # the run to look at is a next step; the forced stop, which would end it, is only said
            assert doc["next_steps"] == [{"tool": "runs_status", "args": {"run_id": run.run_id}}]
            assert gw.cp.cluster_status("gwstop").state == "active" and gw.cp.status(run.run_id).status == RunStatus.RUNNING
            stopped = await call(client, "clusters_stop", {"name": "gwstop", "force": True})
            assert stopped["status"] == "stopped"

    anyio.run(main)
    after = gw.cp.get(run.run_id)
    assert after.status == RunStatus.CANCELLED and "cluster stopped" in after.message
    assert "gw-run-started" in gw.cp.logs(run.run_id)  # its logs were kept in the ledger
    import json

    audit = [json.loads(x) for x in (cluster_root / "gateway" / "audit.jsonl").read_text().splitlines()]
    assert [a["result"].split(":")[0] for a in audit if a["operation"] == "clusters_stop"] == ["error 3", "ok"]
