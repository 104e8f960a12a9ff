"""docs/cli.md is generated from the CLI itself and must not drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_cli_reference_in_sync(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1")
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_cli_docs.py"), "--output", str(out)],
        check=True, capture_output=True, env=env, timeout=60,
    )
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, "docs/cli.md is stale: run ./scripts/gen-cli-docs"
    for command in ("merlin targetgen plan", "merlin targetgen execute", "merlin ray jobs submit", "merlin ray cluster start-local"):
        assert f"`{command}`" in committed


def test_cli_reference_has_no_html_entities_or_cut_summaries() -> None:
    """Typer's generator wrote ``&#x27;`` and ``&lt;name&gt;`` into Markdown and cut summaries at 45
    characters with ``...``; scripts/gen_cli_docs.py writes plain text and whole first sentences."""
    import re

    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert not re.search(r"&(#x?[0-9a-fA-F]+|lt|gt|amp|quot);", text)
    summaries = [line for line in text.splitlines() if re.match(r"\* `[a-z-]+`: ", line)]
    assert len(summaries) > 20
    assert not [line for line in summaries if line.endswith("...")], "a command summary is cut"
    assert "* `ray`: Ray control plane: clusters, runs (jobs) and artifacts." in summaries
