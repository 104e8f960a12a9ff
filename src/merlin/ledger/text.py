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

# The patterns are compiled on first use (re's own cache), and a pattern is tried on an ASCII text
# only when the text holds a literal that every match of it contains (its "needs"): compiling all
# of them cost a submit more CPU than its records (issue 15), and most texts (``true``, a path, a
# message) hold none of them. A text with non-ASCII characters is tried against every pattern
# (IGNORECASE matches letters such as U+212A, the Kelvin sign, that str.lower() leaves alone).
_SECRET_NAME = (r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|PASSPHRASE|PGPASS|CREDENTIAL|AUTH|COOKIE|_PASS$|^PASS$|_PWD$|^PWD_)", re.IGNORECASE)
_ANSI = r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]"
_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f]"
_ENV_ASSIGN = (r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)

_SECRET_FLAG = (
    r"^--?(?:[a-z0-9]+[-_])*(?:password|passwd|pass|passphrase|pwd|token|secret|api[-_]?key|apikey|"
    r"access[-_]?key|private[-_]?key|client[-_]?secret|credentials?|cookie)$",
    re.IGNORECASE,
)
_SHORT_PASSWORD_FLAG = "-p"  # mysql and friends; skipped when its value is a number or a path (ssh -p 22, mkdir -p dir)
_GLUED_PASSWORD_CLIENTS = r"(?:^|[\s/;&|(])(?:mysql[a-z_]*|mariadb[a-z\-_]*)(?=$|[\s;&|)])"
_GLUED_CLIENT_NEEDS = ("mysql", "mariadb")
_GLUED_PASSWORD = r"((?:^|\s)-p)([^\s'\";&|)]+)"

