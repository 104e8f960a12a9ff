"""Prompt packets assembled from layered Markdown fragments.

A fragment is a Markdown file with YAML frontmatter::

    ---
    section: implementation_focus      # one of SECTIONS
    merge: append                      # append (default), prepend or replace
    families: [runtime_hal]            # optional selectors: the fragment applies
    task_ids: [implement_runtime_hal]  # only when every selector given matches

Closed selectors (``families``, ``phases``, ``task_ids``, ``integration_styles``,
``prompt_backends``) are checked: a value that can never match is a
``BadInput`` naming the file and line, with a "did you mean" hint.
``families`` matches the task's family (an integration style or ``shared``)
or one of the target's families (``rules.FAMILY_BY_KIND`` values, ``cpu_only``).
    ---
    Body, a Jinja2 template: {{ target.name }}, {{ isa.features | comma_list }}.

Layers, applied in this order (a later ``replace`` wins):

1. ``base/`` of the library shipped in the package (``merlin/prompts``);
2. ``families/<family>/`` of that library;
3. ``tasks/<task_id>/`` (or ``tasks/<task_id>.md``) of that library;
4. ``prompts/target/`` next to the capability file;
5. ``prompts/overlays/<deployment name>/`` next to the capability file.

Rendering is strict (Jinja2 ``StrictUndefined``): a misspelled variable, a bad
frontmatter key, an unknown section or merge mode is a ``BadInput`` naming the
fragment file (and the line when Jinja knows it). Jinja2 is imported lazily.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merlin.errors import BadInput

#: How proposals are asked for: none (briefs only) or manualllm (a prompt packet per task).
#: Defined here, not in bundle.py, so that bundle -> prompts is the only direction.
PROMPT_BACKENDS = ("none", "manualllm")
DEFAULT_PROMPT_BACKEND = "manualllm"

SECTIONS = (
    "system",
    "goal",
    "target_facts",
    "implementation_focus",
    "evidence",
    "write_scope",
    "acceptance",
    "validation",
    "response_contract",
)
HEADINGS = {
    "system": "System",
    "goal": "Goal",
    "target_facts": "Target facts",
    "implementation_focus": "Implementation focus",
    "evidence": "Evidence",
    "write_scope": "Write scope",
    "acceptance": "Acceptance",
    "validation": "Validation",
    "response_contract": "Response contract",
}
MERGE_MODES = ("append", "prepend", "replace")
SELECTORS = ("families", "phases", "task_ids", "targets", "deployment_profiles", "integration_styles", "prompt_backends")
FRONTMATTER_KEYS = ("section", "merge", *SELECTORS)
# The capability spec's top-level sections, exposed as template names.
SPEC_SECTIONS = (
    "target",
    "platform",
    "execution_model",
    "isa",
    "operations",
    "geometry",
    "memory",
    "numeric",
    "runtime",
    "verification",
    "access",
    "references",
)


def library_root() -> Path:
    """The base prompt library shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "prompts"


@dataclass(frozen=True)
class Fragment:
    path: Path
    layer: str
    section: str
    merge: str
    selectors: dict[str, list[str]]
    body: str
    body_line: int  # line number of the body's first line in the file


@dataclass
class RenderedPrompt:
    task_id: str
    text: str
    sources: list[dict[str, str]] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


# --- loading ----------------------------------------------------------------


