"""The gateway's sweeps tools (docs/sweeps.md) over real local runs: submit, status with a wait and its
progress, summary, retry, cancel; bad input refused by the tool's schema."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from merlin.errors import MerlinError
from merlin.gateway.ops import Gateway

CODE = (
    "import json,os,sys,time,pathlib; i=int(os.environ['MERLIN_SWEEP_INDEX']); time.sleep(0.1); d=pathlib.Path(sys.argv[1]);"
    "m=d/f'tried-{i}'; first=not m.exists(); m.write_text('x');"
    "json.dump({'twice': 2*i}, open(os.path.join(os.environ['MERLIN_RUN_DIR'],'result.json'),'w')); sys.exit(1 if first and i == 2 else 0)"
)


def test_sweeps_tools_submit_wait_with_progress_summary_retry(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "state")
    v = gw.call("sweeps_submit", {"name": "gw", "command": [sys.executable, "-c", CODE, str(tmp_path)], "inputs": ["a", "b", "c", "d"], "parallel": 2})
    assert v["total"] == 4 and v["next_steps"][0]["tool"] == "sweeps_status"
    heard: list[str] = []

    async def progress(_n: float, message: str) -> None:
        heard.append(message)

    done = anyio.run(lambda: gw.acall("sweeps_status", {"name": "gw", "wait": 120.0}, progress=progress))
    assert done["state"] == "failed" and done["counts"]["failed"] == 1 and done["failures"][0]["index"] == 2
    assert heard and all(m.startswith("sweep gw:") for m in heard)
    s = gw.call("sweeps_summary", {"name": "gw"})
    assert s["ok"] is False and [r["result"].get("twice") for r in s["rows"]] == [0, 2, 4, 6]
    assert s["next_steps"] == [{"tool": "sweeps_retry", "args": {"name": "gw"}}]
    gw.call("sweeps_retry", {"name": "gw"})
    again = gw.call("sweeps_status", {"name": "gw", "wait": 120.0})
    assert again["state"] == "succeeded" and gw.call("sweeps_summary", {"name": "gw"})["ok"] is True
    listed = gw.call("sweeps_list", {})["sweeps"]
    assert [(v["name"], v["state"], v["counts"]["succeeded"]) for v in listed] == [("gw", "succeeded", 4)]
    from merlin.gateway.page import tables

    html = tables(lambda name, args: gw.call(name, args))
    assert "<h2>Sweeps</h2>" in html and ">gw<" in html and ">4/4<" in html


def test_sweeps_tools_cancel_and_refuse_bad_input(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "state")
    gw.call("sweeps_submit", {"name": "long", "command": [sys.executable, "-c", "import time; time.sleep(30)"], "inputs": ["1", "2", "3"], "parallel": 1})
    v = gw.call("sweeps_cancel", {"name": "long"})
    assert v["counts"]["queued"] == 0
    assert gw.call("sweeps_status", {"name": "long", "wait": 60.0})["state"] == "cancelled"
    with pytest.raises(MerlinError):
        gw.call("sweeps_submit", {"name": "Bad Name", "command": ["true"], "inputs": ["1"]})
    with pytest.raises(MerlinError):
        gw.call("sweeps_submit", {"name": "long", "command": ["true"], "inputs": ["other"]})
