"""Rich rendering of a plan with the reason behind each decision."""

from __future__ import annotations

from typing import Any

from merlin.targetgen.planner import Plan


def render_explain(plan: Plan, console: Any) -> None:
    """Print the plan on ``console`` (the CLI's; this view lives in cli/ because targetgen never imports cli/)."""
    from rich.text import Text
    from rich.tree import Tree

    from merlin.cli.output import neutralise

    sp = plan.support_plan
    reasons = sp["reasons"]
    # styles come from Text objects: the console never parses markup (text from a spec is shown as typed)
    title = Text(neutralise(sp["display_name"]), style="bold")
    head = f" ({sp['target']})"
    if sp.get("vendor"):
        head += f", {sp['vendor']}"
    if sp.get("maturity"):
        head += f", maturity {sp['maturity']}"
    if sp.get("deployment_profile"):
        head += f", deployment {sp['deployment_profile']} ({sp['deployment_mode']})"
    console.print(title + Text(neutralise(head)))

    tree = Tree(Text("Decisions", style="bold"))
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

    # ids (stage names, task ids) stay whole on one line; the rationale and dependency lists give way
    from merlin.cli.tables import GIVE, Column, build, show

    colour = {"ready": "green", "planned": "yellow", "not_applicable": "dim"}
    columns = [Column("#"), Column("stage"), Column("status"), Column("rationale", GIVE)]
    rows = [[str(st["index"]), st["name"], Text(st["status"], style=colour.get(st["status"], "")), st["rationale"]]
            for st in plan.verification_manifest["stages"]]
    show(build(columns, rows, console.width, title="Verification ladder", title_justify="left"), console)

    # columns drop when the line would not fit (mutation, then adapter, then family); an id is never cut
    wanted = ["task", "phase", "depends on", "family", "adapter", "mutation"]
    drops = {"family": 1, "adapter": 2, "mutation": 3}
    cell = {
        "task": lambda t: t["id"], "phase": lambda t: t["phase"], "family": lambda t: t["family"],
        "depends on": lambda t: "\n".join(t["depends_on"]) or "-",  # one id a line: whole however narrow
        "adapter": lambda t: t["execution_adapter"], "mutation": lambda t: t["mutation_policy"],
    }
    columns = [Column(h, drop=drops.get(h, 0)) for h in wanted]
    rows = [[cell[h](t) for h in wanted] for t in plan.tasks]
    show(build(columns, rows, console.width, title="Task graph", title_justify="left"), console)
