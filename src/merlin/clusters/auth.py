"""Ray token authentication (``RAY_AUTH_MODE=token``) without ever storing the token.

Ray 2.60 reads the token from ``RAY_AUTH_TOKEN``, from the file named by
``RAY_AUTH_TOKEN_PATH``, or from ``~/.ray/auth_token``; its HTTP jobs API wants
``Authorization: Bearer <token>``. merlin records only where the token comes
from (a 0600 file or an environment variable's name) and builds the header
when it talks to the cluster.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from merlin.errors import BadInput, Blocked


def generate_token_file(path: Path) -> Path:
    """Create ``path`` with a fresh random token, mode 0600 from the first byte."""
    import secrets  # only when a token is made: reading one (every submit) does not need it

    from merlin.atomic import atomic_write_bytes, ensure_dir

    ensure_dir(path.parent, private=True)
    atomic_write_bytes(path, secrets.token_hex(32).encode("ascii"), mode=0o600)  # mkstemp: 0600 before any byte
    return path


#: Ray's own tokens are 64 hex characters; a token shorter than this is guessable.
MIN_TOKEN_CHARS = 16
#: A token file larger than this is not a token (it is read whole, so it is bounded first).
MAX_TOKEN_BYTES = 4096


def _read_token_bytes(path: Path) -> str:
    """The token in ``path``: a regular file (never a FIFO, which would block the reader forever),
    at most ``MAX_TOKEN_BYTES``, printable ASCII with no blank inside. ``BadInput`` otherwise."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of hanging; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BadInput(f"token file {path} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"token file {path} is a directory, not a file") from None
    except OSError as exc:
        raise BadInput(f"token file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"token file {path} is not a regular file (a FIFO, device or socket); give a file holding the token")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise BadInput(f"token file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); make it readable by its owner only (mode 600)")
        if st.st_size > MAX_TOKEN_BYTES:
            raise BadInput(f"token file {path} is {st.st_size} bytes; a token file holds one token of at most {MAX_TOKEN_BYTES} bytes")
        data = os.read(fd, MAX_TOKEN_BYTES + 1)
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise BadInput(f"token file {path} is not text (a token is printable ASCII)") from None
    if not text:
        raise BadInput(f"token file {path} is empty")
    if any(not ch.isprintable() or ch.isspace() for ch in text):
        raise BadInput(f"token file {path} holds blanks or control characters; a token is one word of printable ASCII")
    if len(text) < MIN_TOKEN_CHARS:
        raise BadInput(f"token file {path} holds a {len(text)}-character token; use at least {MIN_TOKEN_CHARS} random characters (e.g. 64 hex digits)")
    return text


def check_token_file(path: Path) -> Path:
    """A token file must be a regular file readable by its owner only, holding one printable token."""
    _read_token_bytes(path)
    return path


def read_token(auth, cluster_name: str, run_hint: str = "") -> str | None:
    """The token for a cluster record's ``auth``, or ``Blocked`` naming where to put it.

    Returns None for clusters without token authentication.
    """
    if auth is None or auth.mode != "token":
        return None
    if auth.token_env:
        value = os.environ.get(auth.token_env, "").strip()
        if value:
            return value
    if auth.token_file:
        try:
            value = _read_token_bytes(Path(auth.token_file))
        except BadInput:
            value = ""
        if value:
            return value
    where = []
    if auth.token_env:
        where.append(f"set ${auth.token_env}")
    if auth.token_file:
        where.append(f"restore the token file {auth.token_file}")
    fix = " or ".join(where) or "set $RAY_AUTH_TOKEN"
    raise Blocked(
        f"Ray cluster '{cluster_name}' requires a token (RAY_AUTH_MODE=token) and none was found: {fix}{run_hint}"
    )


def headers_for(auth, cluster_name: str, run_hint: str = "") -> dict[str, str]:
    token = read_token(auth, cluster_name, run_hint)
    return {"Authorization": f"Bearer {token}"} if token else {}


def ray_start_env(auth) -> dict[str, str]:
    """Environment for ``ray start``: the mode is always explicit, so a stray
    ``~/.ray/auth_token`` cannot silently switch a cluster to token mode."""
    if auth.mode != "token":
        return {"RAY_AUTH_MODE": "disabled"}
    env = {"RAY_AUTH_MODE": "token"}
    if auth.token_file:
        env["RAY_AUTH_TOKEN_PATH"] = auth.token_file
    elif auth.token_env:
        value = os.environ.get(auth.token_env, "").strip()
        if not value:
            raise BadInput(f"`token_env` {auth.token_env}: ${auth.token_env} is not set", argument="token_env")
        env["RAY_AUTH_TOKEN"] = value
    return env
