"""``merlin targetgen orchestrate|execute|answer|retry|status``: the executor's CLI.

Each command parses its arguments, calls ``merlin.targetgen.executor`` and
renders the result: ``--json`` on stdout, messages and progress on stderr.
Exit codes: 0 completed, 10 waiting for an operator answer or a response,
3 blocked (or the target is locked by another process), 2 bad input.
Heavy imports stay inside the functions so ``merlin --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from merlin.cli.options import JsonOpt, StateRootOpt, choice_option, cluster_option, engine_option, hidden_alias, merged, typed

CapabilityArg = typer.Argument(..., help="Capability spec (capability.yaml).", show_default=False)
OptionalCapabilityArg = typer.Argument(None, help="Capability spec (capability.yaml); or use --target-dir.", show_default=False)
OverlayOpt = typer.Option(None, "--overlay", "-o", help="Deployment overlay YAML.")
OutDirOpt = typer.Option(
    None,
    "--out-dir",
    help="Output root; files go to OUT_DIR/<target.name>/ [default: $MERLIN_TARGETGEN_OUT or build/generated/targetgen]",
)
TargetDirOpt = typer.Option(..., "--target-dir", help="A target directory written by orchestrate (OUT_DIR/<target.name>).")


def _engines() -> list[str]:
    """The engine that runs here first, then every other engine of the registry."""
    from merlin.engines.registry import DEFAULT_ENGINE, names

    return [DEFAULT_ENGINE, *(n for n in names() if n != DEFAULT_ENGINE)]


def _progress(text: str) -> None:
    from merlin.cli.output import message

    message(text)


def _command(target_dir: Path) -> str:
    """``targetgen execute`` of this directory, as the one renderer spells it (with this command's --state-root)."""
    import sys

    from merlin.cli.nextsteps import ARGV, command
    from merlin.nextsteps import Action, step

    return command(step(Action.TARGETGEN_EXECUTE, target_dir=str(target_dir)), ARGV or sys.argv[1:])


def _render_outcome(result: Any, steps: list[dict[str, Any]]) -> None:
    """The human summary of an execute: what happened, then what to do next (``steps``, as commands)."""
    from merlin.cli.nextsteps import say_next
    from merlin.cli.output import message

    data = result.to_json()
    total = len(data["tasks"])
    done = sum(1 for t in data["tasks"] if t["state"] == "completed")
    root = data["target_dir"]
    outcome = data["outcome"]
    if outcome == "completed":
        skipped = [(t["id"], s) for t in data["tasks"] for s in t["skipped"]]
        message(f"{data['target']}: completed ({done}/{total} tasks) in {root}", style="green")
        for task_id, s in skipped:
            message(f"  not validated: {task_id}: {s['what']}: {s['reason']}")
    elif outcome == "awaiting_operator":
        q = data["open_question"]
        message(f"{data['target']}: awaiting_operator at {data['current_task']} ({done}/{total} tasks completed)", style="yellow")
        if q:
            message(f"question {q['id']}:")
            for line in q["question"].splitlines():
                message(f"  {line}")
            for o in q["options"]:
                mark = " (recommended)" if o["id"] == q["recommended_option"] else ""
                message(f"  - {o['id']}{mark}: {o['label']}. {o['description']}")
    elif outcome == "awaiting_response":
        a = data["awaiting_response"]
        message(f"{data['target']}: awaiting_response at {a['task_id']} ({done}/{total} tasks completed)", style="yellow")
        message(f"  prompt:   {a['prompt_file']}")
        message(f"  response: {a['response_file']}")
    elif outcome == "blocked":
        message(f"{data['target']}: blocked ({done}/{total} tasks completed)", style="red")
        for b in data["blocked"]:
            message(f"  {b['task_id']}: {b['reason']}")
    else:
        message(f"{data['target']}: {outcome} ({done}/{total} tasks completed)")
    say_next(steps)


def orchestrate(
    capability: Path = CapabilityArg,
    overlay: Path | None = OverlayOpt,
    out_dir: Path | None = OutDirOpt,
    prompt_backend: str = choice_option(
        "manualllm", "--prompt-backend", choices=["none", "manualllm"], help="manualllm: write a prompt packet per task that needs a proposal; none: briefs only.",
    ),
    reset: bool = typer.Option(False, "--reset", help="Start over: archive the existing state under history/ first."),
    json: bool = JsonOpt,
) -> None:
    """Write the execution bundle, briefs, prompt packets and state for a target (keeps existing progress)."""
    from merlin.cli.output import emit_json, message
    from merlin.targetgen.executor import orchestrate as run

    result = run(capability, overlay, out_dir=out_dir, prompt_backend=prompt_backend, reset=reset, progress=_progress)
    if json:
        emit_json(result.to_json())
        return
    if result.kept_state:
        message(
            f"{result.target}: kept the existing state ({result.completed}/{result.tasks} tasks completed) in "
            f"{result.target_dir}; use --reset to start over"
        )
    else:
        prompts = f", {len(result.prompts_written) + len(result.prompts_kept)} prompt packets" if prompt_backend == "manualllm" else ""
        message(f"orchestrated {result.target}: {result.tasks} tasks{prompts} -> {result.target_dir}/")
        message(f"next: {_command(result.target_dir)}")


def execute(
    ctx: typer.Context,
    capability: Path | None = OptionalCapabilityArg,
    overlay: Path | None = OverlayOpt,
    out_dir: Path | None = OutDirOpt,
    from_dir: Path | None = typer.Option(None, "--target-dir", help="Resume the target directory written by orchestrate (OUT_DIR/<target.name>)."),
    old_from_dir: Path | None = hidden_alias("--from-dir"),
    engine: str = engine_option(
        f"{_engines()[0]}: run here; any other engine ({', '.join(_engines()[1:])}): submit the executor as a run of it. Both record a run in the ledger.",
    ),
    cluster: str | None = cluster_option(),
    wait: bool = typer.Option(False, "--wait", help="--engine ray: wait for the run to end; exit with the executor's code."),
    state_root: Path | None = StateRootOpt,
    run_id: str | None = typer.Option(None, "--run-id", hidden=True, help="Run to report into (set by --engine ray for its job)."),
    json: bool = JsonOpt,
) -> None:
    """Advance the target until a gate: exit 0 completed, 10 awaiting an answer or a response, 3 blocked."""
    from merlin.cli.output import emit_json
    from merlin.errors import BadInput
    from merlin.targetgen.executor import execute as run

    from_dir = merged(from_dir, old_from_dir, "--target-dir", "--from-dir")
    if capability is None and from_dir is None:
        raise BadInput("execute: give a CAPABILITY file or --target-dir DIR")
    if capability is not None and from_dir is not None:
        raise BadInput("execute: give either a CAPABILITY file or --target-dir DIR, not both")
    if from_dir is not None and out_dir is not None:
        raise BadInput("execute: --out-dir goes with a CAPABILITY; --target-dir already names the target directory")
    from merlin.engines.registry import DEFAULT_ENGINE, check_name

    check_name(engine, "execute: --engine")
    if engine == DEFAULT_ENGINE and not typed(ctx, "cluster"):
        cluster = None  # a configured cluster is for the engines that run on one
    if engine != DEFAULT_ENGINE:
        _execute_on_engine(capability, overlay, out_dir, from_dir, engine, cluster, wait, state_root, json)
        return
    if cluster is not None or wait:
        raise BadInput(f"execute: --cluster and --wait go with an engine other than {DEFAULT_ENGINE}")
    from merlin.controlplane import ControlPlane, run_place, targetgen_outcome, targetgen_target
    from merlin.integrations.targetgen_runs import targetgen_needs

    target, target_dir = targetgen_target(capability, overlay, out_dir, from_dir)
    cp = ControlPlane(state_root)
    needs = targetgen_needs(capability, overlay, from_dir)  # the overlay's resources: (queued for first)
    with cp.record_inprocess_run(target=target, target_dir=target_dir, run_id=run_id, leases=needs, progress=_progress) as recorded:
        result = run(from_dir, capability=capability, overlay=overlay, out_dir=out_dir, progress=_progress)
        # attached to a run of another engine: the hints keep that engine (e.g. --engine ray)
        place = run_place(cp.get(recorded.run_id)) if recorded.attached else {}
        text, steps = targetgen_outcome(result, recorded.run_id, **place)
        recorded.finish(result.outcome, exit_code=result.exit_code, message=text, next_steps=steps)
    if json:
        emit_json(result.to_json())
    else:
        _render_outcome(result, steps)
    # inside a Ray job the outcome is in the run record: exit 0 so Ray reports the job succeeded
    raise typer.Exit(0 if recorded.attached else result.exit_code)


def _execute_on_engine(capability, overlay, out_dir, from_dir, engine, cluster, wait, state_root, json) -> None:
    """``execute --engine E``: orchestrate here, run the executor as a run of E (see merlin.integrations.targetgen_runs)."""
    from merlin.cli.common import exit_for_run
    from merlin.cli.nextsteps import say_next
    from merlin.cli.output import emit_json, message
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(state_root)
    rec = cp.targetgen_submit(
        capability=capability, overlay=overlay, out_dir=out_dir, from_dir=from_dir, engine=engine, cluster=cluster, wait=False, progress=_progress,
    )
    if wait and not rec.status.is_terminal() and rec.status.value != "blocked":
        from merlin.cli.waiting import announce, wait_for_run

        if not json:
            announce(rec)
        rec = wait_for_run(cp, rec, quiet=json)
    steps = [s.model_dump() for s in rec.next_steps]
    if json:
        emit_json(rec.model_dump(mode="json"))
    elif rec.status.value != "blocked":
        from merlin.cli.common import said

        message(f"run {rec.run_id} {said(rec.status.value, rec.message)}")
        say_next(steps)
    exit_for_run(rec, waited=wait)


def answer(
    target_dir: Path = TargetDirOpt,
    question_id: str = typer.Option(..., "--question-id", help="The open question's id (see status)."),
    choice: str = typer.Option(..., "--choice", help="One of the question's option ids."),
    note: str | None = typer.Option(None, "--note", help="A note recorded with the answer."),
    json: bool = JsonOpt,
) -> None:
    """Answer an open operator question; execute applies it (even if one is running now)."""
    from merlin.cli.output import emit_json, message
    from merlin.targetgen.executor import answer as run

    result = run(target_dir, question_id, choice, note=note)
    if json:
        emit_json(result.to_json())
        return
    replaced = f" (replaces the pending answer {result.replaces})" if result.replaces else ""
    if result.lock_holder:
        message(
            f"recorded {question_id} -> {choice}{replaced} in answers.jsonl; the target is locked by {result.lock_holder}: "
            "the running execute applies it if it reaches this question, otherwise the next execute does"
        )
    else:
        message(f"recorded {question_id} -> {choice}{replaced}; run {_command(result.target_dir)} to apply it")


def retry(
    target_dir: Path = TargetDirOpt,
    task: str | None = typer.Option(None, "--task", help="The task to retry [default: every blocked or failed task]."),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the task's history)."),
    json: bool = JsonOpt,
) -> None:
    """Return a blocked or failed task to planned (its history records why)."""
    from merlin.cli.output import emit_json, message
    from merlin.targetgen.executor import retry as run

    result = run(target_dir, task, reason=reason)
    if json:
        emit_json(result.to_json())
        return
    for item in result.retried:
        message(f"{item['task_id']}: {item['from_state']} -> planned ({result.reason})")
    message(f"next: {_command(result.target_dir)}")


def status(target_dir: Path = TargetDirOpt, json: bool = JsonOpt) -> None:
    """Every task (state, stage, attempts, last validation) and the open questions."""
    from merlin.cli.output import emit_json
    from merlin.targetgen.executor import status as run

    result = run(target_dir)
    if json:
        emit_json(result.to_json())
        return
    _render_status(result.to_json())


def _render_status(data: dict[str, Any]) -> None:
    from merlin.cli.nextsteps import ARGV, command
    from merlin.cli.output import out, styled
    from merlin.nextsteps import Action, step

    console = out()
    from merlin.cli.tables import GIVE, Column, build, show

    # Task ids, states and question ids stay whole on one line at any width; the notes give way (wrapping
    # between words). Columns drop in a fixed order when the line would not fit (docs/views.md): #, stage,
    # attempts, last validation, then notes.
    wanted = ["#", "task", "state", "stage", "attempts", "last validation", "notes"]
    drops = {"#": 5, "stage": 4, "attempts": 3, "last validation": 2, "notes": 1}
    columns = [Column(h, GIVE, floor=10, words_whole=True, drop=drops[h]) if h in ("last validation", "notes") else Column(h, drop=drops.get(h, 0))
               for h in wanted]
    colours = {"completed": "green", "blocked": "red", "awaiting_operator": "yellow", "preflight_failed": "yellow", "awaiting_response": "yellow"}
    rows = []
    for i, t in enumerate(data["tasks"], start=1):
        lv = t["last_validation"]
        last = f"{lv['id']}: {lv['status']}" + (f" (exit {lv['exit_code']})" if lv.get("exit_code") not in (0, None) else "") if lv else "-"
        notes = []
        if t["open_question"]:
            notes.append(f"question {t['open_question']}")
        if t["blocked_reason"]:
            notes.append(t["blocked_reason"])
        if t["waiting_on"] and t["state"] != "completed":
            notes.append("after " + ", ".join(t["waiting_on"]))
        if t["skipped"]:
            notes.append("not validated: " + ", ".join(s["what"] for s in t["skipped"]))
        cells = {"#": str(i), "task": t["id"], "state": styled(t["state"], colours.get(t["state"], "")), "stage": t["stage"] or "-",
                 "attempts": str(t["attempts"]), "last validation": last, "notes": "; ".join(notes) or "-"}
        rows.append([cells[h] for h in wanted])
    table = build(columns, rows, console.width, title=styled(f"{data['target']}: {data['outcome']}"), title_justify="left")
    show(table, console)
    for q in data["open_questions"]:
        console.print(styled(f"open question {q['id']}", "bold") + styled(f" ({q['kind']}, task {q['task_id']}):"))
        console.print(q["question"], markup=False, highlight=False)
        for o in q["options"]:
            mark = " (recommended)" if o["id"] == q["recommended_option"] else ""
            console.print(f"  - {o['id']}{mark}: {o['label']}", markup=False, highlight=False)
        answer = command(step(Action.TARGETGEN_ANSWER, target_dir=str(data["target_dir"]), question_id=q["id"], choice="OPTION"), ARGV)
        console.print(f"  answer: {answer}", markup=False, highlight=False, soft_wrap=True)  # one line: the terminal may wrap it, Rich never splits it
    if data["awaiting_response"]:
        a = data["awaiting_response"]
        console.print(f"waiting for a response to {a['prompt_file']} in {a['response_file']}", markup=False, highlight=False)
    for a in data["pending_answers"]:
        console.print(f"pending answer: {a['question_id']} -> {a['choice']} (applied by the next execute)", markup=False, highlight=False)
    if data["lock_holder"]:
        console.print(f"locked by {data['lock_holder']}", markup=False, highlight=False)
    last_exec = data.get("last_execute") or {}
    if last_exec.get("outcome") == "interrupted":
        console.print(
            f"the last execute (pid {last_exec.get('pid')}, started {last_exec.get('started_at')}) was interrupted: {last_exec.get('reason') or 'Ctrl-C'}; "
            "execute again to resume",
            markup=False,
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add the executor commands to ``merlin targetgen``."""
    app.command("orchestrate")(orchestrate)
    app.command("execute")(execute)
    app.command("answer")(answer)
    app.command("retry")(retry)
    app.command("status")(status)
