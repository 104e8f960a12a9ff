"""A small typed client for Ray's documented Jobs REST API (standard library only).

Why not the SDK (``ray.job_submission.JobSubmissionClient``): importing it
costs about 0.6 s and 58 MiB per command, and it reports every HTTP error as
a bare ``RuntimeError`` whose text has to be searched for "404". The REST
API it wraps is documented and stable; here every answer is a status code
plus Ray's JSON, mapped to typed values (:class:`merlin.values.Value`) and to one exception per meaning.

Endpoints (all under the dashboard address, e.g. ``http://127.0.0.1:8265``):

- ``GET  /api/jobs/``                    every job (``list[JobDetails]``)
- ``GET  /api/jobs/{submission_id}``     one job, 404 if the cluster never saw it
- ``GET  /api/jobs/{submission_id}/logs`` ``{"logs": "..."}``
- ``POST /api/jobs/{submission_id}/stop`` ``{"stopped": bool}``
- ``POST /api/jobs/``                    submit (``{"submission_id": ...}``)
- ``GET  /api/cluster_status``           the autoscaler's report (``ray status``'s data): pending
  resource demands, pending placement groups, the nodes' resources and usage (:class:`ClusterLoad`)
- ``GET  /api/jobs/{submission_id}/logs/tail`` a websocket streaming the log as it grows

Following logs reads the tail websocket with the standard library
(:mod:`merlin.engines.ray_tail`), so each byte crosses once, no asyncio and no
Ray import are needed, and Ctrl-C simply ends the read.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from merlin.values import Value, factory

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class RayApiError(Exception):
    """The jobs API answered with an error, or did not answer. ``status`` is the HTTP code (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        #: what went wrong in a person's words, without the exception's type (an unreachable cluster's OS error)
        self.reason = reason if reason is not None else message


class _Protocol(OSError):
    """An ``http.client`` protocol error, named as it was (``RemoteDisconnected``, ``IncompleteRead``)."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(text)
        self.name = name


class Unreachable(RayApiError):
    """No HTTP answer at all (connection refused, timeout, DNS)."""


def _unreachable(exc: BaseException) -> Unreachable:
    """The :class:`Unreachable` of a request's failure, named as the exception was."""
    name = exc.name if isinstance(exc, _Protocol) else type(exc).__name__
    return Unreachable(f"{name}: {exc}" if str(exc) else name, reason=str(exc) or name)


class Unauthorized(RayApiError):
    """HTTP 401/403: the cluster wants a (different) token."""


class JobNotFound(RayApiError):
    """HTTP 404: the cluster does not know this submission id."""


class JobInfo(Value, frozen=True):
    """One job as Ray reports it (``JobDetails`` in Ray's JSON); times in ms since the epoch."""

    status: str
    submission_id: str | None = None
    job_id: str | None = None
    entrypoint: str = ""
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    driver_exit_code: int | None = None
    metadata: dict[str, str] = factory(default_factory=dict)
    #: The job's runtime_env env_vars: the values merlin scrubs from ``message`` (never stored).
    env_vars: dict[str, str] = factory(default_factory=dict, repr=False)
    #: The runtime_env fields that need setting up before the job starts (pip, conda, working_dir, ...; not env_vars).
    runtime_env_setup: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobInfo:
        return cls(
            status=str(data.get("status") or "PENDING"),
            submission_id=data.get("submission_id"),
            job_id=data.get("job_id"),
            entrypoint=str(data.get("entrypoint") or ""),
            message=data.get("message"),
            error_type=data.get("error_type"),
            start_time=data.get("start_time") or None,
            end_time=data.get("end_time") or None,
            driver_exit_code=data.get("driver_exit_code"),
            metadata=dict(data.get("metadata") or {}),
            env_vars=dict(((data.get("runtime_env") or {}).get("env_vars") or {}) if isinstance(data.get("runtime_env"), dict) else {}),
            runtime_env_setup=tuple(sorted(k for k, v in (data.get("runtime_env") or {}).items() if k not in NO_SETUP and v))
            if isinstance(data.get("runtime_env"), dict) else (),
        )


#: runtime_env fields with nothing to install (set on the worker as it starts)
NO_SETUP = frozenset({"env_vars", "config", "_ray_commit", "_inject_current_ray"})


Shape = dict[str, float]


class ClusterLoad(Value, frozen=True):
    """What Ray's autoscaler reported last (``GET /api/cluster_status``, its ``loadMetricsReport``).

    ``demands``: resource shapes of tasks/actors (a job's supervisor among them)
    waiting for resources, with how many; ``pg_demands``: pending placement
    groups' bundles; ``nodes``: each node shape's total resources and how many
    nodes have it; ``usage``: resource -> (used, total) over the cluster;
    ``reported_at``: when the autoscaler wrote it (Unix time; None if unknown).
    """

    demands: list[tuple[Shape, int]] = factory(default_factory=list)
    pg_demands: list[dict[str, Any]] = factory(default_factory=list)
    request_demands: list[tuple[Shape, int]] = factory(default_factory=list)
    nodes: list[tuple[Shape, int]] = factory(default_factory=list)
    usage: dict[str, tuple[float, float]] = factory(default_factory=dict)
    reported_at: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterLoad:
        """Ray's dashboard camel-cases dict keys (``firesim_fpga`` -> ``firesimFpga``) but not
        those inside lists: resource names come from the node shapes, usage is mapped back to them."""
        status = ((data or {}).get("data") or {}).get("clusterStatus") or {}
        report = status.get("loadMetricsReport") or {}

        def shapes(rows: Any) -> list[tuple[Shape, int]]:
            out = []
            for row in rows or []:
                if isinstance(row, (list, tuple)) and len(row) == 2 and isinstance(row[0], dict):
                    out.append(({str(k): float(v) for k, v in row[0].items()}, int(row[1])))
            return out

        nodes = shapes(report.get("nodeTypes"))
        names = {_camel(k): k for shape, _n in nodes for k in shape}
        usage = {}
        for key, pair in (report.get("usage") or {}).items():
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                usage[names.get(key, key)] = (float(pair[0]), float(pair[1]))
        pgs = [x for x in report.get("pgDemand") or [] if isinstance(x, dict)]
        when = status.get("time")
        return cls(shapes(report.get("resourceDemand")), pgs, shapes(report.get("requestDemand")), nodes, usage,
                   float(when) if isinstance(when, (int, float)) else None)  # fmt: skip


def _camel(name: str) -> str:
    """The dashboard's key style (``ray.dashboard.utils.to_camel_case``)."""
    first, *rest = name.split("_")
    return first + "".join(x.title() for x in rest)


def _detail(body: bytes) -> str:
    """The first line of Ray's error body (JSON ``message``/``detail`` when it sends JSON)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("detail") or data.get("error") or text)
    return text.splitlines()[0] if text else "no detail"


class JobsApi:
    """The jobs API of one cluster. Holds an address and headers; a connection only inside
    :meth:`kept_open` (a batch of requests), never between calls."""

    def __init__(self, address: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> None:
        self.address = address.rstrip("/")
        self._url = urllib.parse.urlsplit(self.address if "://" in self.address else "http://" + self.address)
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._kept: Any = None

    def _connect(self, timeout: float) -> Any:
        import http.client

        conn_type = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
        return conn_type(self._url.hostname or "127.0.0.1", self._url.port, timeout=timeout)

    @contextmanager
    def kept_open(self) -> Iterator[JobsApi]:
        """One HTTP/1.1 connection for every request made inside (the dashboard keeps it alive),
        closed on leaving: a batch of ``get_job`` calls costs one TCP set-up, not one each."""
        if self._kept is not None:
            yield self
            return
        self._kept = self._connect(self.timeout)
        try:
            yield self
        finally:
            conn, self._kept = self._kept, None
            conn.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float | None = None, raw_body: bytes | None = None) -> Any:
        """One request; Ray's JSON back, or the exception that names the HTTP status.

        Inside :meth:`kept_open` the kept connection (``http.client``) is used; a GET on it
        that the server had closed is sent once more on a new one. Otherwise a plain
        ``http://`` head is asked through :mod:`merlin.engines.http11` (one request over a
        socket: no ``email`` or ``ssl`` imported on a submit), ``https://`` through
        ``http.client``; never through ``urllib.request``, so no proxy from the environment
        comes between merlin and a cluster it reaches directly.
        """
        data = json.dumps(body).encode("utf-8") if body is not None else raw_body
        content = "application/json" if body is not None else "application/octet-stream"
        headers = {**self.headers, **({"Content-Type": content} if data is not None else {})}
        full = self._url.path.rstrip("/") + path
        if self._kept is not None:
            status, raw = self._on_kept(method, full, data, headers, timeout or self.timeout)
        else:
            try:
                if self._url.scheme == "https":
                    status, raw = self._https(method, full, data, headers, timeout or self.timeout)
                else:
                    from merlin.engines import http11

                    status, raw = http11.request(self._url.hostname or "127.0.0.1", self._url.port, method, full, data, headers, timeout or self.timeout)
            except OSError as exc:
                raise _unreachable(exc) from None
        if status >= 400:
            kind = {401: Unauthorized, 403: Unauthorized, 404: JobNotFound}.get(status, RayApiError)
            raise kind(f"HTTP {status}: {_detail(raw)}", status)
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            raise RayApiError(f"the jobs API sent something that is not JSON: {raw[:80]!r}", status) from None

    def _on_kept(self, method: str, path: str, data: bytes | None, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        """(status, body) over the connection :meth:`kept_open` keeps; :class:`Unreachable` when none comes."""
        import http.client

        kept = self._kept
        for again in (False, True):
            conn = kept if not again else self._connect(timeout)
            if conn is kept and conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                if conn is kept and resp.will_close:
                    conn.close()  # the next request opens it again
                return resp.status, raw
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if conn is kept and method == "GET" and not again and not isinstance(exc, TimeoutError):
                    continue  # the server closed the kept connection between two requests
                raise _unreachable(exc) from None
            finally:
                if conn is not kept:
                    conn.close()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _https(self, method: str, path: str, data: bytes | None, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        """(status, body) through ``http.client``; its protocol errors as OSError (an :class:`Unreachable`)."""
        import http.client

        conn = self._connect(timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except http.client.HTTPException as exc:
            raise _Protocol(type(exc).__name__, str(exc)) from None
        finally:
            conn.close()

    @staticmethod
    def _job_path(submission_id: str, tail: str = "") -> str:
        return f"/api/jobs/{urllib.parse.quote(submission_id, safe='')}{tail}"

    # ------------------------------------------------------------------ reads

    def version(self, timeout: float | None = None) -> dict[str, Any]:
        """``GET /api/version``: served by Ray's job module, so an answer means the jobs API is up."""
        data = self._call("GET", "/api/version", timeout=timeout)
        return data if isinstance(data, dict) else {}

    def list_jobs(self) -> list[JobInfo]:
        data = self._call("GET", "/api/jobs/")
        return [JobInfo.from_json(j) for j in (data or []) if isinstance(j, dict)]

    def get_job(self, submission_id: str) -> JobInfo:
        """One job; :class:`JobNotFound` if the cluster never saw ``submission_id``."""
        data = self._call("GET", self._job_path(submission_id))
        if not isinstance(data, dict):
            raise RayApiError(f"the jobs API sent no job for {submission_id}")
        return JobInfo.from_json(data)

    def cluster_status(self) -> ClusterLoad:
        """The autoscaler's last report: pending demands, placement groups, node shapes, usage."""
        data = self._call("GET", "/api/cluster_status")
        return ClusterLoad.from_json(data if isinstance(data, dict) else {})

    def logs(self, submission_id: str) -> str:
        data = self._call("GET", self._job_path(submission_id, "/logs"), timeout=max(self.timeout, 30.0))
        return str((data or {}).get("logs") or "")

    def follow(
        self,
        submission_id: str,
        poll: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[str]:
        """Yield new log text until the job is terminal and its log is drained.

        Reads Ray's tail websocket (``/logs/tail``, :mod:`merlin.engines.ray_tail`):
        each byte of the log crosses the network once. Where there is no tail
        (a proxy that refuses the upgrade, a dropped connection), it polls
        ``/logs`` from where the tail stopped, every ``poll`` seconds.
        """
        sent = 0
        tail_done = False
        try:
            for text in self._tail(submission_id):
                sent += len(text)
                yield text
            tail_done = True
        except (JobNotFound, Unauthorized):
            raise
        except (RayApiError, OSError):
            pass  # no tail here: poll from where it stopped
        if tail_done and sent and self.get_job(submission_id).terminal:
            return  # Ray closes the tail once the job is terminal and its log drained
        # The tail sent nothing (a job that ended before its supervisor started) or broke off.
        while True:
            done = self.get_job(submission_id).terminal
            text = self.logs(submission_id)
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
            if done:
                return
            sleep(poll)

    def _tail(self, submission_id: str) -> Iterator[str]:
        from merlin.engines.ray_tail import HandshakeRefused, Tail

        try:
            tail = Tail.open(self._url, self._url.path.rstrip("/") + self._job_path(submission_id, "/logs/tail"), self.headers, self.timeout,
                             idle=max(self.timeout, 30.0), on_idle=lambda: self.get_job(submission_id))  # fmt: skip
        except HandshakeRefused as exc:
            kind = {401: Unauthorized, 403: Unauthorized, 404: JobNotFound}.get(exc.status, RayApiError)
            raise kind(f"HTTP {exc.status}: {_detail(exc.body)}", exc.status) from None
        with tail:
            yield from tail

    # ----------------------------------------------------------------- writes

    def submit(self, body: dict[str, Any]) -> str:
        """POST a job (Ray's ``JobSubmitRequest`` body); returns its submission id."""
        data = self._call("POST", "/api/jobs/", body, timeout=max(self.timeout, 30.0))
        return str((data or {}).get("submission_id") or body.get("submission_id") or "")

    def has_package(self, uri: str) -> bool:
        """Whether the cluster's GCS holds the package ``uri`` (``gcs://NAME.zip``): what Ray's SDK asks
        before it uploads a working dir (asking also pins the package for a while)."""
        try:
            self._call("GET", "/api/packages/" + uri.replace("://", "/", 1))
        except JobNotFound:  # HTTP 404: not there
            return False
        return True

    def upload_package(self, uri: str, data: bytes) -> None:
        """PUT a package (a zip) into the cluster's GCS under ``uri``, as Ray's SDK does for a working dir."""
        self._call("PUT", "/api/packages/" + uri.replace("://", "/", 1), raw_body=data, timeout=max(self.timeout, 120.0))

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop the job; False if it had already ended. :class:`JobNotFound` if unknown."""
        data = self._call("POST", self._job_path(submission_id, "/stop"))
        return bool((data or {}).get("stopped"))
