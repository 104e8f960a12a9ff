"""A gang of 2 on the real 2-node Slurm cluster (docs/retries.md): the Ray-on-Slurm cluster is one
allocation, so the Ray path serves it; placement spread puts one replica on each node."""

from __future__ import annotations

from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from tests.slurm_support import slurm_root, slurm_turn  # noqa: F401  (fixtures)
from tests.test_retries_ray import gang_killed_and_retried
from tests.test_slurm_runs import _start

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


def test_a_gang_of_two_spread_over_the_two_slurm_nodes(slurm_root: Path) -> None:
    _start(slurm_root, "sg")
    hosts = gang_killed_and_retried(ControlPlane(slurm_root), "sg", "spread")
    assert sorted(hosts) == ["127.0.0.11", "127.0.0.12"]
