"""Capability specs and deployment overlays: typed models and a YAML loader
that reports every error as ``FILE:LINE: field.path: problem (expected ...)``.

The models are imported on first use (``merlin.spec.CapabilitySpec``): loading a
valid spec never needs them (see ``merlin.spec.fast``).
"""

from typing import Any

from merlin.spec.loader import load_capability, load_overlay, load_pair

__all__ = ["CapabilitySpec", "DeploymentOverlay", "load_capability", "load_overlay", "load_pair"]


def __getattr__(name: str) -> Any:
    if name in ("CapabilitySpec", "DeploymentOverlay"):
        from merlin.spec import models

        return getattr(models, name)
    raise AttributeError(f"module 'merlin.spec' has no attribute {name!r}")
