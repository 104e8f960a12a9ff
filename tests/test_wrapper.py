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
    """A copy of the wrapper beside a tiny installable project whose entry point prints its argv."""
    project = tmp_path / "project"
    (project / "src" / "merlin").mkdir(parents=True)
    shutil.copy2(REPO / "merlin", project / "merlin")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "merlin-wrapper-probe"\nversion = "0"\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )
    (project / "src" / "merlin" / "__init__.py").write_text("")
    (project / "src" / "merlin" / "cli").mkdir()
    (project / "src" / "merlin" / "cli" / "__init__.py").write_text("")
    # the wrapper calls merlin.cli.entry.run(), as merlin's own ``python -m merlin`` does
    (project / "src" / "merlin" / "cli" / "entry.py").write_text("import sys\ndef run():\n    print('probe ran', *sys.argv[1:])\n")
    return project


@pytest.mark.wrapper_install
def test_two_first_runs_at_once_install_once(tmp_path: Path) -> None:
    import time

    project = _probe_project(tmp_path)
    env = dict(os.environ, MERLIN_EXTRAS="", PYTHONDONTWRITEBYTECODE="1")  # as CI sets it
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
    # the install compiled merlin's modules, which Python itself would not write under PYTHONDONTWRITEBYTECODE
    assert list((project / "src" / "merlin" / "cli" / "__pycache__").glob("entry.*.pyc"))
    # and later runs take the fast path without the lock message
    third = subprocess.run([str(project / "merlin"), "three"], capture_output=True, text=True, env=env, timeout=60)
    assert third.returncode == 0 and third.stdout.strip() == "probe ran three" and third.stderr == ""


def _start_wrapper(project: Path, *args: str) -> subprocess.Popen[str]:
    """./merlin in a process group of its own, as a terminal runs it: Ctrl-C reaches the group (bash and its child)."""
    env = dict(os.environ, MERLIN_EXTRAS="")
    return subprocess.Popen([str(project / "merlin"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _ctrl_c_when(proc: subprocess.Popen[str], ready, what: str) -> tuple[str, str]:
    import signal
    import time

    deadline = time.monotonic() + 240
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=120)


def _assert_interrupted_install(proc: subprocess.Popen[str], err: str) -> None:
    assert proc.returncode == 130, err
    assert "interrupted; run ./merlin again to finish installing" in err, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "package index" not in err, err  # not mistaken for a failed download


@pytest.mark.wrapper_install
def test_ctrl_c_while_creating_the_venv_says_so_and_the_next_run_installs(tmp_path: Path) -> None:
    project = _probe_project(tmp_path)
    proc = _start_wrapper(project, "one")
    _out, err = _ctrl_c_when(proc, lambda: (project / ".venv" / "bin").exists(), "venv creation")
    _assert_interrupted_install(proc, err)
    assert not (project / ".venv").exists(), "a half-made venv must not be left for the next run to trust"
    again = subprocess.run([str(project / "merlin"), "two"], capture_output=True, text=True, env=dict(os.environ, MERLIN_EXTRAS=""), timeout=600)
    assert again.returncode == 0 and again.stdout.strip() == "probe ran two", again.stderr


SLOW_BACKEND = '''
import pathlib, time
from setuptools import build_meta as _b

here = pathlib.Path(__file__).parent


def get_requires_for_build_editable(config_settings=None):
    if (here / "slow").exists():  # the test interrupts pip here
        (here / "in-build").touch()
        time.sleep(300)
    return _b.get_requires_for_build_editable(config_settings)


prepare_metadata_for_build_editable = _b.prepare_metadata_for_build_editable
build_editable = _b.build_editable
get_requires_for_build_wheel = _b.get_requires_for_build_wheel
prepare_metadata_for_build_wheel = _b.prepare_metadata_for_build_wheel
build_wheel = _b.build_wheel
get_requires_for_build_sdist = _b.get_requires_for_build_sdist
build_sdist = _b.build_sdist
'''


@pytest.mark.wrapper_install
def test_ctrl_c_during_pip_install_says_so_exits_130_and_the_next_run_finishes(tmp_path: Path) -> None:
    project = _probe_project(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('build-backend = "setuptools.build_meta"', 'build-backend = "slow_backend"\nbackend-path = ["."]'))
    (project / "slow_backend.py").write_text(SLOW_BACKEND)
    (project / "slow").touch()
    proc = _start_wrapper(project, "one")
    _out, err = _ctrl_c_when(proc, lambda: (project / "in-build").exists(), "pip building the project")
    _assert_interrupted_install(proc, err)
    assert "installing merlin" in err
    assert not (project / ".venv" / ".merlin-installed").exists(), "an interrupted install must not be stamped as done"
    (project / "slow").unlink()
    again = subprocess.run([str(project / "merlin"), "two"], capture_output=True, text=True, env=dict(os.environ, MERLIN_EXTRAS=""), timeout=600)
    assert again.returncode == 0 and again.stdout.strip() == "probe ran two", again.stderr
    assert "installing merlin" in again.stderr  # it finished the install the first run left
