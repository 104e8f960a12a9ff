"""Glue between the control plane and the tools whose work it records (TargetGen).

Layer: below the facade (``merlin.controlplane``), above engines, clusters and
the ledger. Nothing here imports ``merlin.cli`` or the facade: functions take
the ControlPlane they work for.
"""
