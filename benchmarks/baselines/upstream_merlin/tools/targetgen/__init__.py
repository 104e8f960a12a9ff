"""Planner-first TargetGen support for Merlin."""

from .executor import (
    answer_operator_request,
    execute_bundle,
    load_execution_environment_from_dir,
    persist_execution_environment,
    prepare_execution_environment,
    render_execution_status,
)
from .generator import emit_generation_artifacts, emit_mutation_artifacts
from .loader import load_capability_spec, load_deployment_overlay
from .orchestrator import (
    build_execution_bundle,
    build_execution_state,
    render_prompt_packets,
    render_task_briefs,
)
from .planner import build_support_plan, build_task_graph, render_explain_text
from .prompts import load_provider_config

__all__ = [
    "answer_operator_request",
    "build_execution_bundle",
    "build_execution_state",
    "build_support_plan",
    "build_task_graph",
    "execute_bundle",
    "emit_generation_artifacts",
    "emit_mutation_artifacts",
    "load_capability_spec",
    "load_deployment_overlay",
    "load_execution_environment_from_dir",
    "load_provider_config",
    "persist_execution_environment",
    "prepare_execution_environment",
    "render_explain_text",
    "render_execution_status",
    "render_prompt_packets",
    "render_task_briefs",
]
