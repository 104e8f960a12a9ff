"""Paths in a run environment's description, made absolute against the file that holds them.

A run environment is written in YAML twice over: a ``runtime.yaml`` (``jobs submit --env-file``,
``merlin envs build``) and an overlay's ``runtime:`` section (the runs TargetGen starts); the fields
are the same (docs/environments.md) and so is the rule for their paths: ``requirements``, ``lock`` and
``working_dir`` name a file or directory relative to the YAML file, and so does each entry of
``find_links`` that is no URL. This is that rule, once (the CLI's reader and TargetGen's bundle both
call it). Plain Python, imports nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the fields whose value is one path, relative to the file that holds it
PATH_FIELDS = ("requirements", "lock", "working_dir")
#: the field whose entries are paths (relative likewise) or URLs (kept)
LINKS_FIELD = "find_links"


def rebase(field: str, value: Any, base: Path) -> Any:
    """``value`` of the run-environment field ``field`` with its relative paths resolved against ``base``
    (the YAML file's directory). ``find_links`` comes back as a list (one string is one entry); any other
    field, a value that is no text, and a URL come back as they are."""
    if field in PATH_FIELDS and isinstance(value, str):
        return str((base / value).resolve())
    if field == LINKS_FIELD:
        entries = [value] if isinstance(value, str) else value or []
        return [str((base / v).resolve()) if isinstance(v, str) and "://" not in v else v for v in entries]
    return value
