"""Every path under a TargetGen target directory, named in one place.

The ledger's :class:`merlin.ledger.paths.Layout` owns the state root; this
owns ``<out_dir>/<target.name>/``. It lives in targetgen so the planner and
executor stay independent of the control plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TARGET_LOCK_NAME = ".merlin.lock"


@dataclass(frozen=True)
class TargetLayout:
    """Every path under a TargetGen target directory (``<out_dir>/<target.name>/``)."""

    root: Path

    @property
    def bundle(self) -> Path:
        return self.root / "execution_bundle.json"

    @property
    def state(self) -> Path:
        return self.root / "execution_state.json"

    @property
    def task_states(self) -> Path:
        return self.root / "task_states"

    @property
    def requests(self) -> Path:
        return self.root / "operator_requests"

    @property
    def answers(self) -> Path:
        return self.root / "answers.jsonl"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def briefs(self) -> Path:
        return self.root / "briefs"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def lock(self) -> Path:
        return self.root / TARGET_LOCK_NAME

    @property
    def submit_lock(self) -> Path:
        """Held while a run of this directory is checked and recorded, so two submits cannot both pass the check."""
        return self.root / (TARGET_LOCK_NAME + ".submit")

    def task_state(self, task_id: str) -> Path:
        return self.task_states / f"{task_id}.json"

    def log(self, task_id: str) -> Path:
        return self.logs / f"{task_id}.log"

    @property
    def scratch_root(self) -> Path:
        return self.root / "scratch"

    @property
    def proposals(self) -> Path:
        return self.root / "proposals"

    def scratch(self, task_id: str) -> Path:
        return self.scratch_root / task_id

    @staticmethod
    def prompt_name(task_id: str) -> str:
        """``prompts/<task>.prompt.md``, relative to the target directory (as the bundle records it)."""
        return f"prompts/{task_id}.prompt.md"

    @staticmethod
    def response_name(task_id: str) -> str:
        return f"prompts/{task_id}.response.md"

    def prompt(self, task_id: str) -> Path:
        return self.root / self.prompt_name(task_id)

    def response(self, task_id: str) -> Path:
        return self.root / self.response_name(task_id)
