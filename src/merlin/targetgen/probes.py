"""Run probes and validation commands for real: timeouts, logs, honest results.

Every run returns a ``CommandResult`` with the exit code (127 when the
executable is missing, ``None`` on timeout), the duration and an excerpt of
the output; the full output goes to a log file. Children run in their own
process group (so a timeout kills the whole tree) and, on Linux, die with the
executor if it is killed (``PR_SET_PDEATHSIG``), so nothing keeps running
behind a killed ``execute``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# SDK name -> a shell command (exits 0 when the SDK is usable) or a bare
# executable name (found on PATH = usable). Overlays extend or override this
# with deployment.preflight.probes; an SDK missing from both is probed as an
# executable of the same name (with '_' also tried as '-').
DEFAULT_PROBES: dict[str, str] = {
    "adb": "adb version",
    "chipyard": "chipyard",
    "cuda": "nvcc --version",
    "firesim": "firesim",
    "iree_cuda": "iree-compile --version",
    "iree_llvmcpu": "iree-compile --version",
    "iree_vulkan": "iree-compile --version",
    "iree_runtime": "iree-run-module --list_drivers",
    "npu_model": "npu-model",
    "radiance_runtime": "radiance-runtime",
    "spacemit_toolchain": "riscv64-unknown-linux-gnu-gcc --version",
    "vulkan_sdk": "vulkaninfo --summary",
}

EXCERPT_CHARS = 2000


@dataclass
class CommandResult:
    argv: list[str]
    exit_code: int | None
    duration_s: float
    excerpt: str
    timed_out: bool = False
    error: str | None = None
    shown: str | None = None  # how to show the command (a shell probe as written)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        if self.error:
            return f"{self.error} (exit {self.exit_code})"
        return f"exit {self.exit_code}"

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.shown or shlex.join(self.argv),
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3),
            "timed_out": self.timed_out,
            "output_excerpt": self.excerpt,
            **({"error": self.error} if self.error else {}),
        }


def probe_command(sdk: str, overrides: dict[str, str]) -> str:
    """The probe for an SDK: the overlay's, else the built-in table, else its own name."""
    return overrides.get(sdk) or DEFAULT_PROBES.get(sdk) or sdk


def _excerpt(text: str) -> str:
    text = text.strip()
    if len(text) <= EXCERPT_CHARS:
        return text
    return "...\n" + text[-EXCERPT_CHARS:]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def run_command(
    argv: list[str],
    *,
    timeout: float,
    log_path: Path | None = None,
    cwd: Path | None = None,
    header: str | None = None,
) -> CommandResult:
    """Run ``argv`` (no shell), output to ``log_path`` (appended) and an excerpt."""
    start = time.monotonic()
    if not argv:
        return CommandResult(argv, 2, 0.0, "", error="empty command")
    from merlin.targetgen.selfcheck import run_inprocess

    here = run_inprocess(argv, cwd)  # merlin's own validate/plan: no second interpreter
    if here is not None:
        here_code, text = here
        duration = time.monotonic() - start
        _log(log_path, header, argv, text, f"exit {here_code} ({duration:.2f}s, in-process)")
        return CommandResult(argv, here_code, duration, _excerpt(text))
    exe = argv[0]
    if os.sep not in exe and shutil.which(exe) is None:
        msg = f"{exe}: command not found on PATH"
        _log(log_path, header, argv, msg + "\n", f"exit 127 ({msg})")
        return CommandResult(argv, 127, 0.0, msg, error=msg)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        _log(log_path, header, argv, None, None)
        sink = open(log_path, "a+b")
    else:
        import tempfile

        sink = tempfile.TemporaryFile()
    offset = sink.tell()
    try:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
                preexec_fn=_die_with_parent if os.name == "posix" else None,
            )
        except FileNotFoundError:
            msg = f"{exe}: no such file or command"
            sink.write((msg + "\n").encode())
            return CommandResult(argv, 127, time.monotonic() - start, msg, error=msg)
        except PermissionError:
            msg = f"{exe}: permission denied (not executable)"
            sink.write((msg + "\n").encode())
            return CommandResult(argv, 126, time.monotonic() - start, msg, error=msg)
        timed_out = False
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            code = None
        except BaseException:
            _kill_group(proc)
            raise
        duration = time.monotonic() - start
        sink.flush()
        end = sink.seek(0, os.SEEK_END)
        sink.seek(max(offset, end - 4 * EXCERPT_CHARS))
        output = sink.read().decode("utf-8", errors="replace")
        footer = f"timed out after {timeout:g}s; killed" if timed_out else f"exit {code}"
        sink.write(f"--- {footer} ({duration:.2f}s)\n".encode())
    finally:
        sink.close()
    excerpt = _excerpt(output)
    if timed_out:
        excerpt = _excerpt(output + f"\n[timed out after {timeout:g}s; process group killed]")
    return CommandResult(argv, code, duration, excerpt, timed_out=timed_out)


def run_shell(command: str, *, timeout: float, log_path: Path | None = None, cwd: Path | None = None, header: str | None = None) -> CommandResult:
    """A probe: a bare executable name is looked up on PATH; anything else runs with sh -c."""
    command = command.strip()
    if command and all(c not in command for c in " \t|;&<>$`'\"()"):
        start = time.monotonic()
        candidates = [command] + ([command.replace("_", "-")] if "_" in command else [])
        for name in candidates:
            found = shutil.which(name)
            if found:
                msg = f"{name} found at {found}"
                _log(log_path, header, [command], msg + "\n", "exit 0")
                return CommandResult([command], 0, time.monotonic() - start, msg, shown=command)
        msg = f"{' or '.join(candidates)}: not found on PATH"
        _log(log_path, header, [command], msg + "\n", "exit 127")
        return CommandResult([command], 127, time.monotonic() - start, msg, error=msg, shown=command)
    result = run_command(["/bin/sh", "-c", command], timeout=timeout, log_path=log_path, cwd=cwd, header=header)
    result.shown = command
    if result.exit_code == 127 and not result.error:
        result.error = "command not found"
    return result


def _log(log_path: Path | None, header: str | None, argv: list[str], body: str | None, footer: str | None) -> None:
    if log_path is None:
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    if header is not None:
        parts.append(f"=== {header}\n$ {shlex.join(argv)}\n")
    if body:
        parts.append(body)
    if footer:
        parts.append(f"--- {footer}\n")
    if parts:
        with open(log_path, "ab") as handle:
            handle.write("".join(parts).encode("utf-8"))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
