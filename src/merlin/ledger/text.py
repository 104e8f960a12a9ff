"""Secret redaction and plain-text messages for records.

Records are read by people with ``cat`` and by scripts; both are served by
messages that carry no terminal escapes and never run to pages, and by
values that never hold a credential.

A value is redacted for its NAME (``GITHUB_TOKEN=...``, ``--password X``) and
for its SHAPE, whatever it is called: URL credentials (``user:pass@``),
``Bearer``/``Basic`` credentials, well-known key formats (GitHub ``ghp_``,
AWS ``AKIA``, OpenAI-style ``sk-``, Slack ``xox?-``, Google ``AIza``,
Hugging Face ``hf_``, GitLab ``glpat-``, JWTs, PEM private keys).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***redacted***"
MESSAGE_LIMIT = 1000

_SECRET_NAME = re.compile(
    r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|PASSPHRASE|PGPASS|CREDENTIAL|AUTH|COOKIE|_PASS$|^PASS$|_PWD$|^PWD_)", re.IGNORECASE
)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ENV_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)

#: Flags whose value is a secret: ``--password X``, ``--token=X``, ``--api-key X``, ``-p X``.
_SECRET_FLAG = re.compile(
    r"^--?(?:[a-z0-9]+[-_])*(?:password|passwd|pass|passphrase|pwd|token|secret|api[-_]?key|apikey|"
    r"access[-_]?key|private[-_]?key|client[-_]?secret|credentials?|cookie)$",
    re.IGNORECASE,
)
_SHORT_PASSWORD_FLAG = "-p"  # mysql and friends; skipped when its value is a number or a path (ssh -p 22, mkdir -p dir)
#: Clients that take ``-pSECRET`` glued to the flag (MySQL's convention). Only in their command lines is a
#: glued ``-p`` word a password: elsewhere it is ``-pthread``, ``-pedantic``, ``-print``.
_GLUED_PASSWORD_CLIENTS = re.compile(r"(?:^|[\s/;&|(])(?:mysql[a-z_]*|mariadb[a-z\-_]*)(?=$|[\s;&|)])")
_GLUED_PASSWORD = re.compile(r"((?:^|\s)-p)([^\s'\";&|)]+)")

#: Shapes of secret values, each replaced wherever it appears inside a word.
_SHAPES: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host -> keep the user, drop the password
    (re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):[^\s@/'\"]+@"), rf"\1:{REDACTED}@"),
    # "Bearer X" / "Basic X" as in an HTTP header (capitalised: "basic checks passed" is prose)
    (re.compile(r"\b([Bb]earer|Basic)(\s+)(?=[A-Za-z0-9._~+/=\-]*(?:[0-9._~+/=\-]|[a-z][A-Z]))[A-Za-z0-9._~+/=\-]{8,}"), rf"\1\2{REDACTED}"),
    (re.compile(r"(Authorization\s*[:=]\s*)(?![Bb]earer\b|Basic\b)[^\s'\"]{6,}", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}"), REDACTED),  # JWT
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{16,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), REDACTED),
    (re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}"), REDACTED),
]
#: Inside one word (``sh -c 'mysql --password=X'``): a secret flag and its value.
_INLINE_FLAG = re.compile(
    r"((?:^|\s)--?(?:[a-z0-9]+[-_])*(?:password|passwd|passphrase|token|secret|api[-_]?key|apikey|"
    r"access[-_]?key|private[-_]?key|client[-_]?secret)(?:=|\s+))(?!-)([^\s'\";&|)]+)",
    re.IGNORECASE,
)
#: Inside one word: ``NAME=value`` with a secret-looking NAME (``env DB_PASSWORD=x cmd`` as one shell string).
_INLINE_ASSIGN = re.compile(r"((?:^|[\s;&|(])([A-Za-z_][A-Za-z0-9_]*)=)([^\s'\";&|)]+)")


def looks_secret(name: str) -> bool:
    """Names such as ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD``, ``PGPASS``."""
    return bool(_SECRET_NAME.search(name))


def scrub_value_shapes(text: str) -> str:
    """Replace the secret-shaped values in ``text`` (URL credentials, bearer tokens, key formats)."""
    if not text or not isinstance(text, str):
        return text
    for pattern, repl in _SHAPES:
        text = pattern.sub(repl, text)
    return text


def scrub_shapes(text: str) -> str:
    """:func:`scrub_value_shapes`, plus secret flags and secret ``NAME=value`` inside one word (``sh -c '...'``)."""
    if not text or not isinstance(text, str):
        return text
    text = scrub_value_shapes(text)
    text = _INLINE_FLAG.sub(lambda m: m.group(1) + REDACTED, text)
    text = _INLINE_ASSIGN.sub(lambda m: m.group(1) + (REDACTED if looks_secret(m.group(2)) else m.group(3)), text)
    if _GLUED_PASSWORD_CLIENTS.search(text):  # sh -c 'mysql -uroot -pSECRET db'
        text = _GLUED_PASSWORD.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def has_secret_shape(text: str) -> bool:
    return isinstance(text, str) and scrub_shapes(text) != text


def redact_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """Secret names lose their whole value; other values lose their secret-shaped parts."""
    return {k: (REDACTED if looks_secret(k) else scrub_shapes(str(v))) for k, v in (env or {}).items()}


def secret_values(env: Mapping[str, str] | None) -> list[str]:
    """The values :func:`redact_env` would hide, whole: scrubbed from logs and errors merlin copies."""
    out = []
    for k, v in (env or {}).items():
        v = str(v)
        if len(v) >= 4 and (looks_secret(k) or has_secret_shape(v)):
            out.append(v)
    return out


def scrub_values(text: str | None, values: Iterable[str]) -> str | None:
    """Replace each known secret value in ``text`` (longest first), then secret shapes."""
    if not text:
        return text
    for v in sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True):
        text = text.replace(v, REDACTED)
    return scrub_shapes(text)


def _is_glued_password_client(word: str) -> bool:
    """``mysql``, ``/usr/bin/mysqldump``, ``mariadb``: a program whose later ``-pX`` words are passwords."""
    return bool(_GLUED_PASSWORD_CLIENTS.fullmatch(word.rsplit("/", 1)[-1]))


def _is_value_like(word: str) -> bool:
    return bool(word) and not word.startswith("-")


def redact_argv(argv: list[str]) -> list[str]:
    """Redact secrets in argv: ``NAME=value`` with a secret NAME, the value after a
    password-like flag (``--password X``, ``--token=X``, ``-p X``), and secret shapes."""
    out: list[str] = []
    hide_next = False
    glued_password = False  # set once a mysql-family program word is seen: its glued -p words are passwords
    for word in argv:
        word = str(word)
        if glued_password and len(word) > 2 and word.startswith(_SHORT_PASSWORD_FLAG) and not word.startswith("--"):
            out.append(_SHORT_PASSWORD_FLAG + REDACTED)  # mysql -pSECRET
            continue
        glued_password = glued_password or _is_glued_password_client(word)
        if hide_next and _is_value_like(word):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        m = _ENV_ASSIGN.match(word)
        if m and looks_secret(m.group(1)):
            out.append(f"{m.group(1)}={REDACTED}")
            continue
        if word.startswith("-") and "=" in word:
            flag, _, value = word.partition("=")
            if _SECRET_FLAG.match(flag) and value:
                out.append(f"{flag}={REDACTED}")
                continue
        if _SECRET_FLAG.match(word):
            hide_next = True
        elif word == _SHORT_PASSWORD_FLAG:
            hide_next = True
            out.append(word)
            continue
        out.append(scrub_shapes(word))
    return _unhide_short_flag_values(argv, out)


def _unhide_short_flag_values(argv: list[str], out: list[str]) -> list[str]:
    """``-p 22`` (a port) and ``-p ./dir`` (mkdir) are not passwords: keep them."""
    for i, word in enumerate(argv[:-1]):
        if word == _SHORT_PASSWORD_FLAG and out[i + 1] == REDACTED:
            nxt = str(argv[i + 1])
            if nxt.isdigit() or "/" in nxt or nxt.startswith("~"):
                out[i + 1] = nxt
    return out


def redact_mapping(data: Any) -> Any:
    """Recursively redact values under secret-looking keys, and secret shapes in any string."""
    if isinstance(data, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and looks_secret(k) and isinstance(v, (str, int, float)) else redact_mapping(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact_mapping(v) for v in data]
    if isinstance(data, str):
        return scrub_shapes(data)
    return data


def has_redacted(argv: list[str]) -> bool:
    return any(REDACTED in word for word in argv)


def plain(text: str | None, limit: int = MESSAGE_LIMIT) -> str:
    """Strip ANSI escapes and control characters, scrub secret shapes; cap the length with an ellipsis."""
    if not text:
        return ""
    text = _ANSI.sub("", str(text))
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\t", " ")).strip()
    text = scrub_value_shapes(text)  # messages are merlin's prose: only values shaped like secrets go
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text