def parse_fragment(path: Path, layer: str) -> Fragment:
    """Read one fragment file; every problem is one line naming the file."""
    import yaml

    from merlin.spec.yamlsafe import parse_bounded, read_bounded_text

    text = read_bounded_text(path, what="prompt fragment (Markdown with YAML frontmatter)")  # regular, bounded, UTF-8
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise BadInput(f"{path}:1: prompt fragment must start with YAML frontmatter between '---' lines")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise BadInput(f"{path}:1: prompt frontmatter is not closed (expected a second '---' line)")
    try:
        meta = parse_bounded("".join(lines[1:end]), shown=str(path), line_offset=1)  # alias and node limits
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 2 if mark else 1
        raise BadInput(f"{path}:{line}: bad prompt frontmatter: {exc.problem or 'invalid YAML'}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: bad prompt frontmatter: {str(exc).splitlines()[0]}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise BadInput(f"{path}:2: prompt frontmatter must be a mapping (with at least 'section')")
    for key in meta:
        if key not in FRONTMATTER_KEYS:
            hint = difflib.get_close_matches(str(key), FRONTMATTER_KEYS, n=1, cutoff=0.6)
            expected = f"did you mean '{hint[0]}'?" if hint else "expected one of: " + ", ".join(FRONTMATTER_KEYS)
            raise BadInput(f"{path}: unknown prompt frontmatter key {key!r} ({expected})")
    section = meta.get("section")
    if section is None:
        raise BadInput(f"{path}: prompt frontmatter has no 'section' (expected one of: {', '.join(SECTIONS)})")
    if section not in SECTIONS:
        hint = difflib.get_close_matches(str(section), SECTIONS, n=1, cutoff=0.6)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        raise BadInput(f"{path}: unknown prompt section {section!r} (expected one of: {', '.join(SECTIONS)}{extra})")
    merge = meta.get("merge", "append")
    if merge not in MERGE_MODES:
        raise BadInput(f"{path}: unknown merge mode {merge!r} (expected one of: {', '.join(MERGE_MODES)})")
    selectors: dict[str, list[str]] = {}
    closed = closed_selector_values()
    for key in SELECTORS:
        if key not in meta:
            continue
        value = meta[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise BadInput(f"{path}: prompt frontmatter '{key}' must be a name or a non-empty list of names")
        for item in value:
            if key in closed and item not in closed[key]:
                line = _selector_line(lines[1:end], key, item)
                hint = difflib.get_close_matches(item, closed[key], n=1, cutoff=0.6)
                extra = f"did you mean '{hint[0]}'?" if hint else "expected one of: " + ", ".join(closed[key])
                raise BadInput(f"{path}:{line}: unknown {key} value {item!r} in prompt frontmatter; it would never apply ({extra})")
        selectors[key] = list(value)
    return Fragment(
        path=path,
        layer=layer,
        section=section,
        merge=merge,
        selectors=selectors,
        body="".join(lines[end + 1 :]).strip("\n"),
        body_line=end + 2,
    )


def closed_selector_values() -> dict[str, tuple[str, ...]]:
    """Every value a closed selector can match; ``targets`` and ``deployment_profiles`` are open."""
    from merlin.targetgen import rules, tasks

    styles = tuple(rules.STYLES)
    target_families = tuple(dict.fromkeys([*rules.FAMILY_BY_KIND.values(), "cpu_only"]))
    return {
        "families": (*styles, "shared", *target_families),
        "phases": tuple(dict.fromkeys(["planning", "deployment", *tasks.STYLE_PHASE.values(), "verification"])),
        "task_ids": (
            "review_target_spec",
            "derive_compile_view",
            "derive_deployment_overlay",
            *(f"implement_{s}" for s in styles),
            "define_verification_ladder",
        ),
        "integration_styles": styles,
        "prompt_backends": tuple(PROMPT_BACKENDS),
    }


def _selector_line(front: list[str], key: str, item: str) -> int:
    """The file line (frontmatter starts on line 2) where ``key`` lists ``item``; the key's line as a fallback."""
    import yaml

    try:
        root = yaml.compose("".join(front))
    except yaml.YAMLError:
        root = None
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if getattr(k, "value", None) != key:
                continue
            nodes = v.value if isinstance(v, yaml.SequenceNode) else [v]
            for node in nodes:
                if getattr(node, "value", None) == item:
                    return node.start_mark.line + 2
            return k.start_mark.line + 2
    return 2


def _group(path: Path, layer: str) -> list[Fragment]:
    if path.is_file():
        return [parse_fragment(path, layer)]
    if not path.is_dir():
        return []
    return [parse_fragment(p, layer) for p in sorted(path.glob("*.md")) if p.is_file()]


def collect_fragments(
    task: dict[str, Any], capability_path: Path, deployment: str | None, *, library: Path | None = None
) -> list[Fragment]:
    """Every fragment file of every layer, in layer order (selectors not yet applied)."""
    lib = library or library_root()
    spec_prompts = Path(capability_path).resolve().parent / "prompts"
    groups: list[tuple[str, Path]] = [
        ("base", lib / "base"),
        (f"family:{task['family']}", lib / "families" / task["family"]),
        (f"task:{task['id']}", lib / "tasks" / task["id"]),
        (f"task:{task['id']}", lib / "tasks" / f"{task['id']}.md"),
        ("target", spec_prompts / "target"),
    ]
    if deployment:
        groups.append((f"overlay:{deployment}", spec_prompts / "overlays" / deployment))
    out: list[Fragment] = []
    for layer, path in groups:
        out.extend(_group(path, layer))
    return out


def _applies(frag: Fragment, facts: dict[str, Any]) -> bool:
    for key, wanted in frag.selectors.items():
        actual = facts.get(key)
        if isinstance(actual, list):
            if not set(wanted) & set(actual):
                return False
        elif actual not in wanted:
            return False
    return True


# --- rendering --------------------------------------------------------------


def comma_list(items: Any) -> str:
    if items is None:
        return ""
    if isinstance(items, (str, bytes)):
        return str(items)
    return ", ".join(str(i) for i in items)


def bullet_list(items: Any) -> str:
    return "\n".join(f"- {i}" for i in (items or []))


def code_list(items: Any) -> str:
    return "\n".join(f"- `{i}`" for i in (items or []))


def _environment() -> Any:
    from jinja2 import Environment, StrictUndefined

    env = Environment(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["comma_list"] = comma_list
    env.filters["bullet_list"] = bullet_list
    env.filters["code_list"] = code_list
    return env


def render_fragment(env: Any, frag: Fragment, context: dict[str, Any]) -> str:
    import jinja2

    name = str(frag.path)
    try:
        template = env.from_string(frag.body)
        template.name = name
        return template.render(**context).strip()
    except jinja2.TemplateSyntaxError as exc:
        syntax_line = frag.body_line + (exc.lineno or 1) - 1
        raise BadInput(f"{frag.path}:{syntax_line}: template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        line = _runtime_line(exc, frag)
        where = f"{frag.path}:{line}" if line else str(frag.path)
        known = ", ".join(sorted(k for k in context if not k.startswith("_")))
        raise BadInput(f"{where}: undefined template variable: {exc.message} (known names: {known})") from None
    except jinja2.TemplateError as exc:
        raise BadInput(f"{frag.path}: template error: {exc}") from None
    except BadInput:
        raise
    except Exception as exc:  # e.g. a filter applied to the wrong type, 1/0 in a template
        line = _runtime_line(exc, frag)
        where = f"{frag.path}:{line}" if line else str(frag.path)
        raise BadInput(f"{where}: template error: {exc}") from None


def _runtime_line(exc: BaseException, frag: Fragment) -> int | None:
    """The fragment file line of a render-time error (Jinja maps frames to template lines)."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename in ("<template>", str(frag.path)):
            found = tb.tb_lineno
        tb = tb.tb_next
    return frag.body_line + found - 1 if found else None


def template_context(
    spec: Any, overlay: Any | None, task: dict[str, Any], support_plan: dict[str, Any], prompt_backend: str, response_file: str
) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    ctx: dict[str, Any] = {name: data.get(name) for name in SPEC_SECTIONS}
    ctx["deployment"] = overlay.deployment.model_dump(mode="json") if overlay is not None else None
    ctx["task"] = task
    ctx["support_plan"] = support_plan
    ctx["prompt_backend"] = prompt_backend
    ctx["response_file"] = response_file
    return ctx


def render_prompt(
    *,
    spec: Any,
    overlay: Any | None,
    capability_path: Path,
    task: dict[str, Any],
    support_plan: dict[str, Any],
    prompt_backend: str,
    response_file: str,
    library: Path | None = None,
) -> RenderedPrompt:
    """Assemble one task's prompt packet (Markdown) from every applicable fragment."""
    deployment = overlay.deployment.name if overlay is not None else None
    facts = {
        # A task's family (an integration style or "shared") and the target's families.
        "families": [task["family"], *support_plan.get("target_families", [])],
        "phases": task["phase"],
        "task_ids": task["id"],
        "targets": spec.target.name,
        "deployment_profiles": deployment,
        "integration_styles": list(support_plan.get("integration_styles", [])),
        "prompt_backends": prompt_backend,
    }
    context = template_context(spec, overlay, task, support_plan, prompt_backend, response_file)
    env = _environment()
    chunks: dict[str, list[str]] = {s: [] for s in SECTIONS}
    sources: list[dict[str, str]] = []
    for frag in collect_fragments(task, capability_path, deployment, library=library):
        if not _applies(frag, facts):
            continue
        text = render_fragment(env, frag, context)
        if frag.merge == "replace":
            chunks[frag.section] = [text] if text else []
        elif frag.merge == "prepend":
            chunks[frag.section] = ([text] if text else []) + chunks[frag.section]
        elif text:
            chunks[frag.section].append(text)
        sources.append({"file": str(frag.path), "layer": frag.layer, "section": frag.section, "merge": frag.merge})
    lines = [
        f"# {task['title']}",
        "",
        f"- Target: `{spec.target.name}`" + (f" (deployment `{deployment}`)" if deployment else ""),
        f"- Task ID: `{task['id']}`",
        f"- Phase: {task['phase']}; family: {task['family']}",
        f"- Response file: `{response_file}` (write your whole answer there; it is matched by task id)",
        "",
    ]
    for section in SECTIONS:
        body = "\n\n".join(c for c in chunks[section] if c).strip()
        if body:
            lines += [f"## {HEADINGS[section]}", "", body, ""]
    return RenderedPrompt(task_id=task["id"], text="\n".join(lines).rstrip() + "\n", sources=sources)
