#!/usr/bin/env python3
"""Run the merlin CLI from a checkout without installing it (same CLI as ./merlin)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from merlin.cli.app import main  # noqa: E402

if __name__ == "__main__":
    main()