#: (pattern, flags, replacement, needs): ``needs``, literals one of which every match contains
#: (matched in the text's lower case when the pattern ignores case)
_SHAPES: list[tuple[str, int, str, tuple[str, ...]]] = [
    # scheme://user:password@host -> keep the user, drop the password
    (r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):[^\s@/'\"]+@", 0, rf"\1:{REDACTED}@", ("://",)),
    # "Bearer X" / "Basic X" as in an HTTP header (capitalised: "basic checks passed" is prose)
    (r"\b([Bb]earer|Basic)(\s+)(?=[A-Za-z0-9._~+/=\-]*(?:[0-9._~+/=\-]|[a-z][A-Z]))[A-Za-z0-9._~+/=\-]{8,}", 0, rf"\1\2{REDACTED}", ("earer", "Basic")),
    (r"(Authorization\s*[:=]\s*)(?![Bb]earer\b|Basic\b)[^\s'\"]{6,}", re.IGNORECASE, rf"\1{REDACTED}", ("authorization",)),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL, REDACTED, ("-----BEGIN ",)),
    (r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}", 0, REDACTED, ("eyJ",)),  # JWT
    (r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", 0, REDACTED, ("gh", "github_pat_")),
    (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b", 0, REDACTED, ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA")),
    (r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{16,}", 0, REDACTED, ("sk-",)),
    (r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", 0, REDACTED, ("xox",)),
    (r"\bAIza[0-9A-Za-z_\-]{30,}", 0, REDACTED, ("AIza",)),
    (r"\bhf_[A-Za-z0-9]{30,}", 0, REDACTED, ("hf_",)),
    (r"\bglpat-[A-Za-z0-9_\-]{20,}", 0, REDACTED, ("glpat-",)),
]
#: Inside one word (``sh -c 'mysql --password=X'``): a secret flag and its value.
_INLINE_FLAG = (
    r"((?:^|\s)--?(?:[a-z0-9]+[-_])*(?:password|passwd|passphrase|token|secret|api[-_]?key|apikey|"
    r"access[-_]?key|private[-_]?key|client[-_]?secret)(?:=|\s+))(?!-)([^\s'\";&|)]+)",
    re.IGNORECASE,
)
_INLINE_FLAG_NEEDS = ("pass", "token", "secret", "key")
#: Inside one word: ``NAME=value`` with a secret-looking NAME (``env DB_PASSWORD=x cmd`` as one shell string).
_INLINE_ASSIGN = r"((?:^|[\s;&|(])([A-Za-z_][A-Za-z0-9_]*)=)([^\s'\";&|)]+)"


def _may_hold(text: str, needs: tuple[str, ...], ignore_case: bool = False) -> bool:
    """Can a pattern whose every match holds one of ``needs`` match ``text``? (always, for non-ASCII text)"""
    if not text.isascii():
        return True
    if ignore_case:
        text = text.lower()
    return any(n in text for n in needs)


def looks_secret(name: str) -> bool:
    """Names such as ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD``, ``PGPASS``."""
    return bool(re.search(_SECRET_NAME[0], name, _SECRET_NAME[1]))


def scrub_value_shapes(text: str) -> str:
    """Replace the secret-shaped values in ``text`` (URL credentials, bearer tokens, key formats)."""
    if not text or not isinstance(text, str):
        return text
    for pattern, flags, repl, needs in _SHAPES:
        if _may_hold(text, needs, bool(flags & re.IGNORECASE)):
            text = re.sub(pattern, repl, text, flags=flags)
    return text


def scrub_shapes(text: str) -> str:
    """:func:`scrub_value_shapes`, plus secret flags and secret ``NAME=value`` inside one word (``sh -c '...'``)."""
    if not text or not isinstance(text, str):
        return text
    text = scrub_value_shapes(text)
    if "-" in text and _may_hold(text, _INLINE_FLAG_NEEDS, ignore_case=True):
        text = re.sub(_INLINE_FLAG[0], lambda m: m.group(1) + REDACTED, text, flags=_INLINE_FLAG[1])
    if "=" in text:
        text = re.sub(_INLINE_ASSIGN, lambda m: m.group(1) + (REDACTED if looks_secret(m.group(2)) else m.group(3)), text)
    if _may_hold(text, _GLUED_CLIENT_NEEDS) and re.search(_GLUED_PASSWORD_CLIENTS, text):  # sh -c 'mysql -uroot -pSECRET db'
        text = re.sub(_GLUED_PASSWORD, lambda m: m.group(1) + REDACTED, text)
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
    name = word.rsplit("/", 1)[-1]
    return _may_hold(name, _GLUED_CLIENT_NEEDS) and bool(re.fullmatch(_GLUED_PASSWORD_CLIENTS, name))


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
        m = re.match(_ENV_ASSIGN[0], word, _ENV_ASSIGN[1]) if "=" in word else None
        if m and looks_secret(m.group(1)):
            out.append(f"{m.group(1)}={REDACTED}")
            continue
        if word.startswith("-") and "=" in word:
            flag, _, value = word.partition("=")
            if re.match(_SECRET_FLAG[0], flag, _SECRET_FLAG[1]) and value:
                out.append(f"{flag}={REDACTED}")
                continue
        if word.startswith("-") and re.match(_SECRET_FLAG[0], word, _SECRET_FLAG[1]):
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
    text = str(text)
    if "\x1b" in text:
        text = re.sub(_ANSI, "", text)
    text = text.replace("\r\n", "\n").replace("\t", " ")
    if not text.isprintable():  # some character other than a printable one (a newline, a control character)
        text = re.sub(_CONTROL, "", text)
    text = text.strip()
    text = scrub_value_shapes(text)  # messages are merlin's prose: only values shaped like secrets go
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text


def jobs_shown(jobs: list[dict[str, Any]], most: int = 5) -> str:
    """``id (STATUS), id (STATUS), ...``: the first ``most`` of a cluster's jobs merlin did not submit
    (``ControlPlane.foreign_jobs``), as every message about them names them."""
    return ", ".join(f"{j['id']} ({j['status']})" for j in jobs[:most]) + (", ..." if len(jobs) > most else "")
