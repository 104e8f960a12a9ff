"""merlin.client, used only through its documented names: the same tests on a LocalClient and
on a Client of the shared Ray head (docs/api.md). Nothing else of merlin is imported here."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from merlin.client import Client, Entrypoint, JobAlreadyExists, JobFailed, JobRequest, JobStatus, LocalClient, wait_all

PY = sys.executable


def job(name: str, *argv: str) -> JobRequest:
    return JobRequest(name, Entrypoint.from_binary(argv[0], list(argv[1:])))


def running(handle, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() != JobStatus.RUNNING:
        assert time.monotonic() < deadline, f"{handle.job_id} never ran: {handle.record().message}"
        time.sleep(0.2)


class ClientContract:
    """The tests, written once against the documented names; each subclass gives its client."""

    def test_submit_wait_logs(self, client: Client) -> None:
        handle = client.submit(job("hello", PY, "-c", "print('hello from a job'); print('second line')"))
        assert handle.wait(timeout=120) == JobStatus.SUCCEEDED
        assert handle.status() == JobStatus.SUCCEEDED and handle.status().finished()
        assert "hello from a job" in handle.logs()
        assert handle.logs(max_lines=1) == ("second line",)
        assert handle.record().run_id == handle.job_id and handle.record().status == "succeeded"

    def test_a_failed_job_raises_job_failed(self, client: Client) -> None:
        handle = client.submit(job("fails", PY, "-c", "import sys; print('about to fail'); sys.exit(3)"))
        with pytest.raises(JobFailed) as caught:
            handle.wait(timeout=120)
        assert caught.value.job_id == handle.job_id and caught.value.status == JobStatus.FAILED
        assert handle.wait(timeout=5, raise_on_failure=False) == JobStatus.FAILED
        assert "about to fail" in handle.logs()

    def test_terminate_stops_a_running_job(self, client: Client) -> None:
        handle = client.submit(job("sleeper", "sleep", "300"))
        running(handle)
        with pytest.raises(TimeoutError):
            handle.wait(timeout=0.5)
        handle.terminate()
        assert handle.wait(timeout=60, raise_on_failure=False) == JobStatus.STOPPED
        with pytest.raises(JobFailed) as caught:
            handle.wait(timeout=5)
        assert caught.value.status == JobStatus.STOPPED

    def test_wait_all(self, client: Client) -> None:
        handles = [client.submit(job(f"part-{i}", PY, "-c", f"import sys; sys.exit({code})")) for i, code in enumerate((0, 0, 5))]
        assert wait_all(handles, timeout=180, raise_on_failure=False) == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.FAILED]
        with pytest.raises(JobFailed) as caught:
            wait_all(handles, timeout=10)
        assert caught.value.job_id == handles[2].job_id
        assert wait_all(handles[:2]) == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]

    def test_a_live_job_is_adopted_by_name(self, client: Client) -> None:
        first = client.submit(job("train", "sleep", "300"))
        again = client.submit(job("train", "sleep", "300"))
        assert again.job_id == first.job_id  # run twice, started once
        with pytest.raises(JobAlreadyExists) as caught:
            client.submit(job("train", "sleep", "300"), adopt_existing=False)
        assert caught.value.handle.job_id == first.job_id and caught.value.name == "train"
        first.terminate()
        assert first.wait(timeout=60, raise_on_failure=False) == JobStatus.STOPPED
        fresh = client.submit(job("train", PY, "-c", "pass"))  # the name is free once its job finished
        assert fresh.job_id != first.job_id
        assert fresh.wait(timeout=120) == JobStatus.SUCCEEDED


class TestLocalClient(ClientContract):
    @pytest.fixture
    def client(self) -> Iterator[Client]:
        with LocalClient() as c:
            yield c


@pytest.mark.ray
class TestRayClient(ClientContract):
    @pytest.fixture
    def client(self, ray_cp) -> Client:  # a state root of its own whose `default` cluster is the shared head
        return Client(state_root=ray_cp.root, cluster="default")
