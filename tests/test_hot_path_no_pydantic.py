"""Issue 15, off the hot path: `ray jobs submit`, `jobs status`, `jobs list` and
`resources reserve` never import pydantic (nor Ray), on the local engine and on Ray.

Each command runs in a fresh interpreter that calls merlin's ``main`` and then
reports what it imported, so the process boundary is what is checked: a module
another test imported cannot hide one the command loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

PROBE = r"""
import json, sys
from merlin.cli.entry import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core', 'ray')})
sys.stderr.write('\nPROBE:' + json.dumps({'exit': code, 'heavy': heavy, 'modules': sorted(sys.modules)}) + '\n')
"""


def probe_all(*args: str, root: Path) -> tuple[int, list[str], str, list[str]]:
    """(exit code, heavy top-level modules imported, stdout, every module imported) of ``merlin ARGS``
    run in-process in a fresh interpreter."""
    env = {**os.environ, "MERLIN_STATE_ROOT": str(root), "NO_COLOR": "1", "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    line = [x for x in res.stderr.splitlines() if x.startswith("PROBE:")]
    assert line, res.stderr
    data = json.loads(line[-1][len("PROBE:"):])
    return data["exit"], data["heavy"], res.stdout, data["modules"]


def probe(*args: str, root: Path) -> tuple[int, list[str], str]:
    """(exit code, heavy top-level modules imported, stdout) of ``merlin ARGS`` run in-process in a fresh interpreter."""
    return probe_all(*args, root=root)[:3]


# What a submit, status or listing does not need: a third-party lock (merlin.atomic's is flock(2)), psutil (merlin.procid reads /proc),
# the TargetGen glue behind the facade, the lifecycle part (wait, cancel, retry) and the CLI's
# other command groups (`ray jobs ...` loads jobs_cmd alone).
NOT_ON_THE_HOT_PATH = (
    "filelock",
    "psutil",
    "merlin.integrations",
    "merlin.targetgen",
    "merlin.control.lifecycle",
    "merlin.cli.targetgen_cmd",
    "merlin.cli.clusters_cmd",
    "merlin.cli.resources_cmd",
    "merlin.cli.artifacts_cmd",
)


def _unwanted(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(NOT_ON_THE_HOT_PATH)]


def test_local_submit_status_and_list_import_no_filelock_targetgen_glue_or_other_groups(tmp_path: Path) -> None:
    root = tmp_path / "state"
    code, _heavy, out, modules = probe_all("ray", "jobs", "submit", "--engine", "local", "--target", "t", "--workflow", "w", "--json", "--", "true", root=root)
    assert code == 0 and _unwanted(modules) == [], (code, _unwanted(modules))
    assert "merlin.cli.jobs_submit" in modules and "merlin.control.submit" in modules  # the probe sees what the command loads
    run_id = json.loads(out)["run_id"]
    for args in (("ray", "jobs", "status", run_id, "--json"), ("ray", "jobs", "list", "--json")):
        code, _heavy, out, modules = probe_all(*args, root=root)
        assert code == 0 and run_id in out, (args, code)
        assert _unwanted(modules) == [], (args, _unwanted(modules))


def test_local_submit_status_list_and_reserve_never_import_pydantic(tmp_path: Path) -> None:
    root = tmp_path / "state"
    code, heavy, out = probe("ray", "jobs", "submit", "--engine", "local", "--target", "t", "--workflow", "w", "--json", "--", "true", root=root)
    assert code == 0 and heavy == [], (code, heavy)
    run_id = json.loads(out)["run_id"]
    assert (root / "runs" / run_id / "run_record.json").is_file()
    for args in (("ray", "jobs", "status", run_id), ("ray", "jobs", "status", run_id, "--json"), ("ray", "jobs", "list"), ("ray", "jobs", "list", "--json")):
        code, heavy, out = probe(*args, root=root)
        assert code == 0 and heavy == [], (args, code, heavy)
        assert run_id in out, args

    inv = tmp_path / "lab.yaml"
    inv.write_text("schema_version: 1\nitems:\n  - {id: board-01, pool: board}\n")
    assert probe("ray", "resources", "define", str(inv), root=root)[0] == 0  # the strict inventory check may use pydantic
    for args in (("ray", "resources", "reserve", "board:1", "--json"), ("ray", "resources", "reserve", "board:1")):
        code, heavy, out = probe(*args, root=root)
        assert heavy == [], (args, heavy)
        assert code in (0, 3)  # the second waits behind the first: exit 3, queued
    assert json.loads(probe("ray", "resources", "list", "--json", root=root)[2])


@pytest.mark.ray
@pytest.mark.slow
def test_ray_submit_status_and_list_never_import_pydantic_or_ray(ray_cp) -> None:  # type: ignore[no-untyped-def]
    root = ray_cp.root
    code, heavy, out = probe("ray", "jobs", "submit", "--engine", "ray", "--target", "t", "--workflow", "hot", "--json", "--", "true", root=root)
    assert code == 0 and heavy == [], (code, heavy, out)
    record = json.loads(out)
    assert record["engine"] == "ray" and record["attempts"][0]["submission_id"]
    run_id = record["run_id"]
    deadline = time.monotonic() + 90
    while ray_cp.status(run_id).status.is_active() and time.monotonic() < deadline:
        time.sleep(0.5)
    for args in (("ray", "jobs", "status", run_id, "--json"), ("ray", "jobs", "status", run_id), ("ray", "jobs", "list"), ("ray", "jobs", "list", "--json")):
        code, heavy, out = probe(*args, root=root)
        assert code == 0 and heavy == [], (args, code, heavy)
        assert run_id in out, args
    assert json.loads(probe("ray", "jobs", "status", run_id, "--json", root=root)[2])["status"] == "succeeded"
