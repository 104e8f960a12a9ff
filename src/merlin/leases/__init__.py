"""Leases on scarce lab hardware: the inventory, the lease book and its policy (see docs/leases.md).

The package stands on its own: the run code does not import it, and it
imports nothing from the run code. Importing it is cheap; the book reads
and writes plain JSON under ``resources/`` of the state root.
"""
