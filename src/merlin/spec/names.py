"""The one rule for names that become directory or file names (target,
deployment and credential names), applied when a spec is loaded.

It is the rule ``merlin.ledger.paths.validate_name`` applies when a run is
executed: 1-128 letters, digits, '.', '_' or '-', starting with a letter or
digit, and never ``..`` (tests/test_spec_names.py keeps the two in step). A
name that ``plan`` accepts is therefore never refused later by ``execute``.
"""

from __future__ import annotations

import re

#: the characters and length (what a regular expression without look-ahead can say)
NAME_CHARS = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
#: the whole rule, as published in the JSON Schemas
NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
NAME_RULE = "letters, digits, '_', '.', '-', starting with a letter or digit, at most 128, no '..'"

_NAME = re.compile(NAME_PATTERN[:-1] + r"\Z")  # \Z: '$' would accept a trailing newline


def is_safe_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.match(value) is not None
