"""Secret redaction and plain-text messages for records.

Records are read by people with ``cat`` and by scripts; both are served by
messages that carry no terminal escapes and never run to pages, and by env
values that never hold a credential.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

REDACTED = "***redacted***"
MESSAGE_LIMIT = 1000

_SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ENV_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def looks_secret(name: str) -> bool:
    """Names such as ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD``."""
    return bool(_SECRET_NAME.search(name))


def redact_env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {k: (REDACTED if looks_secret(k) else str(v)) for k, v in (env or {}).items()}


def redact_argv(argv: list[str]) -> list[str]:
    """Redact ``NAME=value`` words whose NAME looks secret (``env API_TOKEN=x cmd``)."""
    out = []
    for word in argv:
        m = _ENV_ASSIGN.match(word)
        out.append(f"{m.group(1)}={REDACTED}" if m and looks_secret(m.group(1)) else word)
    return out


def redact_mapping(data: Any) -> Any:
    """Recursively redact values under secret-looking keys (metadata, detail dicts)."""
    if isinstance(data, Mapping):
        return {k: (REDACTED if isinstance(k, str) and looks_secret(k) and isinstance(v, (str, int, float)) else redact_mapping(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_mapping(v) for v in data]
    return data


def has_redacted(argv: list[str]) -> bool:
    return any(REDACTED in word for word in argv)


def plain(text: str | None, limit: int = MESSAGE_LIMIT) -> str:
    """Strip ANSI escapes and control characters; cap the length with an ellipsis."""
    if not text:
        return ""
    text = _ANSI.sub("", str(text))
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\t", " ")).strip()
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text
