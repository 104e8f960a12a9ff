#!/usr/bin/env python3
"""Run the merlin CLI from a checkout without installing it (same CLI as ./merlin).

It needs merlin's dependencies (typer, rich, pydantic, ...), which live in the checkout's
.venv: run it with .venv/bin/python, or use ./merlin, which creates the venv first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

try:
    from merlin.cli.app import main
except ModuleNotFoundError as exc:  # a Python without merlin's dependencies: one line, no traceback
    wrapper = Path(__file__).resolve().parent.parent / "merlin"
    sys.stderr.write(
        f"tools/merlin.py: this Python ({sys.executable}) lacks merlin's dependencies (no module {exc.name!r}); "
        f"run {wrapper} instead (it sets up .venv), or .venv/bin/python tools/merlin.py\n"
    )
    sys.exit(2)

if __name__ == "__main__":
    main()
