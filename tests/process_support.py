"""Helpers for tests that watch real processes: poll until a condition holds, and start
a bash process group of its own (so a test can end exactly what it started)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(pred: Callable[[], T], timeout: float = 20.0) -> T:
    """``pred()`` once it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def bash_group(script: str) -> subprocess.Popen[bytes]:
    """A bash process group of its own running ``script``."""
    return subprocess.Popen(["bash", "-c", script], start_new_session=True, stdin=subprocess.DEVNULL)
