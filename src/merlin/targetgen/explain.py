"""Rich rendering of a plan with the reason behind each decision."""

from __future__ import annotations

from typing import Any

from merlin.targetgen.planner import Plan


def render_explain(plan: Plan, console: Any) -> None:
    """Print the plan on ``console`` (a Rich Console the CLI owns: targetgen never imports cli/)."""
    from rich.table import Table
    from rich.tree import Tree

    sp = plan.support_plan
    reasons = sp["reasons"]
    head = f"[bold]{sp['display_name']}[/bold] ({sp['target']})"
    if sp.get("vendor"):
        head += f", {sp['vendor']}"
    if sp.get("maturity"):
        head += f", maturity {sp['maturity']}"
    if sp.get("deployment_profile"):
        head += f", deployment {sp['deployment_profile']} ({sp['deployment_mode']})"
    console.print(head)

    tree = Tree("[bold]Decisions[/bold]")
    styles = tree.add("integration styles: " + ", ".join(sp["integration_styles"]))
    for style, why in reasons["integration_styles"].items():
        styles.add(f"{style} because " + "; ".join(why))
    tree.add(f"primary integration: {sp['primary_integration']} ({reasons['primary_integration'][0]})")
    for family, why in reasons["target_families"].items():
        tree.add(f"target family: {family} because " + "; ".join(why))
    layers = tree.add("required layers: " + ", ".join(sp["required_layers"]))
    for layer, why in reasons["required_layers"].items():
        layers.add(f"{layer}: " + "; ".join(why))
    surfaces = tree.add("patch surfaces: " + (", ".join(s["surface"] for s in sp["patch_surfaces"]) or "none"))
    for s in sp["patch_surfaces"]:
        surfaces.add(f"{s['surface']}: {s['why']} ({', '.join(s['reasons'])})")
    access = sp["access"]
    tree.add(
        f"access: {access['model']}, {access['availability_class']}; SDKs: {', '.join(access['sdk_requirements']) or 'none'}; "
        f"credentials: {', '.join(access['credential_requirements']) or 'none'}; gates: {', '.join(access['verification_gates']) or 'none'}"
    )
    console.print(tree)

    ladder = Table(title="Verification ladder", title_justify="left")
    for col in ("#", "stage", "status", "rationale"):
        ladder.add_column(col, overflow="fold")
    colour = {"ready": "green", "planned": "yellow", "not_applicable": "dim"}
    for st in plan.verification_manifest["stages"]:
        ladder.add_row(str(st["index"]), st["name"], f"[{colour.get(st['status'], '')}]{st['status']}[/]", st["rationale"])
    console.print(ladder)

    tasks = Table(title="Task graph", title_justify="left")
    for col in ("task", "phase", "family", "depends on", "adapter", "mutation"):
        tasks.add_column(col, overflow="fold")
    for t in plan.tasks:
        tasks.add_row(t["id"], t["phase"], t["family"], ", ".join(t["depends_on"]) or "-", t["execution_adapter"], t["mutation_policy"])
    console.print(tasks)
