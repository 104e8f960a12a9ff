"""Operator requests: what a gate asks, the options it offers, what each does.

Every request has a recommended option, and the recommended option always
lets the flow go on while recording honestly what was not done (so a script
that always answers the recommended option reaches ``completed``). Options
that let the flow go on start with ``continue`` or say what they confirm
(``device_available``, ``credential_available``, ``applied_on_branch``);
``retry_after_fix`` runs the failed check again at the next execute;
``pause`` leaves the question open; ``mark_blocked`` blocks the task.
"""

from __future__ import annotations

from typing import Any

PAUSE = {
    "id": "pause",
    "label": "Pause",
    "description": "Record the answer and stop here; the question stays open and is asked again by the next execute.",
}
MARK_BLOCKED = {
    "id": "mark_blocked",
    "label": "Mark the task blocked",
    "description": "Record the task as blocked with this question as the reason; retrying the task (targetgen retry) brings it back.",
}
RETRY = {
    "id": "retry_after_fix",
    "label": "Retry after fixing it",
    "description": "Fix the cause first; the next execute runs the failed check again.",
}

KINDS = ("probe", "credential", "device", "validation", "branch_gate")


def options_for(kind: str, **facts: Any) -> tuple[list[dict[str, str]], str]:
    """(options, recommended option id) for a request kind."""
    if kind == "probe":
        sdks = ", ".join(facts.get("sdks", []))
        return [
            {
                "id": "continue_without_sdk",
                "label": "Continue without the SDK",
                "description": f"Record the probe of {sdks} as skipped, with its failure as the reason, and go on. "
                "Validation commands that need the SDK will fail and ask again. Later tasks of this target "
                "that need the same SDK reuse this answer if their probe fails too.",
            },
            {
                **RETRY,
                "description": f"Install or fix {sdks} (or set deployment.preflight.probes in the overlay); "
                "the next execute probes again.",
            },
            PAUSE,
            MARK_BLOCKED,
        ], "continue_without_sdk"
    if kind == "credential":
        env = facts["env"]
        return [
            {
                "id": "continue_without_credential",
                "label": "Continue without the credential",
                "description": f"Record the credential as missing and skipped (${env} is not set) and go on; "
                "steps that need it are not validated. Later tasks of this target reuse this answer.",
            },
            {
                "id": "credential_available",
                "label": "Confirm the credential is available",
                "description": "The tools get it another way (for example a credential helper): record your confirmation "
                "(never its value) and go on. Later tasks of this target reuse this answer.",
            },
            {**RETRY, "description": f"Export {env} in the environment of execute; the next execute checks again."},
            PAUSE,
            MARK_BLOCKED,
        ], "continue_without_credential"
    if kind == "device":
        return [
            {
                "id": "continue_without_device",
                "label": "Continue without the device",
                "description": "Record the device gate as skipped (not validated on hardware) and go on. "
                "Later tasks of this target reuse this answer if their device check fails too.",
            },
            {
                "id": "device_available",
                "label": "Confirm the device is available",
                "description": "You checked the device yourself: record your confirmation and go on. "
                "Later tasks of this target reuse it if their device check fails too.",
            },
            {
                **RETRY,
                "description": "Connect or fix the device (or set deployment.preflight.device_probe in the overlay); "
                "the next execute runs the device probe again.",
            },
            PAUSE,
            MARK_BLOCKED,
        ], "continue_without_device"
    if kind == "validation":
        check = facts["check_id"]
        return [
            {
                "id": "continue_skip_validation",
                "label": "Continue and record the validation as skipped",
                "description": f"Record validation {check} as skipped, with its failure as the reason, and go on.",
            },
            {**RETRY, "description": f"Fix the cause; the next execute runs validation {check} again."},
            PAUSE,
            MARK_BLOCKED,
        ], "continue_skip_validation"
    if kind == "branch_gate":
        return [
            {
                "id": "continue_without_mutation",
                "label": "Continue without mutation",
                "description": "Record the proposal as not applied (no repository file is changed) and complete the task.",
            },
            {
                "id": "applied_on_branch",
                "label": "Confirm you applied the proposal on a dedicated branch",
                "description": "You applied the change yourself on a dedicated branch: record it as applied by the operator "
                "and complete the task.",
            },
            {**PAUSE, "description": "Stop here (for example to switch to a dedicated branch); the question stays open."},
            MARK_BLOCKED,
        ], "continue_without_mutation"
    raise ValueError(f"unknown request kind {kind}")


def public_request(request: dict[str, Any] | None) -> dict[str, Any] | None:
    """The request as scripts see it in --json output."""
    if request is None:
        return None
    return {
        "id": request["id"],
        "task_id": request["task_id"],
        "kind": request["kind"],
        "question": request["question"],
        "options": [{"id": o["id"], "label": o["label"], "description": o["description"]} for o in request["options"]],
        "recommended_option": request["recommended_option"],
        "status": request["status"],
        "opened_at": request["opened_at"],
    }
