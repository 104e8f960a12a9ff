"""`--format upstream`: a script written for upstream Merlin's records reads merlin's output.

The script below knows only upstream's record classes (their field names, from
ucb-bar/merlin tools/raycp/model.py, as docs/records/upstream.md cites) and builds
them with ``Record(**payload)`` as upstream's own service does: one missing or
extra key and it fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_runner import run_cli
from merlin.controlplane import ControlPlane

UPSTREAM_SCRIPT = r'''
import json, sys
from dataclasses import dataclass, field
from typing import Any

@dataclass
class RunRecord:
    run_id: str
    target: str
    workflow: str
    source: str
    engine: str
    status: str
    target_dir: str
    workdir: str
    command: list
    cluster_address: Any = None
    submission_id: Any = None
    message: Any = None
    metadata: dict = field(default_factory=dict)
    created_at: Any = None
    updated_at: Any = None

@dataclass
class ArtifactRecord:
    run_id: str
    name: str
    path: str
    kind: str
    size_bytes: int
    created_at: Any = None

@dataclass
class ResourceLease:
    lease_id: str
    resource_type: str
    owner: str
    status: str
    metadata: dict = field(default_factory=dict)
    created_at: Any = None
    updated_at: Any = None

run = RunRecord(**json.load(open(sys.argv[1])))
arts = [ArtifactRecord(**a) for a in json.load(open(sys.argv[2]))]
lease = ResourceLease(**json.load(open(sys.argv[3])))
done = run.status == "completed" and run.submission_id is not None
print("run", run.run_id, "done" if done else run.status)
for a in arts:
    print("artifact", a.name, a.kind, a.size_bytes, open(a.path).read().strip())
print("lease", lease.lease_id, lease.resource_type, lease.status, lease.owner)
'''


def test_a_script_for_upstreams_records_reads_format_upstream_output(tmp_path: Path) -> None:
    root = tmp_path / "state"
    target = tmp_path / "target"
    target.mkdir()
    cp = ControlPlane(root)
    rec = cp.submit([sys.executable, "-c", f"open({str(target / 'out.txt')!r}, 'w').write('made')"], target="demo", workflow="w",
                    engine="local", target_dir=str(target))  # fmt: skip
    assert cp.wait(rec.run_id, timeout=60).status.value == "succeeded"
    cp.leases.define([{"id": "board-01", "pool": "board"}])
    lease_id = cp.leases.reserve(["board:1"])["lease_id"]

    outputs = {
        "run": run_cli("ray", "jobs", "status", rec.run_id, "--json", "--format", "upstream", "--state-root", str(root)),
        "artifacts": run_cli("ray", "artifacts", "list", rec.run_id, "--json", "--format", "upstream", "--state-root", str(root)),
        "lease": run_cli("ray", "resources", "show", lease_id, "--json", "--format", "upstream", "--state-root", str(root)),
    }
    files = []
    for name, result in outputs.items():
        assert result.exit_code == 0, (name, result.stderr)
        path = tmp_path / f"{name}.json"
        path.write_text(result.stdout)
        files.append(str(path))
    script = tmp_path / "upstream_reader.py"
    script.write_text(UPSTREAM_SCRIPT)
    read = subprocess.run([sys.executable, str(script), *files], capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    assert lines[0] == f"run {rec.run_id} done"
    assert lines[1] == "artifact out.txt txt 4 made"
    assert lines[2].startswith(f"lease {lease_id} board active ")

    # merlin's own shape is unchanged, and a script for upstream fails on it (what the issue saw)
    own = run_cli("ray", "jobs", "status", rec.run_id, "--json", "--state-root", str(root))
    assert json.loads(own.stdout)["status"] == "succeeded" and "attempts" in json.loads(own.stdout)
    (tmp_path / "run.json").write_text(own.stdout)
    assert subprocess.run([sys.executable, str(script), *files], capture_output=True, text=True, timeout=60).returncode != 0


def test_a_released_lease_and_a_bad_format_value(tmp_path: Path) -> None:
    root = tmp_path / "state"
    cp = ControlPlane(root)
    cp.leases.define([{"id": "board-01", "pool": "board"}])
    lease_id = cp.leases.reserve(["board:1"])["lease_id"]
    cp.leases.release(lease_id)
    doc = json.loads(run_cli("ray", "resources", "show", lease_id, "--format", "upstream", "--state-root", str(root)).stdout)
    assert doc["status"] == "released" and doc["metadata"]["merlin_state"] == "released"
    bad = run_cli("ray", "jobs", "status", "demo-x", "--format", "fray", "--state-root", str(root))
    assert bad.exit_code == 2 and "--format 'fray': expected merlin or upstream" in bad.stderr
