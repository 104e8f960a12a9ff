"""A client generated from a real `merlin serve`'s /openapi.json (openapi-python-client, in a temp dir)
exposes every operation with a typed result, and its calls against the server parse into those types."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from test_gateway_support import CAPABILITY, OVERLAY, start_server


@pytest.mark.slow  # several seconds: left out of --quick
def test_a_generated_client_exposes_every_operation_with_typed_results(tmp_path: Path) -> None:
    pytest.importorskip("openapi_python_client", reason="the test extra is not installed")
    from merlin.gateway.ops import OPERATIONS

    server = start_server(tmp_path / "srv")
    try:
        doc = httpx2.get(f"{server.url}/openapi.json", headers=server.headers()).text
        spec = tmp_path / "openapi.json"
        spec.write_text(doc)
        out = tmp_path / "gen" / "merlin_gateway_client"
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        gen = subprocess.run([str(Path(sys.executable).parent / "openapi-python-client"), "generate", "--path", str(spec), "--meta", "none", "--output-path", str(out)],
                             capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert gen.returncode == 0, gen.stdout + gen.stderr
        assert "Warning" not in gen.stdout + gen.stderr, gen.stdout + gen.stderr  # nothing skipped (a dropped operation is a warning)
        sys.path.insert(0, str(out.parent))
        try:
            offered = [op for op in OPERATIONS if op.requires is None]
            for op in offered:
                mod = importlib.import_module(f"merlin_gateway_client.api.{op.group}.{op.name}")
                returns = str(inspect.signature(mod.sync).return_annotation)
                assert f"{op.title}Result" in returns and "Error" in returns, (op.name, returns)
            models = importlib.import_module("merlin_gateway_client.models")
            client_mod = importlib.import_module("merlin_gateway_client")
            client = client_mod.AuthenticatedClient(base_url=server.url, token=server.token, raise_on_unexpected_status=True)
            runs_list = importlib.import_module("merlin_gateway_client.api.runs.runs_list")
            listed = runs_list.sync(client=client, body=models.RunsListInput())
            assert isinstance(listed, models.RunsListResult) and listed.total == 0 and listed.runs == []
            validate = importlib.import_module("merlin_gateway_client.api.targetgen.targetgen_validate")
            valid = validate.sync(client=client, body=models.TargetgenValidateInput(capability=str(CAPABILITY), overlay=str(OVERLAY)))
            assert isinstance(valid, models.TargetgenValidateResult) and valid.valid is True and valid.target == "x86_cpu_baseline"
            assert all(isinstance(s, models.NextStep) for s in valid.next_steps) and valid.next_steps[0].tool == "targetgen_plan"
            status = importlib.import_module("merlin_gateway_client.api.runs.runs_status")
            missing = status.sync(client=client, body=models.RunsStatusInput(run_id="no-such-run-20260101-000000-000000"))
            assert isinstance(missing, models.Error) and missing.exit_code == 4 and missing.code == "not_found"
        finally:
            sys.path.remove(str(out.parent))
            for name in [m for m in sys.modules if m.startswith("merlin_gateway_client")]:
                del sys.modules[name]
    finally:
        server.stop()
