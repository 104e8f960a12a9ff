"""Shared test helpers. Tests never touch the repo's own build/: every state
root and output directory is a temp path. Area-specific fixtures live in
their own plugin modules listed below."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UPSTREAM = REPO.parent / "shared" / "upstream-specs"
EXAMPLES = REPO / "target_specs" / "examples"

pytest_plugins: list[str] = ["tests.ray_fixtures", "tests.xdist_schedule"]


def _sigint_as_from_a_terminal() -> None:
    """A background job of a non-interactive shell (``./scripts/test &``, a CI runner) starts
    with SIGINT ignored, and every process it starts inherits that through exec: the CLIs the
    Ctrl-C tests interrupt would never see the signal, and bash (the ./merlin wrapper) cannot
    even trap it. The suite runs as from a terminal, in the controller and in each worker."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_sigint_as_from_a_terminal()


def _hypothesis_profiles() -> None:
    """Property tests run 50 fixed (derandomized) examples in the suite, so CI is
    reproducible and fits its 15-minute budget on 2 cores; MERLIN_HYPOTHESIS_PROFILE=deep
    runs 1,000 random ones for a deeper search, before a release. What a deep run finds
    becomes an @example of the test."""
    try:
        from hypothesis import settings
    except ImportError:  # the test extra is not installed: no property tests run either
        return
    settings.register_profile("suite", max_examples=50, derandomize=True)
    settings.register_profile("deep", max_examples=1000)
    settings.load_profile(os.environ.get("MERLIN_HYPOTHESIS_PROFILE", "suite"))


_hypothesis_profiles()


@pytest.fixture(autouse=True)
def _signals_kept() -> Iterator[None]:
    """A test that changes this worker's SIGINT, SIGTERM or SIGHUP handling (say, by calling a daemon's
    ``main`` in-process) would change every process the worker starts after it: such a test fails, and the
    handlers are put back for the next one."""
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.getsignal(s) for s in watched}
    yield
    changed = [signal.Signals(s).name for s in watched if signal.getsignal(s) != before[s]]
    for s in watched:
        signal.signal(s, before[s])
    if changed:
        pytest.fail(f"the test left {', '.join(changed)} handled differently in this worker: run that code in a process of its own",
                    pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default state root at a temp dir so no test can write into build/."""
    root = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("MERLIN_STATE_ROOT", str(root / "ray"))
    monkeypatch.setenv("MERLIN_TARGETGEN_OUT", str(root / "targetgen"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))  # no test reads the user's own ~/.config/merlin
    for name in ("MERLIN_CLUSTER", "MERLIN_ENGINE", "MERLIN_OUTPUT"):
        monkeypatch.delenv(name, raising=False)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m merlin ARGS`` in a subprocess (real exit codes, real stderr)."""
    full_env = dict(os.environ)
    full_env["NO_COLOR"] = "1"
    full_env["COLUMNS"] = "200"
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "merlin", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
    )


def upstream_targets() -> list[Path]:
    return sorted(p for p in UPSTREAM.glob("*/capability.yaml")) if UPSTREAM.is_dir() else []


def example_targets() -> list[Path]:
    return sorted(EXAMPLES.glob("*/capability.yaml"))


def overlays_for(capability: Path) -> list[Path]:
    return sorted((capability.parent / "overlays").glob("*.yaml"))
