"""The CLI's defaults from config files (docs/config.md).

Two TOML files, both optional: the user's ``$XDG_CONFIG_HOME/merlin/config.toml``
(``~/.config/merlin/config.toml``) and a project's ``merlin.toml`` (the nearest one
in the working directory or a parent). A value comes from, first to last: the
command's flag, an environment variable, the project file, the user file, merlin's
default. :func:`load` returns every key with where its value came from (``merlin
config show``); a bad file is one line naming the file and the key (exit 2).

    state_root = "build/generated/ray"   # relative to the file's directory
    cluster = "lab"
    engine = "ray"
    output = "wide"                      # table, wide, json or name
    [retention]                          # what `jobs prune` removes by default
    older_than = "30d"
    status = ["succeeded", "cancelled"]
    auto = true                          # and prune so by itself, once a day (merlin.control.retention)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from merlin.errors import BadInput
from merlin.ledger.paths import DEFAULT_STATE_ROOT, STATE_ROOT_ENV

PROJECT_FILE = "merlin.toml"
OUTPUTS = ("table", "wide", "json", "name")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _engine(value: Any) -> str | None:
    from merlin.engines.registry import names

    return value if value in names() else None


def _output(value: Any) -> str | None:
    return value if value in OUTPUTS else None


def _duration(value: Any) -> str | None:
    from merlin.durations import BadDuration, parse_duration

    try:
        parse_duration(value, "older_than")
    except (BadDuration, TypeError):
        return None
    return str(value)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _statuses(value: Any) -> list[str] | None:
    from merlin.ledger.status import RunStatus

    ok = isinstance(value, list) and all(isinstance(v, str) and v in {s.value for s in RunStatus} and RunStatus(v).is_terminal() for v in value)
    return list(value) if ok else None


class Key:
    """One setting: its environment variable, its check (the value, or None when refused) and what it expects.
    (Plain classes, not dataclasses: this module is read on every command, and a dataclass costs a compile.)"""

    __slots__ = ("check", "default", "env", "expects")

    def __init__(self, env: str | None, check: Callable[[Any], Any], expects: str, default: Any = None) -> None:
        self.env, self.check, self.expects, self.default = env, check, expects, default


def _engines_text() -> str:
    from merlin.engines.registry import names

    return "one of " + ", ".join(names())


KEYS: dict[str, Key] = {
    "state_root": Key(STATE_ROOT_ENV, _text, "a directory path", str(DEFAULT_STATE_ROOT)),
    "cluster": Key("MERLIN_CLUSTER", _text, "a cluster name", "default"),
    "engine": Key("MERLIN_ENGINE", _engine, "ENGINES"),
    "output": Key("MERLIN_OUTPUT", _output, "one of " + ", ".join(OUTPUTS), "table"),
    "retention.older_than": Key(None, _duration, "a duration such as 30d or 12h"),
    "retention.status": Key(None, _statuses, "a list of ended statuses (blocked, succeeded, failed, cancelled, lost)"),
    "retention.auto": Key(None, _bool, "true or false", False),
}


class Setting:
    """A key's value and where it came from: ``env:NAME``, a file's path, or ``default``."""

    __slots__ = ("key", "origin", "value")

    def __init__(self, key: str, value: Any, origin: str) -> None:
        self.key, self.value, self.origin = key, value, origin


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "merlin" / "config.toml"


def project_file(start: Path | None = None) -> Path | None:
    """The nearest ``merlin.toml`` in ``start`` (the working directory) or a parent."""
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the working directory was removed
        return None
    for d in (here, *here.parents):
        candidate = d / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


_READ: dict[tuple[str, int, int], dict[str, Any]] = {}  # (path, mtime, size) -> settings: one parse per command


def read_file(path: Path) -> dict[str, Any]:
    """The checked settings of one file (an absent file: none)."""
    try:
        st = path.stat()
    except OSError:
        return {}
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _READ:
        _READ[key] = _parse(path)
    return _READ[key]


def _parse(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML: {exc} (fix the file, or move it away)") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    out = {}
    for key, value in _flatten(data).items():
        spec = KEYS.get(key)
        if spec is None:
            raise BadInput(f"{path}: unknown key {key!r} (known: {', '.join(KEYS)})")
        checked = spec.check(value)
        if checked is None:
            expects = _engines_text() if spec.expects == "ENGINES" else spec.expects
            raise BadInput(f"{path}: key {key!r} = {value!r}: expected {expects}")
        if key == "state_root":
            checked = str((path.parent / os.path.expanduser(checked)).resolve())
        out[key] = checked
    return out


_LOADED: dict[tuple[str | None, ...], dict[str, Setting]] = {}


def load(cwd: Path | None = None) -> dict[str, Setting]:
    """Every key's value and origin below the flags: environment, project file, user file, default
    (looked up once per working directory and environment: each shared option of a command asks)."""
    where = (str(cwd or os.getcwd()), os.environ.get("XDG_CONFIG_HOME"), os.environ.get("HOME"), *(os.environ.get(k.env) for k in KEYS.values() if k.env))
    if where not in _LOADED:
        _LOADED.clear()
        _LOADED[where] = _load(cwd)
    return _LOADED[where]


def forget() -> None:
    """Drop what :func:`load` found: the next command reads the files again."""
    _LOADED.clear()


def _load(cwd: Path | None) -> dict[str, Setting]:
    files = [f for f in (project_file(cwd), user_file()) if f is not None]
    read = [(str(f), read_file(f)) for f in files]
    out: dict[str, Setting] = {}
    for key, spec in KEYS.items():
        env = os.environ.get(spec.env) if spec.env else None
        if env:
            if spec.check(env) is None:
                expects = _engines_text() if spec.expects == "ENGINES" else spec.expects
                raise BadInput(f"${spec.env}={env!r}: expected {expects} (unset it or fix it)")
            out[key] = Setting(key, env, f"env:{spec.env}")
            continue
        for origin, values in read:
            if key in values:
                out[key] = Setting(key, values[key], origin)
                break
        else:
            default = spec.default
            if key == "engine":
                from merlin.engines.registry import DEFAULT_ENGINE

                default = DEFAULT_ENGINE
            out[key] = Setting(key, default, "default")
    auto = out["retention.auto"]
    if auto.value is True and out["retention.older_than"].origin == "default":
        raise BadInput(f'{auto.origin}: [retention] auto = true needs older_than (e.g. older_than = "30d"), or set auto = false')
    return out


def retention_policy() -> tuple[float, list[str]] | None:
    """``[retention] auto = true``: the policy (older_than seconds, statuses) that applies itself; else None."""
    if value("retention.auto") is not True:
        return None
    from merlin.durations import parse_duration

    return parse_duration(value("retention.older_than"), "older_than"), list(value("retention.status") or [])


_SEEN: list[tuple[tuple[str, int, int, int] | None, ...]] = []


def files_changed() -> bool:
    """Whether the config files (which one applies, and each one's bytes as ``stat`` sees them) changed
    since the last call; a change drops what :func:`load` found, so the next look reads them again.
    For a long-lived process (the gateway): one command reads the files once."""
    def seen(path: Path | None) -> tuple[str, int, int, int] | None:
        try:
            st = path.stat() if path is not None else None
        except OSError:
            return None
        return (str(path), st.st_mtime_ns, st.st_size, st.st_ino) if st is not None else None

    now = (seen(project_file()), seen(user_file()))
    if _SEEN and _SEEN[0] == now:
        return False
    _SEEN[:] = [now]
    forget()
    return True


def live_retention_policy() -> tuple[float, list[str]] | None:
    """:func:`retention_policy` as the files say now (a server's policy follows an edit of them); a file
    made invalid meanwhile raises its BadInput, as at the start."""
    files_changed()
    return retention_policy()


def keep_retention(cp: Any) -> None:
    """``[retention] auto = true``: after a command that recorded a run, the day's prune by the policy,
    detached (merlin.control.retention). A prune that cannot start is a warning: the run is recorded."""
    policy = retention_policy()
    if policy is None:
        return
    from merlin.errors import MerlinError

    try:
        cp.keep_retention(*policy)
    except (MerlinError, OSError) as exc:
        from merlin.cli.output import warn

        warn(f"retention: the day's prune did not start: {getattr(exc, 'message', None) or exc}")


def value(key: str) -> Any:
    """One key's value below the flags (None: merlin's own default applies)."""
    setting = load()[key]
    return None if setting.origin == "default" else setting.value
