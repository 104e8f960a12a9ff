"""Engines run the commands the ledger records: ``local`` (a supervised
process group) and ``ray`` (Ray Jobs). See :mod:`merlin.engines.base`."""

ENGINES = ("local", "ray")
