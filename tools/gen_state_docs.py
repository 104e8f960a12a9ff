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
from enum import Enum
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def member_docs(enum: type[Enum]) -> dict[str, str]:
    """The ``#:`` comment lines right above each member of ``enum``, joined."""
    import inspect

    lines = inspect.getsource(enum).splitlines()
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        m = re.match(r"([A-Z_]+)\s*=", text)
        if m and pending:
            out[m.group(1)] = " ".join(pending)
        pending = [] if not text.startswith("#:") else pending
    return out


def _cell(states: Any) -> str:
    names = sorted(s.value for s in states)
    return ", ".join(f"`{n}`" for n in names) if names else "— (final)"


def machine_table(enum: type[Enum], transitions: dict[Any, frozenset[Any]], *, title: str = "status") -> str:
    docs = member_docs(enum)
    rows = [f"| {title} | meaning | can become |", "| --- | --- | --- |"]
    if None in transitions:
        rows.append(f"| (new) | no record yet | {_cell(transitions[None])} |")
    for m in enum:
        rows.append(f"| `{m.value}` | {docs.get(m.name, '')} | {_cell(transitions.get(m, frozenset()))} |")
    return "\n".join(rows)


def outcome_table() -> str:
    from merlin.targetgen.vocab import OUTCOME_EXIT, Outcome

    docs = member_docs(Outcome)
    rows = ["| outcome | meaning | exit code |", "| --- | --- | --- |"]
    for o in Outcome:
        rows.append(f"| `{o.value}` | {docs.get(o.name, '')} | {OUTCOME_EXIT[o]} |")
    return "\n".join(rows)


def tables() -> dict[str, tuple[Path, Callable[[], str]]]:
    from merlin.leases.states import LEASE_TRANSITIONS, LeaseState
    from merlin.ledger.status import CLUSTER_TRANSITIONS, TRANSITIONS, ClusterStatus, RunStatus
    from merlin.targetgen.vocab import TASK_TRANSITIONS, TaskState

    return {
        "run-status": (REPO / "docs" / "ray.md", lambda: machine_table(RunStatus, TRANSITIONS)),
        "cluster-status": (REPO / "docs" / "ray.md", lambda: machine_table(ClusterStatus, CLUSTER_TRANSITIONS)),
        "task-state": (REPO / "docs" / "targetgen.md", lambda: machine_table(TaskState, TASK_TRANSITIONS, title="state")),
        "outcome": (REPO / "docs" / "targetgen.md", outcome_table),
        "lease-state": (REPO / "docs" / "leases.md", lambda: machine_table(LeaseState, LEASE_TRANSITIONS, title="state")),
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
