"""The facade's TargetGen face: validate, plan, explain, orchestrate, status, answer, retry and
the review of a task, each delegating to :mod:`merlin.integrations.targetgen_ops`.

A part of :class:`merlin.controlplane.ControlPlane` (its base class), kept in its own module so the
facade stays one screenful per concern; it holds no state of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:  # pragma: no cover
    from merlin.integrations.targetgen_ops import Explanation, ReviewPrompt, ReviewQueue, ReviewResponse, Validation, WrittenPlan
    from merlin.targetgen.executor import AnswerResult, ExecuteResult, OrchestrateResult, RetryResult

#: a path as given by a caller (a spec, an overlay, an output root, a target directory)
PathArg = str | os.PathLike[str]


@overload
def _path(p: PathArg) -> str | Path: ...
@overload
def _path(p: None) -> None: ...
@overload
def _path(p: PathArg | None) -> str | Path | None: ...
def _path(p: PathArg | None) -> str | Path | None:
    """A path argument as the TargetGen parts take it: a string stays as given (its errors quote it so)."""
    return p if p is None or isinstance(p, str | Path) else Path(p)


class TargetGenFace:
    """TargetGen's operations on spec files and target directories (no run is recorded here)."""

    def targetgen_validate(self, capability: PathArg, overlay: PathArg | None = None, *, strict: bool = False) -> Validation:
        """Check a capability spec (and overlay); with ``strict`` the pair's warnings are the error."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.validate(_path(capability), _path(overlay), strict=strict)

    def targetgen_plan(self, capability: PathArg, overlay: PathArg | None = None, *, out_dir: PathArg | None = None, strict: bool = False) -> WrittenPlan:
        """Write the plan (support plan, task graph, verification manifest) under ``<out_dir>/<target>/``."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.plan(_path(capability), _path(overlay), out_dir=_path(out_dir), strict=strict)

    def targetgen_explain(self, capability: PathArg, overlay: PathArg | None = None, *, strict: bool = False) -> Explanation:
        """The plan with the reason behind every decision (writes nothing)."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.explain(_path(capability), _path(overlay), strict=strict)

    def targetgen_orchestrate(
        self,
        capability: PathArg,
        overlay: PathArg | None = None,
        *,
        out_dir: PathArg | None = None,
        prompt_backend: str | None = None,
        reset: bool = False,
        strict: bool = False,
    ) -> OrchestrateResult:
        """Write the execution bundle, briefs, prompt packets and state of a target (progress kept unless ``reset``)."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.orchestrate(_path(capability), _path(overlay), out_dir=_path(out_dir), prompt_backend=prompt_backend, reset=reset, strict=strict)

    def targetgen_status(self, target_dir: PathArg) -> ExecuteResult:
        """Every task (state, stage, attempts, last validation), the open questions and what waits."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.status(_path(target_dir))

    def targetgen_answer(self, target_dir: PathArg, question_id: str, choice: str, note: str | None = None) -> AnswerResult:
        """Answer an open operator question (recorded under the target lock; the next execute applies it)."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.answer(_path(target_dir), question_id, choice, note)

    def targetgen_retry(self, target_dir: PathArg, task: str | None = None, reason: str | None = None) -> RetryResult:
        """Return a blocked or failed task (default: every one) to planned, recording why."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.retry(_path(target_dir), task, reason)

    def targetgen_review(self, target_dir: PathArg | None = None) -> ReviewQueue:
        """Open operator questions and tasks awaiting a response, of one target or of every target under the output root."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.review_queue(_path(target_dir))

    def targetgen_prompt(self, target_dir: PathArg, task_id: str | None = None) -> ReviewPrompt:
        """The prompt packet of a task awaiting a response (default: the one that does), and where its response goes."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.review_prompt(_path(target_dir), task_id)

    def targetgen_respond(self, target_dir: PathArg, task_id: str, text: str, *, by: str) -> ReviewResponse:
        """Write the response of a task awaiting one where the executor reads it; ``by`` is recorded."""
        from merlin.integrations import targetgen_ops

        return targetgen_ops.review_respond(_path(target_dir), task_id, text, by=by)
