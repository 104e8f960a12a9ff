"""``JobsApi.kept_open``: a waiter's batch of ``get_job`` calls shares one connection (the jobs API
keeps HTTP/1.1 connections alive), and a connection the server closed between two requests is
opened again for the next GET. Against a real HTTP server on loopback, standing in for Ray's
dashboard (the same answers: JSON, 404 for an unknown submission)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from merlin.engines.ray_api import JobNotFound, JobsApi


class Dashboard(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.close_after_each = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Dashboard

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        sub = self.path.rsplit("/", 1)[-1]
        found = sub.startswith("merlin-")
        body = json.dumps({"submission_id": sub, "status": "SUCCEEDED"} if found else {"message": "not found"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_after_each:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if self.server.close_after_each:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[Dashboard]:
    server = Dashboard()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_batch_of_gets_shares_one_connection(dashboard: Dashboard) -> None:
    api = JobsApi(f"http://127.0.0.1:{dashboard.server_address[1]}", timeout=5)
    with api.kept_open():
        got = [api.get_job(f"merlin-r{i}-1").status for i in range(5)]
        with pytest.raises(JobNotFound):
            api.get_job("unknown")  # a 404 on the kept connection leaves it usable
        assert api.get_job("merlin-r9-1").submission_id == "merlin-r9-1"
    assert got == ["SUCCEEDED"] * 5
    assert dashboard.connections == 1
    api.get_job("merlin-r0-1")  # outside: a connection of its own, closed after
    assert dashboard.connections == 2 and api._kept is None


def test_a_connection_the_server_closed_is_opened_again(dashboard: Dashboard) -> None:
    dashboard.close_after_each = True
    api = JobsApi(f"http://127.0.0.1:{dashboard.server_address[1]}", timeout=5)
    with api.kept_open():
        assert [api.get_job(f"merlin-r{i}-1").status for i in range(3)] == ["SUCCEEDED"] * 3
    assert dashboard.connections == 3
