"""The submit path kept lean (issue 15, client CPU of 50 CLI submits <= 3x Ray's SDK):
the jobs API asked over a plain socket for an ``http://`` head (engines/http11.py) with the
answers and errors http.client gave; typed values without dataclasses (merlin.values); secret
patterns tried only where they can match (ledger/text.py); and what a Ray submit imports."""

from __future__ import annotations

import json
import random
import socket
import string
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from merlin.engines import ray_api
from merlin.ledger import text
from merlin.values import FrozenInstanceError, Value, factory

# ------------------------------------------------------------------ the old client, as the reference


def _http_client_call(api: ray_api.JobsApi, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """``JobsApi._call`` as it was through http.client (before engines/http11.py): the answers and
    messages the plain-socket client must give too."""
    import http.client

    data = json.dumps(body).encode("utf-8") if body is not None else None
    headers = {**api.headers, **({"Content-Type": "application/json"} if data is not None else {})}
    conn = http.client.HTTPConnection(api._url.hostname or "127.0.0.1", api._url.port, timeout=api.timeout)
    try:
        conn.request(method, api._url.path.rstrip("/") + path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ray_api.Unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, reason=str(exc) or type(exc).__name__) from None
    finally:
        conn.close()
    if resp.status >= 400:
        kind = {401: ray_api.Unauthorized, 403: ray_api.Unauthorized, 404: ray_api.JobNotFound}.get(resp.status, ray_api.RayApiError)
        raise kind(f"HTTP {resp.status}: {ray_api._detail(raw)}", resp.status)
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except ValueError:
        raise ray_api.RayApiError(f"the jobs API sent something that is not JSON: {raw[:80]!r}", resp.status) from None


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", answer) or (exception class, message, status, reason): what a caller of the client sees."""
    try:
        return ("ok", call())
    except ray_api.RayApiError as exc:
        return (type(exc).__name__, (exc.message, exc.status, exc.reason))


def _both(api: ray_api.JobsApi, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[tuple[str, Any], tuple[str, Any]]:
    return _outcome(lambda: api._call(method, path, body)), _outcome(lambda: _http_client_call(api, method, path, body))


# ------------------------------------------------------------------ a server that answers as told


@contextmanager
def _server(answer: Callable[[bytes], bytes | None]) -> Iterator[str]:
    """A loopback server: each connection's request (head and body) -> ``answer`` -> those bytes
    sent and the connection closed (None: closed without a word)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # accept() wakes to see the stop
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                head, _, body = request.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                reply = answer(head + b"\r\n\r\n" + body)
                if reply is not None:
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _reply(status: str, body: bytes, *headers: str) -> bytes:
    return (f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode() + body


_BIG = b'{"logs": "' + b"log line\\n" * (4 << 17) + b'"}'

ANSWERS: dict[str, bytes | None] = {
    "json with a length": _reply("200 OK", b'{"submission_id": "s-1"}', "Content-Type: application/json", "Content-Length: 24"),
    "chunked json": _reply("200 OK", b"7\r\n{\"a\": 1\r\n1;x=y\r\n}\r\n0\r\nTrailer: t\r\n\r\n", "Transfer-Encoding: chunked"),
    "no length, read to the end": _reply("200 OK", b'{"version": "4"}'),
    "an empty body": _reply("200 OK", b"", "Content-Length: 0"),
    "100 continue first": b"HTTP/1.1 100 Continue\r\n\r\n" + _reply("200 OK", b"[]", "Content-Length: 2"),
    "404 with Ray's JSON": _reply("404 Not Found", b'{"message": "Job x does not exist"}', "Content-Length: 35"),
    "401 plain text": _reply("401 Unauthorized", b"missing token\nsecond line", "Content-Length: 25"),
    "403": _reply("403 Forbidden", b"", "Content-Length: 0"),
    "500 with detail": _reply("500 Internal Server Error", b'{"detail": "boom"}', "Content-Length: 18"),
    "not json": _reply("200 OK", b"<html>hello</html>", "Content-Length: 18"),
    "closed without a word": None,
    "not HTTP": b"SSH-2.0-OpenSSH_9.2\r\n",
    "a body cut short": _reply("200 OK", b'{"a": ', "Content-Length: 40"),
    "header never ends": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    # a whole job log is one answer: megabytes, with a length or in many chunks
    "4 MiB with a length": _reply("200 OK", _BIG, f"Content-Length: {len(_BIG)}"),
    "4 MiB in 64 KiB chunks": _reply(
        "200 OK", b"".join(b"%x\r\n%s\r\n" % (len(_BIG[i : i + 65536]), _BIG[i : i + 65536]) for i in range(0, len(_BIG), 65536)) + b"0\r\n\r\n",
        "Transfer-Encoding: chunked",
    ),
}


@pytest.mark.parametrize("case", sorted(ANSWERS))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_plain_http_gives_what_http_client_gave(case: str, method: str) -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes | None:
        seen.append(request)
        return ANSWERS[case]

    with _server(answer) as address:
        api = ray_api.JobsApi(address, {"Authorization": "Bearer t0k"}, timeout=5)
        body = {"entrypoint": "true"} if method == "POST" else None
        ours, reference = _both(api, method, "/api/jobs/", body)
    assert ours == reference, case
    assert len(seen) == 2
    head = seen[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == f"{method} /api/jobs/ HTTP/1.1".encode()
    assert b"Authorization: Bearer t0k" in head and f"Host: {address[7:]}".encode() in head
    if method == "POST":  # the body as http.client sent it, with its length
        assert seen[0].endswith(b'{"entrypoint": "true"}') and b"Content-Length: 22" in head and b"Content-Type: application/json" in head


def test_no_server_and_no_host_read_as_before(unused_port: int) -> None:
    for address in (f"http://127.0.0.1:{unused_port}", "http://no-such-host.invalid:8265"):
        api = ray_api.JobsApi(address, timeout=2)
        ours, reference = _both(api, "GET", "/api/version")
        assert ours == reference and ours[0] == "Unreachable", (address, ours)
        assert ours[1][1] is None  # no status: no answer


def test_a_silent_server_times_out_as_before() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog) and never answers
    try:
        api = ray_api.JobsApi(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        ours, reference = _both(api, "GET", "/api/version")
        assert ours == reference == ("Unreachable", ("TimeoutError: timed out", None, "timed out"))
    finally:
        listener.close()


def test_a_header_or_path_that_is_not_one_line_is_refused_before_sending() -> None:
    with _server(lambda request: ANSWERS["json with a length"]) as address:
        with pytest.raises(ValueError):
            ray_api.JobsApi(address, {"X-Token": "a\r\nInjected: yes"})._call("GET", "/api/version")
        with pytest.raises(ray_api.Unreachable, match="InvalidURL: URL can't contain control characters"):
            ray_api.JobsApi(address)._call("GET", "/api/jobs/a b")


@pytest.fixture
def unused_port() -> int:
    from merlin.clusters.net import free_ports

    return free_ports(1)[0]


# ------------------------------------------------------------------ against the real shared head


@pytest.mark.ray
def test_the_shared_head_answers_the_plain_client_as_it_answered_http_client(ray_cp: Any) -> None:
    cluster = ray_cp.ledger.read_cluster("default")
    api = ray_cp.engine("ray").client(cluster)
    assert api._url.scheme == "http"
    version, reference = _both(api, "GET", "/api/version")
    assert version[0] == "ok" and version == reference
    assert version[1]["ray_version"]
    # a 404 with Ray's JSON, and an answer of many jobs (read whole, chunked or not)
    ours, reference = _both(api, "GET", "/api/jobs/merlin-never-submitted-1")
    assert ours == reference and ours[0] == "JobNotFound"
    listed = _both(api, "GET", "/api/jobs/")
    assert listed[0][0] == "ok" and isinstance(listed[0][1], list)
    # a body Ray refuses (no entrypoint): its error status and detail
    refused = _both(api, "POST", "/api/jobs/", {"runtime_env": {}})
    assert refused[0][0] == refused[1][0] != "ok" and refused[0][1][1] == refused[1][1][1] >= 400
    if api.headers:  # the head wants a token: without it, 401 as before
        ours, reference = _both(ray_api.JobsApi(cluster.address), "GET", "/api/jobs/")
        assert ours == reference and ours[0] == "Unauthorized" and ours[1][1] == 401


PROBE = r"""
import builtins, json, sys
texts = []  # source text compiled at run time (a module's own bytecode comes from its file: bytes)
_compile = builtins.compile
def _counting(source, *args, **kwargs):
    if isinstance(source, str):
        texts.append(source[:60])
    return _compile(source, *args, **kwargs)
builtins.compile = _counting
from merlin.cli.entry import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
sys.stderr.write('\nPROBE:' + json.dumps({'exit': code, 'modules': sorted(sys.modules), 'compiled': texts}) + '\n')
"""

#: what a submit to a Ray head no longer imports: http.client's email and ssl, dataclasses' inspect
#: and ast, tempfile, shutil, subprocess (a retry keeper's), hashlib, the idna codec, socket.py's enums
NOT_ON_THE_PATH = ("http.client", "email", "ssl", "dataclasses", "inspect", "ast", "tempfile", "shutil", "subprocess", "hashlib",
                   "encodings.idna", "platform", "socket", "selectors")


def _submit_modules(root: Path) -> tuple[int, list[str], str]:
    """(exit code, modules imported, stderr) of a Ray ``jobs submit`` under ``root`` in a fresh
    interpreter; asserts it compiled no source text (a string annotation, a ``NamedTuple`` or a
    ``TypeVar`` bound given as text is compiled on every command: about 1 ms of a submit's CPU)."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    args = ["ray", "jobs", "submit", "--engine", "ray", "--target", "t", "--workflow", "lean", "--state-root", str(root), "--", "true"]
    env = {**os.environ, "NO_COLOR": "1"}
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    line = [x for x in res.stderr.splitlines() if x.startswith("PROBE:")]
    assert line, res.stderr
    data = json.loads(line[-1][len("PROBE:") :])
    assert data["compiled"] == [], data["compiled"]
    return data["exit"], data["modules"], res.stderr


def test_a_blocked_ray_submit_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    code, modules, err = _submit_modules(tmp_path / "state")  # no cluster: recorded blocked, exit 3
    assert code == 3 and "blocked" in err, err
    loaded = [m for m in NOT_ON_THE_PATH if m in modules]
    assert loaded == [], loaded


@pytest.mark.ray
def test_a_ray_submit_imports_nothing_it_does_not_use(ray_cp: Any, tmp_path: Path) -> None:
    code, modules, err = _submit_modules(ray_cp.root)
    assert code == 0, err
    assert "merlin.engines.http11" in modules
    loaded = [m for m in NOT_ON_THE_PATH if m in modules]
    assert loaded == [], loaded
    (run,) = ray_cp.list_runs()
    assert run["attempts"][-1]["submission_id"] and run["status"] in ("pending", "running", "succeeded"), run


# ------------------------------------------------------------------ typed values without dataclasses


class _Point(Value):
    x: int
    y: int = 0
    tags: list[str] = factory(default_factory=list)
    secret: str = factory(default="", repr=False)


class _Frozen(Value, frozen=True):
    name: str
    size: int = 1

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("size")
        object.__setattr__(self, "name", self.name.strip())


def test_a_value_has_a_dataclass_shape() -> None:
    p = _Point(1, secret="hunter2")
    assert (p.x, p.y, p.tags, p.secret) == (1, 0, [], "hunter2")
    assert repr(p) == "_Point(x=1, y=0, tags=[])"  # repr=False keeps the secret out
    assert p == _Point(x=1, y=0, secret="hunter2") and p != _Point(2) and p != (1, 0)
    p.tags.append("a")
    assert _Point(1).tags == [], "a factory default is made fresh for each instance"
    p.y = 5  # not frozen: assignable, and so not hashable
    assert p.y == 5
    with pytest.raises(TypeError):
        hash(p)
    assert _Point.__match_args__ == ("x", "y", "tags", "secret")
    for bad in (lambda: _Point(), lambda: _Point(1, 2, [], "", 5), lambda: _Point(1, z=3), lambda: _Point(1, x=1)):
        with pytest.raises(TypeError):
            bad()


def test_a_frozen_value_refuses_assignment_and_hashes_by_its_fields() -> None:
    f = _Frozen(" a ")
    assert f.name == "a", "__post_init__ ran"
    with pytest.raises(FrozenInstanceError):
        f.name = "b"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del f.size
    assert hash(f) == hash(_Frozen("a")) and {f, _Frozen("a")} == {f}
    g = f.replace(size=3)
    assert (g.name, g.size, f.size) == ("a", 3, 1)
    with pytest.raises(ValueError):
        f.replace(size=-1)  # __post_init__ runs on the copy


def test_the_job_api_types_and_engine_records_keep_their_shape() -> None:
    from merlin.client import Entrypoint, JobRequest, ResourceConfig
    from merlin.engines.base import Observation, Submitted

    req = JobRequest("j", Entrypoint.from_binary("echo", ["hi"]), resources=ResourceConfig(cpu=2, device="gpu:2"))
    assert req.resources.gpus == 2.0 and ResourceConfig().gpus is None and req.metadata == {}
    assert req == JobRequest("j", Entrypoint("echo", ("hi",)), resources=ResourceConfig(cpu=2, device="gpu:2"))
    with pytest.raises(AttributeError):
        req.name = "k"  # type: ignore[misc]
    assert req.replace(name="k").name == "k"
    assert Submitted("s").next_steps == [] and Submitted("s").next_steps is not Submitted("s").next_steps
    assert Observation(None).known is True
    info = ray_api.JobInfo.from_json({"status": "RUNNING", "runtime_env": {"env_vars": {"TOKEN": "s3cret"}}})
    assert info.env_vars == {"TOKEN": "s3cret"} and "s3cret" not in repr(info)
    assert ray_api.ClusterLoad.from_json({}) == ray_api.ClusterLoad()


# ------------------------------------------------------------------ secret patterns tried where they can match


def _every_pattern(value: str) -> str:
    """scrub_shapes with every pattern tried on every text (as before the literal check)."""
    import re

    for pattern, flags, repl, _needs in text._SHAPES:
        value = re.sub(pattern, repl, value, flags=flags)
    value = re.sub(text._INLINE_FLAG[0], lambda m: m.group(1) + text.REDACTED, value, flags=text._INLINE_FLAG[1])
    value = re.sub(text._INLINE_ASSIGN, lambda m: m.group(1) + (text.REDACTED if text.looks_secret(m.group(2)) else m.group(3)), value)
    if re.search(text._GLUED_PASSWORD_CLIENTS, value):
        value = re.sub(text._GLUED_PASSWORD, lambda m: m.group(1) + text.REDACTED, value)
    return value


SECRETS = [
    "https://user:pa55word@example.com/x", "Authorization: Bearer abcDEF123456789", "AUTHORIZATION=abcdef123", "Basic dXNlcjpwYXNzd29yZA==",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
    "ghp_" + "a" * 36, "github_pat_" + "B" * 30, "AKIA" + "A" * 16, "sk-proj-" + "x" * 30, "xoxb-1234567890-abc", "AIza" + "x" * 35,
    "hf_" + "z" * 34, "glpat-" + "q" * 20, "mysql -uroot -pS3cret db", "x --Password=hunter2", "env DB_PASSWORD=x cmd",
    "--API-KEY hunter22", "Kelvin \u212a: --api-\u212aey=hunter2", "\u0130 Authorizat\u0131on: abcdefgh",
]


@pytest.mark.parametrize("value", SECRETS)
def test_secrets_are_scrubbed_as_when_every_pattern_was_tried(value: str) -> None:
    assert text.scrub_shapes(value) == _every_pattern(value)
    if value.isascii():
        assert text.scrub_shapes(value) != value, "each example holds a secret"


def test_random_texts_scrub_as_when_every_pattern_was_tried() -> None:
    rng = random.Random(15)
    pieces = [*SECRETS, " ", "=", "-", "--token", "://", "@", ":", "Bearer ", "mysql", "-p", "AKIA", "eyJ", "sk-", "gh", "p_", "x" * 40, "\x1b[31m", "é"]
    alphabet = string.ascii_letters + string.digits + " -_=:/@.'\";&|()"
    for _ in range(3000):
        value = "".join(rng.choice(pieces) if rng.random() < 0.3 else rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        assert text.scrub_shapes(value) == _every_pattern(value), value


def test_plain_text_still_loses_escapes_and_control_characters() -> None:
    assert text.plain("\x1b[31mred\x1b[0m\x07 and\ttab\r\nnext\x00") == "red and tab\nnext"
    assert text.plain("just words") == "just words"


# ------------------------------------------------------------------ the collector during a submit

GC_PROBE = r"""
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write(f"\nGC:{gc.isenabled()}\n"))  # an exit callback: run() then exits normally
from merlin.cli.entry import run
sys.argv[0] = "merlin"
run()
"""


@pytest.mark.parametrize(
    ("args", "enabled"),
    [
        (["ray", "jobs", "submit", "--engine", "ray", "--target", "t", "--workflow", "w", "--", "true"], False),  # blocked: no cluster
        # a run still going when the submit returns (a forked supervisor can finish `true` before then: nothing to wait for)
        (["ray", "jobs", "submit", "--engine", "local", "--target", "t", "--workflow", "w", "--wait", "--", "sleep", "0.5"], True),
        (["--version"], True),
        (["ray", "jobs", "list"], True),
    ],
)
def test_the_collector_is_off_for_a_fast_submit_only(args: list[str], enabled: bool, tmp_path: Path) -> None:
    """The CLI starts with the garbage collector off (a tenth of a submit's CPU went to its passes over
    freshly loaded modules); every command but a fast-path submit that does not wait turns it back on."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "MERLIN_STATE_ROOT": str(tmp_path / "state"), "NO_COLOR": "1"}
    res = subprocess.run([sys.executable, "-c", GC_PROBE, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert f"GC:{enabled}" in res.stderr, (res.returncode, res.stderr[-2000:])


def test_the_built_in_kinds_placement_is_their_backends() -> None:
    """clusters.registry.PLACEMENT (read on every Ray submit instead of importing the backend) says
    what each built-in backend class says; a kind shadowed by register() is asked itself."""
    from merlin.clusters import registry

    assert set(registry.PLACEMENT) == set(registry.BACKENDS)
    for kind in registry.BACKENDS:
        cls = registry.backend_class(kind)
        assert registry.PLACEMENT[kind] == (bool(getattr(cls, "nodes_see_state_root", True)), getattr(cls, "default_env_cache", None)), kind

    class Elsewhere:
        nodes_see_state_root = False
        default_env_cache = "/scratch/envs"

    registry.register("local", Elsewhere)
    try:
        assert registry.env_placement("local") == (False, "/scratch/envs")
    finally:
        registry.unregister("local")
    assert registry.env_placement("local") == (True, None)
