"""``start-local --token-file``: only a private regular file holding one real token is taken.

Issue 20 #6: a FIFO hung the command forever, a binary file was exit 70, and tokens
of one character or with spaces were accepted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from merlin.clusters.auth import MIN_TOKEN_CHARS, check_token_file
from merlin.errors import BadInput


def _file(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"x", f"at least {MIN_TOKEN_CHARS}"),
        (b"abc def ghi jkl mno pqr", "blanks"),
        (b"\x00\xff\xfe" * 20, "not text"),
        (b"tok\x1bkenkenkenkenkenken", "control characters"),
        (b"   \n", "empty"),
        (b"a" * 5000, "at most 4096 bytes"),
    ],
)
def test_bad_token_contents_are_refused_in_one_line(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(BadInput) as err:
        check_token_file(_file(tmp_path, data))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_good_token_file_is_taken_and_a_shared_one_is_not(tmp_path: Path) -> None:
    good = _file(tmp_path, b"0123456789abcdef0123456789abcdef\n")
    assert check_token_file(good) == good
    good.chmod(0o644)
    with pytest.raises(BadInput, match="readable by others"):
        check_token_file(good)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(BadInput, match="directory|regular file"):
        check_token_file(tmp_path / "d")


def test_start_local_with_a_fifo_token_file_exits_2_at_once_and_starts_nothing(tmp_path: Path) -> None:
    fifo = tmp_path / "token.fifo"
    os.mkfifo(fifo, 0o600)
    root = tmp_path / "state"
    proc = subprocess.run(
        [sys.executable, "-m", "merlin", "ray", "cluster", "start-local", "--state-root", str(root), "--name", "fifo",
         "--port", "1", "--dashboard-port", "2", "--token-file", str(fifo), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert "not a regular file" in doc["error"] and doc["exit_code"] == 2
    assert "Traceback" not in proc.stderr
    record = root / "clusters" / "fifo.json"
    assert not record.exists() or json.loads(record.read_text())["status"] != "active"
