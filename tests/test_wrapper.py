"""The ./merlin bootstrap wrapper: fast path, and clear failures on a bare machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO


def _copy_wrapper(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(REPO / "merlin", project / "merlin")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "merlin-wrapper-probe"\nversion = "0"\ndependencies = ["no-such-package-merlin-probe"]\n'
    )
    return project


def test_installed_checkout_starts_cli_directly() -> None:
    result = subprocess.run([str(REPO / "merlin"), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("merlin ")
    assert "installing" not in result.stderr


def test_missing_python_is_a_clear_error(tmp_path: Path) -> None:
    project = _copy_wrapper(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("dirname"), bin_dir / "dirname")
    result = subprocess.run(
        [shutil.which("bash"), str(project / "merlin"), "--help"],
        capture_output=True, text=True, env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=60,
    )
    assert result.returncode == 2
    assert "Python 3.11 or newer" in result.stderr
    assert not (project / ".venv").exists()


@pytest.mark.wrapper_install
def test_unreachable_registry_is_a_clear_error_and_retried_next_time(tmp_path: Path) -> None:
    project = _copy_wrapper(tmp_path)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty), PIP_CONFIG_FILE=os.devnull, MERLIN_EXTRAS="")
    result = subprocess.run([str(project / "merlin"), "--help"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert "first run: creating" in result.stderr
    assert "installing dependencies failed" in result.stderr and "run ./merlin again to retry" in result.stderr
    assert not (project / ".venv" / ".merlin-installed").exists(), "a failed install must not be stamped as done"


def test_tools_script_and_module_run_the_same_cli() -> None:
    import sys

    via_tools = subprocess.run([sys.executable, str(REPO / "tools" / "merlin.py"), "--version"], capture_output=True, text=True, timeout=60)
    via_module = subprocess.run([sys.executable, "-m", "merlin", "--version"], capture_output=True, text=True, timeout=60)
    assert via_tools.returncode == via_module.returncode == 0
    assert via_tools.stdout == via_module.stdout and via_tools.stdout.startswith("merlin ")


def _probe_project(tmp_path: Path) -> Path:
    """A copy of the wrapper beside a tiny installable project whose ``python -m merlin`` prints its argv."""
    project = tmp_path / "project"
    (project / "src" / "merlin").mkdir(parents=True)
    shutil.copy2(REPO / "merlin", project / "merlin")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "merlin-wrapper-probe"\nversion = "0"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )
    (project / "src" / "merlin" / "__init__.py").write_text("")
    (project / "src" / "merlin" / "__main__.py").write_text("import sys\nprint('probe ran', *sys.argv[1:])\n")
    return project


@pytest.mark.wrapper_install
def test_two_first_runs_at_once_install_once(tmp_path: Path) -> None:
    import time

    project = _probe_project(tmp_path)
    env = dict(os.environ, MERLIN_EXTRAS="")
    first = subprocess.Popen([str(project / "merlin"), "one"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (project / ".venv").exists():  # the first run holds the lock from before it creates .venv
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never started creating .venv"
        time.sleep(0.02)
    second = subprocess.Popen([str(project / "merlin"), "two"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert out1.strip() == "probe ran one" and out2.strip() == "probe ran two"
    assert "installing merlin" in err1 and "first run: creating" in err1
    assert "waiting for another ./merlin to finish installing" in err2
    assert "installing merlin" not in err2 and "first run: creating" not in err2, "the second run must not install again"
    assert (project / ".venv" / ".merlin-installed").read_text() == "extras="
    # and later runs take the fast path without the lock message
    third = subprocess.run([str(project / "merlin"), "three"], capture_output=True, text=True, env=env, timeout=60)
    assert third.returncode == 0 and third.stdout.strip() == "probe ran three" and third.stderr == ""
