"""A local wheelhouse for run-environment tests: no package index is ever asked.

``wheelhouse`` (session-scoped) builds a tiny package, ``mlnprobe``, at versions 1.0
and 2.0 with ``uv build`` (uv's own build backend: nothing to download) into one
directory. A runtime installs from it with ``no_index`` and ``find_links``:
:func:`runtime_for` builds that runtime dict. ``mlnprobe-cli`` prints the version.
The Slurm/PBS/SSH tests import this module too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "mlnprobe"
VERSIONS = ("1.0", "2.0")


def build_wheelhouse(root: Path) -> Path:
    from merlin.envs.spec import find_uv

    out = root / "wheels"
    for version in VERSIONS:
        project = root / f"src-{version}"
        (project / "src" / PACKAGE).mkdir(parents=True)
        (project / "pyproject.toml").write_text(
            f'[project]\nname = "{PACKAGE}"\nversion = "{version}"\n'
            f'[project.scripts]\nmlnprobe-cli = "{PACKAGE}:main"\n'
            '[build-system]\nrequires = ["uv_build>=0.9,<0.20"]\nbuild-backend = "uv_build"\n'
        )
        (project / "src" / PACKAGE / "__init__.py").write_text(f'__version__ = "{version}"\n\n\ndef main() -> None:\n    print("{PACKAGE}", __version__)\n')
        subprocess.run([find_uv(), "build", "--wheel", "--no-index", "--no-config", "--quiet", "--out-dir", str(out), str(project)], check=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


def runtime_for(wheels: Path, *requirements: str, **more: Any) -> dict[str, Any]:
    """A runtime (the RuntimeEnv fields) installing ``requirements`` from ``wheels`` only."""
    return {"requirements": "".join(f"{r}\n" for r in requirements), "find_links": [str(wheels)], "no_index": True, **more}
