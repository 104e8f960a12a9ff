"""Input checks of the control plane: each refuses with a one-line ``BadInput``."""

from __future__ import annotations

from collections.abc import Mapping

from merlin.errors import BadInput

_ENV_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

from merlin.safety import check_number, check_target_dir, no_nul, no_nul_env, no_nul_in  # noqa: E402,F401  (the shared rules)


def check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for k, v in (env or {}).items():
        if not k or k[0].isdigit() or not set(k) <= _ENV_NAME_OK:
            raise BadInput(f"`env` {k}=...: invalid environment variable name", argument="env")
        out[k] = str(v)
    return out


def check_resources(num_cpus: float | None, num_gpus: float | None, resources: Mapping[str, float] | None = None) -> None:
    for name, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        check_number(v, name)
    for k, v in (resources or {}).items():
        check_number(v, f"`resources` {k}", argument="resources")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no detail'}"
