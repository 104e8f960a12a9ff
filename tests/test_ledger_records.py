"""The light ledger records (ledger/record.py) behave as their pydantic models do.

Each case is built both ways, by the record class (the plain-Python check, with
pydantic only for what it cannot vouch for) and by the pydantic model derived
from the same declaration: both accept with the same dumps, or both refuse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from conftest import REPO
from merlin.ledger import models as m
from merlin.ledger.pydantic_models import model_of
from merlin.ledger.record import Record

T0 = datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)
REQ = {"run_id": "r-1", "target": "t", "workflow": "w", "source": "cli", "engine": "local", "command": ["echo", "hi"], "workdir": "/w", "target_dir": "/t"}
REC = {k: v for k, v in REQ.items() if k != "source"} | {"source": "cli", "status": "running"}
CLUSTER = {
    "name": "default",
    "status": "active",
    "host": "127.0.0.1",
    "address": "http://127.0.0.1:8265",
    "dashboard_url": "http://127.0.0.1:8265",
    "temp_dir": "/tmp/r",
    "ports": {"gcs": 1, "dashboard": 2},
}

CASES: list[tuple[type[Record], dict[str, Any]]] = [
    (m.RunRequest, REQ),
    (m.RunRequest, REQ | {"num_cpus": 2, "num_gpus": 0.5, "resources": {"fpga": 1}, "created_at": T0}),
    (m.RunRequest, REQ | {"env": {"API_TOKEN": "s3cret", "X": "1"}, "metadata": {"password": "p", "n": [1, (2, 3)]}}),
    (m.RunRequest, REQ | {"created_at": "2026-01-02T03:04:05Z"}),
    (m.RunRequest, REQ | {"created_at": "2026-01-02T03:04:05.123+02:00"}),
    (m.RunRequest, REQ | {"created_at": "2026-01-02"}),  # pydantic's to judge: a date
    (m.RunRequest, REQ | {"num_cpus": -1}),  # ge=0
    (m.RunRequest, REQ | {"num_cpus": "2"}),  # lax: pydantic coerces
    (m.RunRequest, REQ | {"engine": "Bad Engine"}),  # pattern
    (m.RunRequest, REQ | {"bogus": 1}),  # unknown field
    (m.RunRequest, {k: v for k, v in REQ.items() if k != "target"}),  # missing field
    (m.RunRequest, REQ | {"schema_version": 2}),
    (m.RunRecord, REC),
    (m.RunRecord, REC | {"message": "\x1b[31mred\x1b[0m", "attempts": [{"number": 1, "engine": "ray", "status": "running", "error_message": "\x1b[1mx"}]}),
    (m.RunRecord, REC | {"attempts": [{"number": 0, "engine": "ray", "status": "running"}]}),
    (m.RunRecord, REC | {"attempts": [{"number": 1.0, "engine": "ray", "status": "running"}]}),
    (m.RunRecord, REC | {"status": "bogus"}),
    (m.RunRecord, REC | {"cluster": {"name": "default", "address": None}, "next_steps": [{"action": "logs", "args": {"run_id": "r-1"}}]}),
    (m.RunRecord, REC | {"metadata": {"token": "x", "when": T0}, "observed_at": T0.astimezone(timezone(timedelta(hours=-5)))}),
    (m.RunEvent, {"run_id": "r", "event": "transition", "cause": "\x1b[2mby\x1b[0m", "from_status": "pending", "to_status": m.RunStatus.RUNNING, "detail": {"a": None}}),
    (m.ArtifactIndex, {"run_id": "r", "target_dir": "/t", "files": [{"name": "a", "size": 1, "sha256": "0" * 64, "kind": "json"}]}),
    (m.ArtifactIndex, {"run_id": "r", "target_dir": "/t", "files": [{"name": "a", "size": 1, "sha256": "xyz", "kind": "json"}]}),
    (m.ArtifactIndex, {"run_id": "r", "target_dir": "/t", "files": [{"name": "a", "size": 1, "kind": "movie"}]}),
    (m.ClusterRecord, CLUSTER),
    (m.ClusterRecord, CLUSTER | {"status": "running", "message": "\x1b[1mok", "kind": "slurm", "node_resources": {"n1": {"fpga": 2}}}),
    (m.ClusterRecord, CLUSTER | {"kind": "Not A Kind"}),
    (m.ClusterRecord, CLUSTER | {"auth": {"mode": "token", "token_file": "/t"}, "processes": [{"pid": 3, "start_ticks": 9}]}),
    (m.ClusterRecord, CLUSTER | {"auth": {"mode": "magic"}}),
    (m.Condition, {"layer": "run", "code": "c", "message": "m", "evidence": {}, "observed_at": "now", "next_steps": [{"action": "retry"}]}),
]


def _both(cls: type[Record], data: dict[str, Any]) -> tuple[Any, Any]:
    def attempt(build: Any) -> Any:
        try:
            return build()
        except ValidationError as exc:
            return ("refused", [(e["loc"], e["type"]) for e in exc.errors()])

    data = {**{n: T0 for n, f in cls._fields().items() if f.info.default_factory is m.utcnow}, **data}  # no clock in the comparison
    return attempt(lambda: cls(**data)), attempt(lambda: model_of(cls)(**data))


@pytest.mark.parametrize(("cls", "data"), CASES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)])
def test_a_record_accepts_and_refuses_what_its_pydantic_model_does_with_the_same_dumps(cls: type[Record], data: dict[str, Any]) -> None:
    light, model = _both(cls, data)
    if isinstance(model, tuple):
        assert light == model  # refused the same way, by pydantic's own error
        return
    assert isinstance(light, cls)
    for kwargs in ({"mode": "json"}, {"mode": "json", "exclude_none": True}, {}):
        assert light.model_dump(**kwargs) == model.model_dump(**kwargs), kwargs
    dumped = json.dumps(light.model_dump(mode="json"), sort_keys=True)
    assert dumped == json.dumps(json.loads(model.model_dump_json()), sort_keys=True)  # the bytes the ledger writes
    again = cls.model_validate_json(dumped)
    assert again.model_dump(mode="json") == light.model_dump(mode="json") and again == cls.model_validate(json.loads(dumped))


def test_assignment_is_checked_and_unknown_fields_refused() -> None:
    rec = m.RunRecord(**REC)
    rec.status = "succeeded"  # type: ignore[assignment]
    assert rec.status is m.RunStatus.SUCCEEDED
    rec.next_steps = [{"action": "logs", "args": {}}]  # type: ignore[list-item]
    assert isinstance(rec.next_steps[0], m.NextStep)
    rec.message = "\x1b[31mplain\x1b[0m"
    assert rec.message == "plain"
    with pytest.raises(ValidationError, match="status"):
        rec.status = "bogus"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="no field"):
        rec.bogus = 1  # type: ignore[attr-defined]
    copy = rec.model_copy(deep=True)
    copy.attempts.append(m.Attempt(number=1, engine="ray", status=m.RunStatus.RUNNING))
    assert rec.attempts == [] and copy != rec and rec.model_copy() == rec
    assert rec.model_dump(exclude={"updated_at", "created_at"}).keys() == set(m.RunRecord._fields()) - {"updated_at", "created_at"}


def test_importing_and_using_the_records_needs_no_pydantic() -> None:
    code = (
        "import sys\nfrom merlin.ledger.models import RunRecord, Attempt\n"
        "r = RunRecord.model_validate_json(sys.argv[1])\nr.attempts = [Attempt(number=1, engine='ray', status='running')]\n"
        "print(r.model_dump_json()); print('pydantic' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, json.dumps(REC)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    dump, loaded = res.stdout.splitlines()
    assert loaded == "False" and json.loads(dump)["attempts"][0]["status"] == "running"


def test_only_pydantic_models_imports_pydantic_in_the_ledger() -> None:
    import ast

    for path in sorted((REPO / "src" / "merlin" / "ledger").glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        if path.name != "pydantic_models.py":
            assert not names & {"pydantic", "pydantic_core"}, path.name


def test_record_type_hints_are_what_typing_resolves() -> None:
    """record.type_hints (each annotation text compiled once: the submit path's first use of a record) == typing.get_type_hints."""
    import typing

    from merlin.ledger.record import type_hints

    classes = [c for c in vars(m).values() if isinstance(c, type) and issubclass(c, Record) and c is not Record]
    assert len(classes) >= 10
    for cls in classes:
        assert type_hints(cls) == typing.get_type_hints(cls, include_extras=True), cls
