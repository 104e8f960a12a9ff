"""Run environments (docs/environments.md): what a run runs with, built once per spec by uv.

``spec``: the canonical spec and the env id; ``cache``: the cache directory (envs,
locks, state files); ``build``: the builder (a temp dir renamed into place, one lock
per env id that works on NFS); ``launch``: ``python -m merlin.envs.launch``, the one
launcher every engine runs the command through (``argv``: its command line;
``warm``: the ``/bin/sh`` lines before it for a ready env); ``snapshot``: the working directory,
content-addressed under the state root; ``prune``: least-recently-used eviction.
Nothing here imports pydantic: the launcher runs on nodes with plain dicts.
"""
