"""The gateway's operations, one module per group. Importing this package registers every
operation in ``merlin.gateway.registry.OPERATIONS``, in the order of ``GROUPS`` and, within a
group, of its module (the order of tools/list, of the OpenAPI paths and of docs/gateway.md)."""

from importlib import import_module

#: the operation groups, in the order their tools are listed
GROUPS = ("targetgen", "review", "runs", "artifacts", "leases", "clusters", "sweeps")

for _group in GROUPS:
    import_module(f"{__name__}.{_group}")
