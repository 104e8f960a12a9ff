"""Command-line interface: parses arguments and renders output, nothing else.

Business logic lives in ``merlin.targetgen`` and ``merlin.controlplane``; the
commands here call them and print. Keep imports inside command functions so
``merlin --help`` stays fast.
"""
