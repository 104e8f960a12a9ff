"""The CLI in this process: ``run_cli(ARGS)`` runs ``merlin ARGS`` through
``merlin.cli.app.main`` and returns its exit code, stdout and stderr.

For tests whose subject is what a command prints and returns. A test whose
subject is the process itself (signals, a TTY, lazy imports, the ``./merlin``
wrapper, crash logs, concurrent CLI processes) uses ``conftest.run_cli``, which
starts ``python -m merlin`` in a subprocess.

What a subprocess would have had of its own, a call has too, and gives back:
the environment (``NO_COLOR=1``, ``COLUMNS=200`` and ``env`` on top of this
process's), the working directory (the repo unless ``cwd``), ``sys.argv``, the
umask, stdin (empty unless ``input``) and file descriptors 0, 1 and 2, so the
output of a child the command starts is captured too. Stdout and stderr are
files, not terminals, and read back as ``capture_output=True, text=True`` reads
them.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:
        """As ``subprocess.CompletedProcess`` names it, so a test reads the same either way."""
        return self.exit_code


def _text(fh: io.BufferedRandom) -> str:
    """The bytes decoded as ``subprocess.run(text=True)`` does (universal newlines: ``\\r\\n`` and ``\\r`` read as ``\\n``)."""
    fh.flush()
    fh.seek(0)
    return fh.read().decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


@contextmanager
def _fds_to(stdin: io.BufferedRandom, stdout: io.BufferedRandom, stderr: io.BufferedRandom) -> Iterator[None]:
    """Point fds 0/1/2 and ``sys.std*`` at the given files; put everything back after."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved_fds = [os.dup(fd) for fd in (0, 1, 2)]
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    try:
        for fd, fh in ((0, stdin), (1, stdout), (2, stderr)):
            os.dup2(fh.fileno(), fd)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", write_through=True)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for fd, saved in zip((0, 1, 2), saved_fds, strict=True):
            os.dup2(saved, fd)
            os.close(saved)


def _fresh_cli_state() -> None:
    """What one CLI process would start with: no JSON document emitted yet, consoles made for this call's env."""
    from merlin.cli import output

    emitted = getattr(output, "_EMITTED", None)
    if isinstance(emitted, list):
        emitted.clear()
    for console in ("out", "err"):
        clear = getattr(getattr(output, console, None), "cache_clear", None)
        if clear is not None:
            clear()


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | str | None = None, input: str | None = None,
            timeout: float | None = None) -> Result:
    """Run ``merlin ARGS`` in this process (``timeout`` is accepted for the subprocess helper's callers, not enforced)."""
    from merlin.cli.app import main

    del timeout
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    saved_umask = os.umask(0o022)
    os.umask(saved_umask)
    os.environ.update({"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    os.chdir(cwd or REPO)
    sys.argv = ["merlin", *args]
    code: int = 0
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        if input is not None:
            fin.write(input.encode())
            fin.flush()
            fin.seek(0)
        try:
            _fresh_cli_state()
            with _fds_to(fin, fout, ferr):
                try:
                    main(list(args))
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                    if isinstance(exc.code, str):
                        sys.stderr.write(exc.code + "\n")
        finally:
            _fresh_cli_state()
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            os.umask(saved_umask)
            os.environ.clear()
            os.environ.update(saved_env)
        return Result(code, _text(fout), _text(ferr))
