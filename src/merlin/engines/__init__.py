"""Engines run the commands the ledger records: ``local`` (a supervised
process group) and ``ray`` (Ray Jobs), chosen from :mod:`merlin.engines.registry`.
See :mod:`merlin.engines.base` for the protocol."""
