"""runs_list's summaries are kept between calls and forgotten exactly when the ledger's change
journal names their run (no stat per record); a replaced journal forgets them all."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from merlin.control.summaries import SUMMARY_FIELDS
from merlin.gateway.ops import Gateway


def test_summaries_follow_ledger_writes_and_journal_rotation(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "state")
    runs = [gw.cp.submit([sys.executable, "-c", "pass"], target=f"t{i}", workflow="sum", engine="local", wait=True, timeout=60) for i in range(3)]
    first = gw.call("runs_list", {"limit": 0})
    assert first["total"] == 3 and [r["run_id"] for r in first["runs"]] == [r.run_id for r in reversed(runs)]
    row = first["runs"][0]
    # the documented summary shape: flat, short values
    assert list(row) == [*SUMMARY_FIELDS, "cluster", "attempts"] and row["attempts"] == 1 and row["status"] == "succeeded"
    assert row["cluster"] is None or isinstance(row["cluster"], str)

    # a write through the ledger is seen at the next call (the journal names the run)
    target = runs[1].run_id
    gw.cp.ledger.update(target, lambda r: setattr(r, "message", "edited through the ledger"), cause="test")
    again = {r["run_id"]: r for r in gw.call("runs_list", {"limit": 0})["runs"]}
    assert again[target]["message"] == "edited through the ledger"
    assert again[runs[0].run_id] is {r["run_id"]: r for r in first["runs"]}[runs[0].run_id]  # the others were kept, not re-read

    # an edit by hand (no journal line) is not seen until the journal is replaced; then every summary is read again
    path = gw.cp.layout.record(runs[0].run_id)
    data = json.loads(path.read_text())
    data["message"] = "edited by hand"
    path.write_text(json.dumps(data))
    kept = {r["run_id"]: r for r in gw.call("runs_list", {"limit": 0})["runs"]}
    assert kept[runs[0].run_id]["message"] != "edited by hand"
    journal = tmp_path / "state" / "index" / "changed"
    os.replace(journal, journal.with_name("changed.old"))
    fresh = {r["run_id"]: r for r in gw.call("runs_list", {"limit": 0})["runs"]}
    assert fresh[runs[0].run_id]["message"] == "edited by hand"

    # status filter and limit come from the index, the summaries from the cache
    assert gw.call("runs_list", {"status": ["succeeded"], "limit": 1})["total"] == 3
    assert len(gw.call("runs_list", {"status": ["succeeded"], "limit": 1})["runs"]) == 1
    assert gw.call("runs_list", {"status": ["failed"]}) == {"runs": [], "total": 0, "next_steps": []}
    # full=true: whole records, as `merlin ray jobs list --json`
    full = gw.call("runs_list", {"full": True, "limit": 1})["runs"][0]
    assert full == json.loads(gw.cp.layout.record(full["run_id"]).read_text())


def test_jobs_list_default_view_is_lazy(tmp_path: Path) -> None:
    """ControlPlane.list_entries is the ledger's lazy listing: len from the index, a slice reads only
    its records (it had become a list, so a 50-row view read every record)."""
    gw = Gateway(tmp_path / "state")
    for i in range(3):
        gw.cp.submit([sys.executable, "-c", "pass"], target=f"t{i}", workflow="lazy", engine="local", wait=True, timeout=60)
    entries = gw.cp.list_entries()
    assert not isinstance(entries, list) and len(entries) == 3
    newest = entries[:1]
    assert len(newest) == 1 and newest[0][0]["target"] == "t2" and json.loads(newest[0][1]) == newest[0][0]


def test_targetgen_validate_plan_explain_return_the_pair_warnings(tmp_path: Path) -> None:
    """The issue's case through the gateway: another target's overlay gives the same located warnings as the CLI."""
    from conftest import EXAMPLES
    from merlin.spec import load_pair
    from merlin.spec.pairing import spec_warnings

    rvv = EXAMPLES / "rvv_generic_zvl256" / "capability.yaml"
    other = EXAMPLES / "gemmini_rocc_dev" / "overlays" / "firesim_u250.yaml"
    expected = spec_warnings(*load_pair(rvv, other))
    assert len(expected) >= 2 and all(": warning: " in w for w in expected)
    gw = Gateway(tmp_path / "state")
    args = {"capability": str(rvv), "overlay": str(other)}
    assert gw.call("targetgen_validate", args)["warnings"] == expected
    assert gw.call("targetgen_explain", args)["warnings"] == expected
    assert gw.call("targetgen_plan", {**args, "out_dir": str(tmp_path / "out")})["warnings"] == expected
    own = EXAMPLES / "gemmini_rocc_dev" / "capability.yaml"
    assert gw.call("targetgen_validate", {"capability": str(own), "overlay": str(other)})["warnings"] == []
