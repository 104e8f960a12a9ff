"""merlin: control plane for hardware-target enablement.

Importing this package is cheap and never imports Ray: heavy modules are
loaded by the commands that need them.
"""

__version__ = "0.1.0"
