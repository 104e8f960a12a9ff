"""Each state machine is defined once in code, and the tables in docs/ are generated from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_state_tables_in_docs_match_the_code() -> None:
    res = subprocess.run([sys.executable, str(REPO / "tools" / "gen_state_docs.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_generator_notices_a_stale_table(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_state_docs", REPO / "tools" / "gen_state_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # type: ignore[union-attr]
    from merlin.ledger.status import RUNS

    table = RUNS.table()
    assert "| `running` |" in table and "`blocked`" in table.split("| `running` |")[1].splitlines()[0]  # running -> blocked, documented
    page = "x\n<!-- state-table:run-status -->\n| old |\n<!-- /state-table:run-status -->\ny\n"
    assert gen.render(page, "run-status", table) == f"x\n<!-- state-table:run-status -->\n{table}\n<!-- /state-table:run-status -->\ny\n"


def test_one_vocabulary_each() -> None:
    from merlin.targetgen import records, state
    from merlin.targetgen.vocab import TASK_TRANSITIONS, Outcome, TaskState

    assert set(records.TaskStateName.__args__) == {s.value for s in TaskState}
    assert set(records.Outcome.__args__) == {o.value for o in Outcome}
    assert state.TASK_STATES == tuple(TaskState) and set(TASK_TRANSITIONS) == set(TaskState) | {None}
    assert state.PLANNED == "planned" and f"{state.COMPLETED}" == "completed"
