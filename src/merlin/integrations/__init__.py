"""Glue between the control plane and the tools whose work it records (TargetGen).

Layer: below the facade (``merlin.controlplane``), above engines, clusters and
the ledger. Nothing here imports ``merlin.cli`` or the facade: functions take
the control plane they work for as ``merlin.control.plane.Plane``.
"""
