"""``jobs submit --env-file runtime.yaml``: a run's environment as YAML (docs/environments.md).

Fields: ``python``, ``requirements`` (a file), ``lock`` (a uv.lock or pylock.toml),
``with`` (packages), ``index_url``, ``find_links``, ``no_index``, ``working_dir``,
``env_vars``, ``secret_env``. Relative paths are relative to the YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from merlin.errors import BadInput
from merlin.spec.run_environment import rebase

#: YAML key -> the facade's runtime key (which keys are paths: merlin.spec.run_environment)
KEYS = {
    "python": "python",
    "requirements": "requirements_file",
    "lock": "lock_file",
    "with": "packages",
    "packages": "packages",
    "index_url": "index_url",
    "find_links": "find_links",
    "no_index": "no_index",
    "working_dir": "working_dir",
    "env_vars": "env_vars",
    "secret_env": "secret_env",
}


def read_env_file(path: Path) -> dict[str, Any]:
    import yaml

    where = Path(path).expanduser().resolve()
    try:
        data = yaml.safe_load(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"`runtime` file {where} does not exist", argument="runtime") from None
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"`runtime` file {where} cannot be read: {str(exc).splitlines()[0]}", argument="runtime") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"`runtime` file {where}: a mapping of fields ({', '.join(KEYS)})", argument="runtime")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise BadInput(f"`runtime` file {where}: unknown field {key!r}; known: {', '.join(KEYS)}", argument="runtime")
        out[KEYS[key]] = rebase(key, value, where.parent)
    return out
