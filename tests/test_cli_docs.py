"""docs/cli.md is generated from the CLI itself and must not drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_cli_reference_in_sync(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    typer_bin = Path(sys.executable).with_name("typer")
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1")
    subprocess.run(
        [str(typer_bin), "merlin.cli.app", "utils", "docs", "--name", "merlin", "--title", "merlin CLI reference", "--output", str(out)],
        check=True, capture_output=True, env=env, timeout=60,
    )
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, "docs/cli.md is stale: run ./scripts/gen-cli-docs"
    for command in ("merlin targetgen plan", "merlin targetgen execute", "merlin ray jobs submit", "merlin ray cluster start-local"):
        assert f"`{command}`" in committed
