"""Generate the state tables in docs/ from the state machines in code.

Each table sits between ``<!-- state-table:NAME -->`` and ``<!-- /state-table:NAME -->``
in its page. ``python tools/gen_state_docs.py`` rewrites them; ``--check`` exits 1
(and names the stale tables) when a page is out of step with the code, which
tests/test_state_docs.py runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def outcome_table() -> str:
    from merlin.statemachine import member_docs
    from merlin.targetgen.vocab import OUTCOME_EXIT, Outcome

    docs = member_docs(Outcome)
    rows = ["| outcome | meaning | exit code |", "| --- | --- | --- |"]
    for o in Outcome:
        rows.append(f"| `{o.value}` | {docs.get(o.name, '')} | {OUTCOME_EXIT[o]} |")
    return "\n".join(rows)


def tables() -> dict[str, tuple[Path, Callable[[], str]]]:
    """Each table's page and maker: the state machines' own tables (merlin.statemachine), and the outcomes."""
    from merlin.leases.states import LEASES
    from merlin.ledger.status import CLUSTERS, RUNS
    from merlin.ledger.sweep_states import ITEMS
    from merlin.targetgen.vocab import TASKS

    return {
        "run-status": (REPO / "docs" / "ray.md", RUNS.table),
        "cluster-status": (REPO / "docs" / "ray.md", CLUSTERS.table),
        "task-state": (REPO / "docs" / "targetgen.md", lambda: TASKS.table(title="state")),
        "outcome": (REPO / "docs" / "targetgen.md", outcome_table),
        "lease-state": (REPO / "docs" / "leases.md", LEASES.table),
        "sweep-item-state": (REPO / "docs" / "sweeps.md", lambda: ITEMS.table(title="state")),
    }


def render(text: str, name: str, table: str) -> str:
    begin, end = f"<!-- state-table:{name} -->", f"<!-- /state-table:{name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{name}: markers {begin} ... {end} not found")
    return pattern.sub(lambda _m: f"{begin}\n{table}\n{end}", text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    pages: dict[Path, str] = {}
    for name, (page, make) in tables().items():
        old = pages.get(page, page.read_text(encoding="utf-8"))
        new = render(old, name, make())
        if new != old:
            stale.append(f"{page.relative_to(REPO)}: {name}")
        pages[page] = new
    if check:
        for s in stale:
            print(f"stale state table {s}: run `python tools/gen_state_docs.py`", file=sys.stderr)
        return 1 if stale else 0
    for page, text in pages.items():
        if text != page.read_text(encoding="utf-8"):
            page.write_text(text, encoding="utf-8")
            print(f"wrote {page.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
