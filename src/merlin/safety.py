"""Input checks shared by the CLI and the Python API (standard library only).

One place for the rules that keep user input from doing damage: no system
tree as a target directory or state root, no NUL byte in a path, argv or env
entry (the OS would truncate or refuse it), and numbers that are finite and
in range (NaN and Infinity are not JSON, negative counts fail late inside Ray).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from merlin.errors import BadInput, named

#: System trees merlin must never write into, nor anything below them.
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot")
#: Shared top-level directories: refused themselves (indexing them reads everyone's files); their subdirectories are fine.
SHARED_DIRS = ("/home", "/Users", "/tmp", "/var", "/var/tmp", "/run", "/opt", "/srv", "/mnt", "/media", "/root", "/snap")


def system_path_problem(path: Path) -> str | None:
    """Why ``path`` (absolute, resolved) is no place for merlin's files, or None."""
    path = Path(path)
    if path == Path(path.anchor):
        return "is the filesystem root"
    if path == Path.home().resolve():
        return "is your home directory itself"
    if str(path) in SHARED_DIRS:
        return "is a shared system directory"
    tree = next((t for t in SYSTEM_TREES if path == Path(t) or Path(t) in path.parents), None)
    return f"is inside the system tree {tree}" if tree else None


def check_target_dir(tdir: Path) -> Path:
    """Refuse a target directory that would index (and let a run write into) the system or a whole home."""
    tdir = Path(tdir)
    why = system_path_problem(tdir)
    if why:
        raise BadInput(f"`target_dir` {tdir} {why}; choose a directory of its own, e.g. ./out/NAME (or omit it)", argument="target_dir")
    return tdir


def check_state_root(root: Path) -> Path:
    """Refuse a state root in a system tree (``/`` would write ``/runs/<id>/``)."""
    root = Path(root)
    why = system_path_problem(root)
    if why:
        raise BadInput(f"`state_root` {root} {why}; choose a directory of its own, e.g. ./build/merlin-state", argument="state_root")
    return root


def no_nul(value: Any, what: str) -> Any:
    """A string (or path) with a NUL byte cannot reach the OS: refuse it by name
    (``what``: an argument's name or a label, see :func:`merlin.errors.named`)."""
    if isinstance(value, (str, bytes)) and ("\x00" in value if isinstance(value, str) else b"\x00" in value):
        label, argument = named(what)
        raise BadInput(f"{label} {str(value)!r} contains a NUL byte; remove it", argument=argument)
    return value


def no_nul_in(values: Iterable[Any], what: str) -> None:
    for v in values:
        no_nul(str(v), what)


def no_nul_env(env: Mapping[str, Any] | None) -> None:
    for k, v in (env or {}).items():
        if "\x00" in f"{k}{v}":
            raise BadInput(f"`env` {str(k)!r}: {'its name' if chr(0) in str(k) else 'its value'} contains a NUL byte; remove it", argument="env")


def check_number(
    value: Any,
    what: str,
    *,
    minimum: float | None = 0,
    maximum: float | None = None,
    above_minimum: bool = False,
    integer: bool = False,
    argument: str | None = None,
) -> Any:
    """A finite number in range, or ``BadInput`` naming ``what`` (an argument's name or a label,
    see :func:`merlin.errors.named`; ``argument`` names it when the label is other words).
    None passes through."""
    if value is None:
        return None
    label, named_argument = named(what)
    argument = argument or named_argument

    def bad(text: str) -> BadInput:
        return BadInput(f"{label} {text}", argument=argument)

    if isinstance(value, bool):
        raise bad(f"{value!r}: expected a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond every float: out of any range merlin takes
        raise BadInput(f"{label}: a {len(str(abs(value)))}-digit number is out of range", argument=argument) from None
    except (TypeError, ValueError):
        raise bad(f"{value!r}: expected a number") from None
    if not math.isfinite(number):
        raise bad(f"{value}: expected a finite number (not NaN or infinity)")
    if integer and number != int(number):
        raise bad(f"{value}: expected a whole number")
    if minimum is not None and (number <= minimum if above_minimum else number < minimum):
        raise bad(f"{value}: must be {'>' if above_minimum else '>='} {minimum:g}")
    if maximum is not None and number > maximum:
        raise bad(f"{value}: must be <= {maximum:g}")
    return value
