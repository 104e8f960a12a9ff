"""The REST API against a real `merlin serve` process: authentication, Host and
Origin allowlists, body limit, rate limit, concurrency, OpenAPI, audit log."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from conftest import run_cli
from test_gateway_support import CAPABILITY, OVERLAY, Server, start_server
from tests.wheelhouse import wheelhouse  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("gw-http"), "--rate-limit", "0")
    yield srv
    srv.stop()


def post(server: Server, name: str, body: object, **kw) -> httpx2.Response:
    headers = kw.pop("headers", server.headers())
    return httpx2.post(f"{server.url}/api/{name}", json=body, headers=headers, timeout=kw.pop("timeout", 60), **kw)


def audit_lines(server: Server) -> list[dict]:
    path = server.state_root / "gateway" / "audit.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def test_token_file_is_private(server: Server) -> None:
    path = server.state_root / "gateway" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(server.token) >= 32


def test_401_without_or_with_a_wrong_token(server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {server.token}"}, {"Authorization": server.token}):
        r = httpx2.post(f"{server.url}/api/runs_list", json={}, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["code"] == "unauthorized" and server.token not in r.text
    mcp = httpx2.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert mcp.status_code == 401
    assert httpx2.get(f"{server.url}/openapi.json").status_code == 401
    assert post(server, "runs_list", {}).status_code == 200


def test_token_in_the_query_string_is_never_accepted(server: Server) -> None:
    for q in (f"token={server.token}", f"access_token={server.token}"):
        assert httpx2.post(f"{server.url}/api/runs_list?{q}", json={}).status_code == 401


def test_host_and_origin_allowlist(server: Server) -> None:
    evil = post(server, "runs_list", {}, headers={**server.headers(), "Host": "attacker.example:80"})
    assert evil.status_code == 421 and evil.json()["code"] == "bad_host"
    origin = post(server, "runs_list", {}, headers={**server.headers(), "Origin": "http://attacker.example"})
    assert origin.status_code == 403 and origin.json()["code"] == "bad_origin"
    same = post(server, "runs_list", {}, headers={**server.headers(), "Origin": server.url})
    assert same.status_code == 200 and "access-control-allow-origin" not in same.headers  # no CORS unless configured


def test_oversized_body_refused(server: Server) -> None:
    big = {"target_dir": "x", "task_id": "t", "text": "x" * (2 * 1024 * 1024)}
    r = post(server, "review_respond", big)
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for _ in range(40):
            yield b" " * 65536

    r = httpx2.post(f"{server.url}/api/runs_list", content=chunks(), headers=server.headers())
    assert r.status_code == 413


def test_non_loopback_host_refused_without_allow_remote(tmp_path: Path) -> None:
    proc = run_cli("serve", "--host", "0.0.0.0", "--port", "1", "--state-root", str(tmp_path))
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr
    assert not (tmp_path / "gateway" / "token").exists()


def test_errors_are_merlin_documents(server: Server) -> None:
    r = post(server, "runs_status", {"run_id": "no-such-run-20260101-000000-000000"})
    assert r.status_code == 404 and r.json()["exit_code"] == 4
    r = post(server, "targetgen_validate", {"capability": "/nonexistent/capability.yaml"})
    assert r.status_code == 400 and r.json()["code"] == "spec_error"
    r = httpx2.post(f"{server.url}/api/runs_list", content=b"{not json", headers=server.headers())
    assert r.status_code == 400 and "Traceback" not in r.text
    assert post(server, "no_such_operation", {}).status_code == 404
    r = post(server, "runs_submit", {"target": "t", "workflow": "w", "command": ["true"], "memory": "lots"})  # one grammar of sizes
    assert r.status_code == 400 and r.json()["argument"] == "memory" and "is not a size" in r.json()["error"], r.text


def test_openapi_document_is_valid_and_matches_the_operations(server: Server) -> None:
    import jsonschema

    from merlin.gateway.ops import OPERATIONS

    doc = httpx2.get(f"{server.url}/openapi.json", headers=server.headers()).json()
    jsonschema.validate(doc, OPENAPI_31_SHAPE)
    ops = {op.path: op for op in OPERATIONS if op.requires is None}
    assert set(doc["paths"]) == set(ops)
    for path, item in doc["paths"].items():
        ref = item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        jsonschema.Draft202012Validator.check_schema(schema)
        expected = ops[path].input_schema("#/components/schemas/{model}")
        for name, sub in expected.pop("$defs", {}).items():  # a nested model (runs_submit's runtime) is a component
            assert doc["components"]["schemas"][name] == sub, name
        assert schema == expected
        assert item["post"]["operationId"] == ops[path].name
        ok = item["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert ok == f"{ops[path].title}Result" and "next_steps" in doc["components"]["schemas"][ok]["required"]
    titles = [s.get("title", name) for name, s in doc["components"]["schemas"].items()]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)  # generators name models by title
    assert "Result" not in doc["components"]["schemas"]  # no generic result: each operation has its own
    assert doc["security"] == [{"bearer": []}]


@pytest.mark.slow  # several seconds: left out of --quick
def test_twenty_concurrent_clients_answering_and_polling_lose_nothing(server: Server, tmp_path: Path) -> None:
    r = post(server, "targetgen_execute", {"capability": str(CAPABILITY), "overlay": str(OVERLAY), "out_dir": str(tmp_path / "out")}, timeout=300)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["outcome"] == "awaiting_operator"
    tdir, q = first["target_dir"], first["open_question"]
    before = len(audit_lines(server))
    answers: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def client(i: int) -> None:
        with httpx2.Client(base_url=server.url, headers=server.headers(), timeout=60) as c:
            barrier.wait()
            for _ in range(3):
                s = c.post("/api/targetgen_status", json={"target_dir": tdir})
                if s.status_code != 200 or s.json()["outcome"] != "awaiting_operator":
                    with lock:
                        failures.append(f"status {s.status_code} {s.text[:200]}")
            a = c.post("/api/targetgen_answer", json={"target_dir": tdir, "question_id": q["id"], "choice": q["recommended_option"], "note": f"client {i}"})
            lst = c.post("/api/runs_list", json={"limit": 5})
            with lock:
                if a.status_code == 200 and a.json()["recorded"]:
                    answers.append(a.json()["answer_id"])
                else:
                    failures.append(f"answer {a.status_code} {a.text[:200]}")
                if lst.status_code != 200:
                    failures.append(f"list {lst.status_code}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]
    assert len(set(answers)) == 20
    recorded = [json.loads(x)["answer_id"] for x in (Path(tdir) / "answers.jsonl").read_text().splitlines()]
    assert set(answers) <= set(recorded)  # every answer durably recorded
    new = audit_lines(server)[before:]
    assert [a["operation"] for a in new].count("targetgen_answer") == 20
    # the next execute applies the answer and moves on
    nxt = post(server, "targetgen_execute", {"target_dir": tdir}, timeout=300).json()
    assert nxt["outcome"] != "awaiting_operator" or nxt["open_question"]["id"] != q["id"]


def test_audit_log_has_one_line_per_mutation(server: Server, tmp_path: Path) -> None:
    before = len(audit_lines(server))
    reads = [("runs_list", {}), ("targetgen_validate", {"capability": str(CAPABILITY)}), ("clusters_list", {})]
    for name, body in reads:
        assert post(server, name, body).status_code == 200
    sub = post(server, "runs_submit", {"command": ["true"], "target": "audit", "workflow": "smoke", "target_dir": str(tmp_path / "t")})
    assert sub.status_code == 200, sub.text
    rid = sub.json()["run_id"]
    assert post(server, "runs_cancel", {"run_id": rid}).status_code == 200
    assert post(server, "runs_retry", {"run_id": "no-such-run-20260101-000000-000000"}).status_code == 404
    lines = audit_lines(server)[before:]
    assert [(a["operation"], a["result"].split(":")[0]) for a in lines] == [("runs_submit", "ok"), ("runs_cancel", "ok"), ("runs_retry", "error 4")]
    assert lines[0]["subject"]["target"] == "audit" and lines[1]["subject"]["run_id"] == rid
    assert all(a["client"] == "http 127.0.0.1" and a["time"] for a in lines)
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    assert all(a["uid"] == os.getuid() and a["user"] == me for a in lines), "who acted: the OS identity, as the lease book records it"


def test_secrets_are_redacted_in_responses(server: Server, tmp_path: Path) -> None:
    sub = post(server, "runs_submit", {"command": ["true"], "target": "redact", "workflow": "smoke", "env": {"API_TOKEN": "hunter2"}, "target_dir": str(tmp_path / "t")})
    assert sub.status_code == 200 and "hunter2" not in sub.text
    status = post(server, "runs_status", {"run_id": sub.json()["run_id"], "refresh": False})
    assert "hunter2" not in status.text


def test_rate_limit_per_credential_is_temporary_with_retry_after(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--rate-limit", "1")
    try:
        replies = [post(srv, "runs_list", {}) for _ in range(12)]
        codes = [r.status_code for r in replies]
        assert codes[0] == 200 and 429 in codes  # a burst of two seconds' worth (the readiness probe took one), then the rate
        limited = next(r for r in replies if r.status_code == 429)
        doc = limited.json()
        assert doc["code"] == "rate_limited" and doc["exit_code"] == 75  # temporary: never 2, the caller's own mistake
        assert int(limited.headers["retry-after"]) >= 1 and "\n" not in doc["error"]
    finally:
        srv.stop()


@pytest.mark.slow  # several seconds: left out of --quick
def test_default_limit_serves_fifty_local_clients_and_still_slows_token_guessing(tmp_path: Path) -> None:
    srv = start_server(tmp_path)  # the default settings
    try:
        codes: list[int] = []
        lock = threading.Lock()

        def client() -> None:
            with httpx2.Client(headers=srv.headers(), timeout=60) as http:
                for _ in range(12):
                    code = http.post(f"{srv.url}/api/runs_list", json={"limit": 1}).status_code
                    with lock:
                        codes.append(code)

        threads = [threading.Thread(target=client) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(codes) == 600 and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
        with httpx2.Client(headers={"Authorization": "Bearer wrong"}, timeout=30) as guesser:
            guesses = [guesser.post(f"{srv.url}/api/runs_list", json={}).status_code for _ in range(80)]
        assert guesses[0] == 401 and 429 in guesses  # failed authentication is limited per address
        assert post(srv, "runs_list", {}).status_code == 200  # the guesser does not use up the token's budget
    finally:
        srv.stop()


def test_json_nested_past_the_parsers_depth_is_a_400(server: Server) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    r = httpx2.post(f"{server.url}/api/runs_list", content=body, headers=server.headers())
    assert r.status_code == 400 and r.json()["code"] == "bad_input"
    assert "nested" in r.json()["error"] and "\n" not in r.json()["error"]


@pytest.mark.slow  # several seconds: left out of --quick
def test_a_state_root_that_is_a_file_is_exit_2_for_mcp_and_serve(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import REPO

    plain = tmp_path / "not-a-dir"
    plain.write_text("x")
    for args in (["mcp"], ["serve", "--port", "1"]):
        proc = subprocess.run([sys.executable, "-m", "merlin", *args, "--state-root", str(plain)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60, cwd=REPO)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "not a directory" in lines[0], proc.stderr


@pytest.mark.slow  # several processes, seconds even on a quiet machine
def test_rotate_token(tmp_path: Path) -> None:
    a = start_server(tmp_path)
    old = a.token
    a.stop()
    b = start_server(tmp_path, "--rotate-token")
    try:
        assert b.token != old
        assert post(b, "runs_list", {}, headers=b.headers(old)).status_code == 401
        assert post(b, "runs_list", {}).status_code == 200
    finally:
        b.stop()


# The shape of an OpenAPI 3.1 document (the parts merlin emits), as JSON Schema.
OPENAPI_31_SHAPE = {
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {"type": "object", "required": ["title", "version"], "properties": {"title": {"type": "string"}, "version": {"type": "string"}}},
        "servers": {"type": "array", "items": {"type": "object", "required": ["url"]}},
        "paths": {
            "type": "object",
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"enum": ["get", "post", "put", "delete", "patch", "summary", "description", "parameters"]},
                "additionalProperties": {
                    "type": "object",
                    "required": ["responses"],
                    "properties": {
                        "operationId": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "requestBody": {"type": "object", "required": ["content"]},
                        "responses": {
                            "type": "object",
                            "propertyNames": {"pattern": "^([1-5][0-9]{2}|[1-5]XX|default)$"},
                            "additionalProperties": {"type": "object", "required": ["description"]},
                        },
                    },
                },
            },
        },
        "components": {
            "type": "object",
            "properties": {
                "schemas": {"type": "object", "additionalProperties": {"type": "object"}},
                "securitySchemes": {"type": "object", "additionalProperties": {"type": "object", "required": ["type"]}},
            },
        },
        "security": {"type": "array", "items": {"type": "object"}},
    },
}


def test_unix_socket_serving_needs_the_token_too(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from conftest import REPO
    from test_gateway_support import server_env

    sock = Path(f"/tmp/merlin-gw-{os.getpid()}.sock")  # short: AF_UNIX paths are limited to ~107 bytes
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "merlin", "serve", "--socket", str(sock), "--state-root", str(state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=server_env(state, tmp_path / "out"), cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert sock.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no socket"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        token = (state / "gateway" / "token").read_text().strip()
        with httpx2.Client(transport=httpx2.HTTPTransport(uds=str(sock)), base_url="http://localhost", timeout=30) as c:
            assert c.post("/api/runs_list", json={}).status_code == 401
            ok = c.post("/api/runs_list", json={}, headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200 and ok.json()["total"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        sock.unlink(missing_ok=True)


@pytest.mark.slow
def test_runs_submit_with_a_runtime_runs_in_that_env(server: Server, wheelhouse: Path, tmp_path: Path) -> None:
    """The gateway's ``runs_submit`` takes the run environment the CLI's ``--env-file`` takes (files as their
    text): the command runs in the env built from it, and the record names the env."""
    runtime = {"requirements": "mlnprobe==2.0\n", "find_links": [str(wheelhouse)], "no_index": True}
    code = "import mlnprobe; print('version', mlnprobe.__version__)"
    sub = post(server, "runs_submit", {"command": ["python", "-c", code], "target": "envs", "workflow": "gateway", "runtime": runtime, "target_dir": str(tmp_path / "t")})
    assert sub.status_code == 200, sub.text
    rid = sub.json()["run_id"]
    done = post(server, "runs_wait", {"run_id": rid, "timeout": 300}, timeout=320)
    assert done.status_code == 200 and done.json()["ended"], done.text
    assert done.json()["status"] == "succeeded", done.text
    logs = post(server, "runs_logs", {"run_id": rid})
    assert "version 2.0" in logs.text
    status = post(server, "runs_status", {"run_id": rid, "refresh": False}).json()
    att = status["attempts"][-1]
    assert att["env_id"] and att["env_cache"] == "built", status


def test_a_retention_policy_applies_itself_after_a_gateway_submit(tmp_path: Path) -> None:
    """``[retention] auto = true`` in the server's config: a runs_submit over HTTP starts the day's
    prune, as a CLI submit does (the detached prune's report names the old run it removed). The policy
    is the config as it is at each submit: written while the server runs, it applies from the next
    submit on; edited into an error, the submit still succeeds and the audit log says why nothing was pruned."""
    from merlin.controlplane import ControlPlane
    from process_support import wait_until

    xdg = tmp_path / "xdg"
    (xdg / "merlin").mkdir(parents=True)
    config = xdg / "merlin" / "config.toml"
    srv = start_server(tmp_path, env={"XDG_CONFIG_HOME": str(xdg)})  # no config file yet
    try:
        cp = ControlPlane(srv.state_root)
        old = run_cli("ray", "jobs", "submit", "--target", "old", "--workflow", "w", "--engine", "local", "--json",
                      "--state-root", str(srv.state_root), "--", "true", env={"XDG_CONFIG_HOME": str(tmp_path / "none")})
        assert old.returncode == 0, old.stderr
        old_id = json.loads(old.stdout)["run_id"]
        cp.wait(old_id, timeout=60)
        log = cp.layout.retention_log
        assert not log.exists()  # the CLI had no policy
        body = {"target": "new", "workflow": "w", "engine": "local", "command": ["true"]}
        assert post(srv, "runs_submit", body).status_code == 200
        assert not cp.layout.retention_stamp.exists()  # nor had the server, then
        config.write_text('[retention]\nolder_than = "0s"\nstatus = ["succeeded"]\nauto = true\n')  # written while it runs
        r = post(srv, "runs_submit", {**body, "command": ["sleep", "5"]})  # active while the prune runs: never removed
        assert r.status_code == 200, r.text
        new_id = r.json()["run_id"]
        (report,) = wait_until(lambda: [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else [])
        assert old_id in report["removed"] and new_id not in report["removed"], report
        config.write_text('[retention]\nauto = true\n')  # edited into an error: auto without older_than
        r = post(srv, "runs_submit", body)
        assert r.status_code == 200, r.text
        audit = [json.loads(x) for x in cp.layout.gateway_audit.read_text().splitlines()]
        assert audit[-1]["operation"] == "retention" and "needs older_than" in audit[-1]["result"], audit[-1]
        cp.cancel(new_id)
        cp.wait(new_id, timeout=30)
    finally:
        srv.stop()
