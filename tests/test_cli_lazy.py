"""`merlin --help` stays cheap: command groups load only when used."""

from __future__ import annotations

import importlib
import subprocess
import sys

from conftest import REPO, run_cli
from merlin.cli.app import LAZY_GROUPS

PROBE = r"""
import sys
from merlin.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("merlin.cli.ray_cmd", "merlin.cli.jobs_cmd", "merlin.cli.clusters_cmd", "merlin.cli.artifacts_cmd", "merlin.cli.resources_cmd", "merlin.cli.targetgen", "merlin.spec", "merlin.controlplane", "pydantic", "rich", "ray", "jinja2", "yaml")
print("LOADED:" + ",".join(sorted(m for m in sys.modules if m.startswith(heavy))))
"""


def _loaded(*args: str) -> set[str]:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, timeout=60)
    line = [x for x in res.stdout.splitlines() if x.startswith("LOADED:")][-1]
    return {m for m in line[len("LOADED:"):].split(",") if m}


def test_root_help_imports_no_command_group_and_nothing_heavy() -> None:
    assert _loaded("--help") == set()
    assert _loaded() == set()  # no arguments: the help too


def test_a_group_is_imported_when_used() -> None:
    loaded = _loaded("ray", "--help")
    assert "merlin.cli.ray_cmd" in loaded and "merlin.cli.targetgen_cmd" not in loaded
    assert not any(m == "ray" or m.startswith("ray.") for m in loaded), "ray's help must not import Ray"


def test_stored_group_help_is_the_groups_own() -> None:
    for name, (module, help_text) in LAZY_GROUPS.items():
        assert importlib.import_module(module).app.info.help == help_text, f"update LAZY_GROUPS[{name!r}] in cli/app.py"


def test_root_help_lists_every_group_and_usage_errors_are_one_line() -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    for name in LAZY_GROUPS:
        assert f"\n  {name} " in res.stdout
    bad = run_cli("nosuchgroup")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["merlin: No such command 'nosuchgroup'. (see merlin --help)"]
    nested = run_cli("ray", "jobs", "list", "--bogus")
    assert nested.returncode == 2 and nested.stderr.strip() == "merlin ray jobs list: No such option: --bogus (see merlin ray jobs list --help)"
