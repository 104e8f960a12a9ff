"""The options of ``merlin ray jobs submit``, as its Typer command declares them (generated: do not edit).

Regenerate with ``python -m merlin.cli.fast_submit --write`` after changing the command;
``tests/test_submit_fast_path.py`` fails until this file is current. Read by
:mod:`merlin.cli.fast_submit`: rows are (parameter, flags, off flags, kind, type, default, (config key, converter)).
"""

from __future__ import annotations

from typing import Any

REQUIRED = "REQUIRED"
FAST = True
HELP: tuple[str, ...] = ('-h', '--help')
ARGUMENT: tuple[str, bool] = ('command', True)
OPTIONS: tuple[tuple[Any, ...], ...] = (
    ('target', ('--target',), (), 'value', 'str', REQUIRED, None),
    ('workflow', ('--workflow',), (), 'value', 'str', REQUIRED, None),
    ('engine', ('--engine',), (), 'value', 'str', 'local', ('engine', 'same')),
    ('target_dir', ('--target-dir',), (), 'value', 'path', None, None),
    ('num_cpus', ('--num-cpus',), (), 'value', 'float', None, None),
    ('num_gpus', ('--num-gpus',), (), 'value', 'float', None, None),
    ('memory', ('--memory',), (), 'value', 'str', None, None),
    ('resource', ('--resource',), (), 'multiple', 'str', None, None),
    ('env', ('--env',), (), 'multiple', 'str', None, None),
    ('wait', ('--wait',), (), 'flag', 'bool', False, None),
    ('cluster', ('--cluster',), (), 'value', 'str', None, ('cluster', 'same')),
    ('lease', ('--lease',), (), 'multiple', 'str', None, None),
    ('time_', ('--time',), (), 'value', 'duration', None, None),
    ('requirements', ('--requirements',), (), 'value', 'path', None, None),
    ('lock', ('--lock',), (), 'value', 'path', None, None),
    ('with_', ('--with',), (), 'multiple', 'str', None, None),
    ('python', ('--python',), (), 'value', 'str', None, None),
    ('working_dir', ('--working-dir',), (), 'value', 'path', None, None),
    ('secret_env', ('--secret-env',), (), 'multiple', 'str', None, None),
    ('index_url', ('--index-url',), (), 'multiple', 'str', None, None),
    ('find_links', ('--find-links',), (), 'multiple', 'str', None, None),
    ('no_index', ('--no-index',), (), 'flag', 'bool', False, None),
    ('env_file', ('--env-file',), (), 'value', 'path', None, None),
    ('retries', ('--retries',), (), 'value', 'int', 0, None),
    ('retries_infra', ('--retries-infra',), (), 'value', 'int', 0, None),
    ('retry_backoff', ('--retry-backoff',), (), 'value', 'duration', None, None),
    ('replicas', ('--replicas',), (), 'value', 'int', None, None),
    ('placement', ('--placement',), (), 'value', 'str', None, None),
    ('name', ('--name',), (), 'value', 'str', None, None),
    ('state_root', ('--state-root',), (), 'value', 'path', None, ('state_root', 'path')),
    ('json', ('--json',), (), 'flag', 'bool', False, ('output', 'json')),
)
