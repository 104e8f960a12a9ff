"""One way through: the gateway reaches merlin through the ControlPlane facade only, the facade's
parts take a protocol defined below it (no cycle, even for the type checker), and the facade has
the TargetGen face and the reads the gateway needs."""

from __future__ import annotations

import ast
import json
import os
import tomllib
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO
from merlin.controlplane import ControlPlane
from merlin.errors import BadInput, MerlinError, NotFound

SRC = REPO / "src" / "merlin"
CAPABILITY = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
OVERLAY = EXAMPLES / "x86_cpu_baseline" / "overlays" / "host_local.yaml"

#: what a gateway module may import besides the gateway itself (pyproject's contract says why)
GATEWAY_MAY_IMPORT = {"merlin", "merlin.controlplane", "merlin.client", "merlin.errors", "merlin.nextsteps", "merlin.atomic"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every merlin module ``path`` imports, at any depth (functions, TYPE_CHECKING blocks included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(n, m) for n, m in out if m == "merlin" or m.startswith("merlin.")]


def test_the_gateway_imports_only_the_facade_and_the_shared_vocabulary() -> None:
    found = [
        f"{p.relative_to(SRC)}:{n}: {m}"
        for p in sorted((SRC / "gateway").rglob("*.py"))
        for n, m in _imports(p)
        if m not in GATEWAY_MAY_IMPORT and not m.startswith("merlin.gateway")
    ]
    assert not found, "the gateway goes around the facade:\n" + "\n".join(found)


def test_import_linter_sees_type_checking_imports_and_forbids_the_gateway_the_parts() -> None:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    assert cfg["exclude_type_checking_imports"] is False
    gateway = [c for c in cfg["contracts"] if c["type"] == "forbidden" and c["source_modules"] == ["merlin.gateway"]]
    assert gateway, "no forbidden contract for merlin.gateway"
    below = {"merlin.control", "merlin.integrations", "merlin.engines", "merlin.clusters", "merlin.leases", "merlin.ledger", "merlin.targetgen", "merlin.spec"}
    assert below <= set(gateway[0]["forbidden_modules"])


def test_the_parts_take_the_plane_protocol_not_the_facade() -> None:
    parts = sorted((SRC / "control").glob("*.py")) + sorted((SRC / "integrations").glob("*.py"))
    cycle = [f"{p.relative_to(SRC)}:{n}" for p in parts for n, m in _imports(p) if m == "merlin.controlplane"]
    assert not cycle, f"a part imports the facade: {cycle}"
    dodges = []
    for p in parts:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in node.args.args + node.args.kwonlyargs:
                    if arg.arg == "cp" and (arg.annotation is None or ast.unparse(arg.annotation) != "Plane"):
                        dodges.append(f"{p.relative_to(SRC)}:{node.lineno} {node.name}(cp: {ast.unparse(arg.annotation) if arg.annotation else '?'})")
    assert not dodges, "cp not typed with the Plane protocol:\n" + "\n".join(dodges)


def test_the_targetgen_face(tmp_path: Path) -> None:
    """validate, plan, explain, orchestrate, execute (a recorded local run), status, the review queue,
    answer and retry, each through the facade, as the gateway's handlers call them."""
    cp = ControlPlane(tmp_path / "state")
    out = tmp_path / "targets"
    checked = cp.targetgen_validate(str(CAPABILITY), str(OVERLAY))
    assert checked.target == "x86_cpu_baseline" and checked.deployment and checked.to_json()["valid"] is True
    with pytest.raises(MerlinError) as bad:
        cp.targetgen_validate(str(tmp_path / "missing.yaml"))
    assert bad.value.exit_code == 2
    plan = cp.targetgen_plan(str(CAPABILITY), str(OVERLAY), out_dir=str(out))
    assert plan.target_dir == out / "x86_cpu_baseline" and "task_graph.json" in plan.files and (plan.target_dir / "task_graph.json").is_file()
    why = cp.targetgen_explain(str(CAPABILITY), str(OVERLAY))
    assert why.task_graph["tasks"] and why.support_plan["primary_integration"] == plan.support_plan["primary_integration"]
    made = cp.targetgen_orchestrate(str(CAPABILITY), str(OVERLAY), out_dir=str(out))
    tdir = Path(made.target_dir)
    assert cp.targetgen_status(tdir).outcome == "ready"
    with pytest.raises(BadInput):
        cp.targetgen_execute(engine="local")  # neither a capability nor a target directory
    rec = cp.targetgen_execute(target_dir=str(tdir), engine="local")
    assert rec.source == "targetgen" and rec.target_dir == str(tdir.resolve())
    rec = cp.wait(rec.run_id, timeout=120)
    assert rec.status.value == "succeeded", rec.message
    status = cp.targetgen_status(tdir)
    assert status.outcome == "awaiting_operator" and status.open_question
    queue = cp.targetgen_review(tdir)
    assert [q["id"] for q in queue.questions] == [status.open_question["id"]] and queue.targets[0]["target_dir"] == str(tdir)
    with pytest.raises(NotFound):
        cp.targetgen_prompt(tdir)  # no task awaits a response yet
    q = status.open_question
    answered = cp.targetgen_answer(tdir, q["id"], q["recommended_option"], note="facade test")
    assert answered.to_json()["recorded"] is True
    retried = cp.targetgen_retry(tdir, "implement_llvm_ukernel", reason="facade test")
    assert [r["task_id"] for r in retried.retried] == ["implement_llvm_ukernel"] and retried.reason == "facade test"


def test_the_reads_the_gateway_needs(tmp_path: Path) -> None:
    """run summaries, artifacts read with their digest checked, a lease reserved from bundle text,
    the lease queue, and the audit log at the path Layout names, written through merlin.atomic."""
    cp = ControlPlane(tmp_path / "state")
    tdir = tmp_path / "t"
    tdir.mkdir()
    rec = cp.submit(["sh", "-c", "printf hello > out.txt"], target="reads", workflow="facade", target_dir=tdir, workdir=tdir, wait=True, timeout=60)
    assert rec.status.value == "succeeded", rec.message
    total, rows = cp.run_summaries(["succeeded"], 10)
    assert total == 1 and rows[0]["run_id"] == rec.run_id and rows[0]["attempts"] == 1 and "command" not in rows[0]
    total, full = cp.run_summaries(None, 0, full=True)
    assert full[0]["command"] == rec.command
    with pytest.raises(BadInput, match="`status` 'sideways'") as caught:
        cp.run_summaries(["sideways"], 10)
    assert caught.value.argument == "status"
    got = cp.read_artifact(rec.run_id, "out.txt", 1024)
    assert got.data == b"hello" and got.path == tdir / "out.txt"
    assert cp.read_artifact(rec.run_id, "out.txt", 2).data is None  # larger than asked: read it at path
    with pytest.raises(NotFound):
        cp.read_artifact(rec.run_id, "nope.txt", 1024)
    for escape in ("/etc/passwd", "../x", ""):  # the error names the argument, for the gateway's field-level answer
        with pytest.raises(BadInput) as bad:
            cp.read_artifact(rec.run_id, escape, 1024)
        assert bad.value.argument == "name", escape
    (tdir / "out.txt").write_text("HELLO")
    with pytest.raises(BadInput, match="changed since it was indexed"):
        cp.read_artifact(rec.run_id, "out.txt", 1024)

    cp.leases.define([{"id": "board0", "pool": "vcu118"}], source="test")
    first = cp.reserve_lease(["vcu118:1"], ttl="2m")
    second = cp.reserve_lease(["vcu118"], priority=3)
    assert first["state"] == "granted" and second["state"] == "waiting"
    assert [x["lease_id"] for x in cp.lease_queue()] == [second["lease_id"]]

    cp.append_audit({"operation": "leases_reserve", "result": "ok"})
    path = cp.layout.gateway_audit
    assert path == cp.root / "gateway" / "audit.jsonl"
    line = json.loads(path.read_text().splitlines()[-1])
    assert line["operation"] == "leases_reserve" and line["time"]
    assert not os.stat(path).st_mode & 0o077  # merlin.atomic's mode for a file of the private state root


def test_the_gateway_audits_where_layout_says(tmp_path: Path) -> None:
    pytest.importorskip("mcp", reason="the gateway extra is not installed")
    from merlin.gateway.ops import Gateway

    gw = Gateway(tmp_path / "state", transport="test")
    gw.cp.leases.define([{"id": "board0", "pool": "vcu118"}], source="test")
    lease = gw.call("leases_reserve", {"bundles": ["vcu118:1"]}, client="pytest")
    with pytest.raises(BadInput):
        gw.call("leases_release", {"lease_id": lease["lease_id"], "bogus": 1}, client="pytest")
    lines = [json.loads(x) for x in gw.cp.layout.gateway_audit.read_text().splitlines()]
    assert [(x["operation"], x["result"].split(":")[0], x["client"], x["transport"]) for x in lines] == [
        ("leases_reserve", "ok", "pytest", "test"), ("leases_release", "error 2", "pytest", "test")]  # fmt: skip


def test_the_architecture_doc_states_the_contracts() -> None:
    """docs/architecture.md's layer table is the layers contract row by row, and it names every
    forbidden contract: the doc says what import-linter enforces, no more, no less."""
    import re

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c for c in cfg["contracts"] if c["type"] == "layers")["layers"]
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Layers") : doc.index("## Rules of the house")]
    rows = [line.split(" | ")[0].lstrip("| ") for line in section.splitlines() if line.startswith("| `")]

    def module(cell: str) -> str:
        return "merlin." + cell.strip("` ").removesuffix("/").removesuffix(".py")

    def layer_of(row: str) -> str:
        for sep in (" : ", " \\| "):
            if sep in row:
                return sep.replace("\\", "").join(module(x) for x in row.split(sep))
        return module(row)

    assert [layer_of(r) for r in rows] == [re.sub(r"[()]", "", x) for x in layers]
    for contract in cfg["contracts"]:
        if contract["type"] == "forbidden":
            assert f"*{contract['name']}*" in section.replace("\n  ", " ").replace("\n", " "), f"the doc does not state {contract['name']!r}"
