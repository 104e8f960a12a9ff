"""How ``./scripts/test`` (``-n 3 --dist loadgroup``) spreads the run over its workers.

Groups. xdist's loadgroup keeps the tests of an ``xdist_group`` on one worker through a suffix it
adds to each test's node id, which pytest 9.2 no longer takes (pytest-xdist#1386): every test then
runs wherever. Here the workers tell the controller the groups another way: at collection each writes
the groups of its tests to the run's shared dir (``xdist-groups.json``, the same from every worker),
and the controller's scheduler (xdist's loadscope scheduler, which reads that file instead of a
suffix) sends each group to one worker as one unit, the largest first. The groups are the
``xdist_group`` marks (the Slurm tests) and, in one group of their own, the tests that start heads
(``ray_own_head`` and ``ray_exclusive``).

Order. One head of a test's own starts at a time (tests/ray_fixtures.py), so the tests that start
heads, one group, start at once on one worker and run one after another (no worker waits for the
own-head slot), while another runs the Slurm group and the rest take the tests that need no Ray; the
tests of the shared head come last, on every worker at once, where an exclusive turn would idle
them. Within each part the slow tests come first, so the run does not end waiting on one of them.
Every worker collects the same order (xdist checks it): the sort is stable and reads marks only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

#: the group of the tests that start heads of their own
HEADS_GROUP = "ray_heads"
GROUPS_FILE = "xdist-groups.json"


def group_of(item: pytest.Item) -> str | None:
    """The unit a test is scheduled in: its ``xdist_group`` (names joined, as xdist joins them), the
    heads group, or None (a unit of its own)."""
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
    if names:
        return "_".join(names)
    return HEADS_GROUP if starts_heads(item) else None


def starts_heads(item: pytest.Item) -> bool:
    return item.get_closest_marker("ray_own_head") is not None or item.get_closest_marker("ray_exclusive") is not None


def rank(item: pytest.Item) -> tuple[int, int]:
    """The tests that start heads, then the tests that need no Ray, then the shared head's; slow ones first in each."""
    slow = 0 if item.get_closest_marker("slow") is not None else 1
    if starts_heads(item):
        return 0, slow
    return (2 if item.get_closest_marker("ray") is not None else 1), slow


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: the groups of what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # one process (-n 0): nothing to spread
        return
    items.sort(key=rank)
    groups = {item.nodeid: group for item in items if (group := group_of(item)) is not None}
    from tests.ray_fixtures import shared_dir

    path = shared_dir(config) / GROUPS_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(groups, sort_keys=True))
    os.replace(tmp, path)  # both workers write the same text: whichever lands last is the same file


def read_groups(shared: Path) -> dict[str, str]:
    try:
        data = json.loads((shared / GROUPS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """In the controller, for ``--dist loadgroup``: xdist's loadscope scheduler, scoped by the groups the workers wrote."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    from tests.ray_fixtures import shared_dir

    class GroupScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first asked once every worker has collected, so has written the file
                self.groups = read_groups(shared_dir(config))
            group = self.groups.get(nodeid)
            return f"@{group}" if group is not None else nodeid

    return GroupScheduling(config, log)
