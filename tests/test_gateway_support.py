"""Helpers shared by the gateway tests (no tests here): a real ``merlin serve``
process on a free loopback port, and a scripted agent that drives one example
target from plan to ``completed`` through MCP tools only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES, REPO

pytest.importorskip("mcp", reason="the gateway extra is not installed")

CAPABILITY = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
OVERLAY = EXAMPLES / "x86_cpu_baseline" / "overlays" / "host_local.yaml"


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    state_root: Path
    out_dir: Path
    token: str
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def server_env(state_root: Path, out_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MERLIN_STATE_ROOT": str(state_root), "MERLIN_TARGETGEN_OUT": str(out_dir), "NO_COLOR": "1"})
    return env


def start_server(tmp: Path, *extra: str, ready_timeout: float = 60.0, env: dict[str, str] | None = None) -> Server:
    """``python -m merlin serve`` on a free port; returns once /healthz answers with the token (``env``: more environment)."""
    import httpx2

    from merlin.clusters.net import free_ports

    state_root, out_dir = tmp / "state", tmp / "targets"
    state_root.mkdir(parents=True, exist_ok=True)
    port = free_ports(1)[0]
    err = tmp / f"serve-{port}.stderr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "merlin", "serve", "--port", str(port), "--state-root", str(state_root), *extra],
        stdout=subprocess.DEVNULL, stderr=open(err, "w"), env={**server_env(state_root, out_dir), **(env or {})}, cwd=REPO,
    )
    token_file = state_root / "gateway" / "token"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"merlin serve exited {proc.returncode}: {err.read_text()}")
        if token_file.is_file():
            token = token_file.read_text().strip()
            try:
                r = httpx2.get(f"http://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {token}"}, timeout=2)
                if r.status_code == 200:
                    return Server(proc, port, state_root, out_dir, token, err)
            except httpx2.HTTPError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"merlin serve did not answer within {ready_timeout}s: {err.read_text()}")


def response_text(task_id: str) -> str:
    return f"Proposal for {task_id}: keep the change inside the write scope.\n\nFiles: none changed by this test.\n"


async def call(client: Any, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, (tool, result.structured_content)
    data = result.structured_content
    assert isinstance(data, dict) and isinstance(data["next_steps"], list), data
    # the text content is the same JSON, for clients that read text only
    assert json.loads(result.content[0].text) == data
    return data


async def drive_agent(client: Any, out_dir: Path, max_steps: int = 60) -> dict[str, Any]:
    """Plan, execute, answer the recommended option, read the prompt packet and respond, until completed.

    Only tool calls named in ``next_steps`` are made after the first execute, so
    this also checks that next_steps alone can carry an agent through."""
    names = {t.name for t in (await client.list_tools()).tools}
    assert {"targetgen_plan", "targetgen_execute", "targetgen_answer", "review_prompt", "review_respond", "review_questions"} <= names
    assert "clusters_start" not in names  # cluster control is off unless the server allows it
    spec = {"capability": str(CAPABILITY), "overlay": str(OVERLAY)}
    assert (await call(client, "targetgen_validate", spec))["valid"] is True
    plan = await call(client, "targetgen_plan", {**spec, "out_dir": str(out_dir)})
    assert plan["target"] == "x86_cpu_baseline" and plan["next_steps"][0]["tool"] == "targetgen_explain"
    result = await call(client, "targetgen_execute", {**spec, "out_dir": str(out_dir)})
    target_dir = result["target_dir"]
    seen: list[str] = []
    for _ in range(max_steps):
        outcome = result["outcome"]
        seen.append(outcome)
        assert result["run"]["status"] == "succeeded" and result["run"]["outcome"] == outcome, result["run"]
        if outcome == "completed":
            break
        assert outcome in ("awaiting_operator", "awaiting_response"), result
        steps = result["next_steps"]
        if outcome == "awaiting_operator":
            q = result["open_question"]
            listed = await call(client, "review_questions", {"target_dir": target_dir})
            mine = next(x for x in listed["questions"] if x["id"] == q["id"])
            assert mine["recommended_option"] in [o["id"] for o in mine["options"]]
            assert steps[0] == {"tool": "targetgen_answer", "args": {"target_dir": target_dir, "question_id": q["id"], "choice": mine["recommended_option"]}}
            answered = await call(client, steps[0]["tool"], steps[0]["args"])
            assert answered["recorded"] is True
        else:
            assert [s["tool"] for s in steps] == ["review_prompt", "review_respond", "targetgen_execute"]
            packet = await call(client, "review_prompt", steps[0]["args"])
            assert packet["prompt"].strip() and packet["response_file"] == result["awaiting_response"]["response_file"]
            written = await call(client, "review_respond", {**steps[1]["args"], "text": response_text(packet["task_id"])})
            assert Path(written["response_file"]).read_text() == response_text(packet["task_id"])
        nxt = next(s for s in steps if s["tool"] == "targetgen_execute")
        result = await call(client, "targetgen_execute", nxt["args"])
    assert result["outcome"] == "completed", seen
    assert "awaiting_operator" in seen and "awaiting_response" in seen, seen
    status = await call(client, "targetgen_status", {"target_dir": target_dir})
    assert status["outcome"] == "completed" and not status["open_questions"]
    assert all(t["state"] == "completed" for t in status["tasks"])
    return result
