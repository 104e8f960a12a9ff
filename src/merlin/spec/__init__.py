"""Capability specs and deployment overlays: typed models and a YAML loader
that reports every error as ``FILE:LINE: field.path: problem (expected ...)``."""

from merlin.spec.loader import load_capability, load_overlay, load_pair
from merlin.spec.models import CapabilitySpec, DeploymentOverlay

__all__ = ["CapabilitySpec", "DeploymentOverlay", "load_capability", "load_overlay", "load_pair"]
