"""The read-only page in a real headless Chromium (Debian package `chromium`):
with the one-time link it renders the runs (and lease, when offered) and
clusters tables and refreshes them; without the token it is the login page."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from test_gateway_support import Server, start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")


def chromium(profile: Path, *args: str) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("gw-page"))
    run = httpx2.post(f"{srv.url}/api/runs_submit", json={"command": ["true"], "target": "pagedemo", "workflow": "smoke"}, headers=srv.headers(), timeout=60)
    assert run.status_code == 200, run.text
    srv.run_id = run.json()["run_id"]  # type: ignore[attr-defined]
    from merlin.controlplane import ControlPlane

    ControlPlane(srv.state_root).leases.define([{"id": "board0", "pool": "vcu118"}], source="test")
    lease = httpx2.post(f"{srv.url}/api/leases_reserve", json={"bundles": ["vcu118:1"]}, headers=srv.headers(), timeout=60)
    assert lease.status_code == 200 and lease.json()["state"] == "granted", lease.text
    # the waiting request names the run, which has finished: the page's "why waiting" column says nothing holds it
    waiting = httpx2.post(f"{srv.url}/api/leases_reserve", json={"bundles": ["vcu118:1"], "run_id": srv.run_id}, headers=srv.headers(), timeout=60)
    srv.lease_ids = (lease.json()["lease_id"], waiting.json()["lease_id"])  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def one_time_link(server: Server) -> str:
    m = re.search(r"(http://\S+/login\?once=\S+)", server.stderr())
    assert m, server.stderr()
    return m.group(1)


@pytest.mark.slow  # several seconds: left out of --quick
def test_page_with_the_one_time_link_renders_the_tables(server: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    link = one_time_link(server)
    artifacts = tmp_path_factory.mktemp("page-artifacts")
    dom = chromium(artifacts / "profile", "--virtual-time-budget=4000", "--dump-dom", link)
    assert '<table id="runs">' in dom and '<table id="clusters">' in dom and '<table id="targets">' in dom
    assert server.run_id in dom and "pagedemo" in dom  # type: ignore[attr-defined]
    assert 'id="login"' not in dom
    # the JS refresh ran with the session cookie (the timestamp replaced "now")
    assert re.search(r'<span id="updated">[^<]*\d', dom), dom[:500]
    assert '<table id="leases">' in dom and "board0" in dom and '<table id="lease-queue">' in dom
    held, queued = server.lease_ids  # type: ignore[attr-defined]
    assert held in dom and queued in dom  # the holder of board0, and the request waiting for it
    assert "<th>why waiting</th>" in dom
    row = re.search(rf'<tr><td class="id">{server.run_id}</td>.*?</tr>', dom)  # type: ignore[attr-defined]
    # the run has finished: a request still queued in its name holds nothing back (runs_why: held false)
    assert row and '<td class="why"><div title="-">-</div></td>' in row.group(0), row and row.group(0)
    shot = artifacts / "page.png"
    # the link is one-time: a second browser with it gets the login page
    again = chromium(artifacts / "profile2", "--dump-dom", link)
    assert 'id="login"' in again
    # a screenshot kept as a test artifact: the first profile keeps its session cookie
    chromium(artifacts / "profile", "--window-size=1280,900", "--virtual-time-budget=3000", f"--screenshot={shot}", f"{server.url}/")
    assert shot.is_file() and shot.stat().st_size > 5000


def test_without_the_token_the_page_is_the_login_page(server: Server, tmp_path: Path) -> None:
    dom = chromium(tmp_path / "profile", "--dump-dom", f"{server.url}/")
    assert 'id="login"' in dom and '<table id="runs">' not in dom
    assert server.token not in dom
    r = httpx2.get(f"{server.url}/", headers={})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx2.post(f"{server.url}/login", data={"token": "wrong"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers


def test_the_page_cookie_is_good_for_reads_only(server: Server) -> None:
    r = httpx2.post(f"{server.url}/login", data={"token": server.token})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    sid = r.cookies.get("merlin_session")
    assert sid
    cookies = {"merlin_session": sid}
    assert httpx2.get(f"{server.url}/page/tables", cookies=cookies).status_code == 200
    # a mutating request with the cookie alone is refused (no CSRF through the page session)
    post = httpx2.post(f"{server.url}/api/runs_cancel", json={"run_id": server.run_id}, cookies=cookies)  # type: ignore[attr-defined]
    assert post.status_code == 401
    # and it opens nothing but the page: not the API document, not the MCP stream
    assert httpx2.get(f"{server.url}/openapi.json", cookies=cookies).status_code == 401
    assert httpx2.get(f"{server.url}/mcp", cookies=cookies).status_code == 401


MEASURE = """<script>
window.addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'measured';
  const ids = [...document.querySelectorAll('#runs td.id')];
  const heads = [...document.querySelectorAll('#runs th')];
  out.textContent = JSON.stringify({
    page: document.documentElement.scrollWidth, viewport: window.innerWidth,
    idLines: ids.map(td => { const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length; }),
    headRight: Object.fromEntries(heads.map(th => [th.textContent, th.getBoundingClientRect().right])),
  });
  document.body.appendChild(out);
});
</script>"""


def test_the_page_fits_1280_px_with_run_ids_on_one_line(server: Server, tmp_path: Path) -> None:
    """At 1280 px: no horizontal scroll, every run id on one line, the age column on screen, with a run
    whose message and target are long. The served page plus a script that measures it, in Chromium."""
    import json

    long = httpx2.post(
        f"{server.url}/api/runs_submit",
        json={"command": ["sh", "-c", "exit 3"], "target": "a-long-target-name-for-the-page-x", "workflow": "smoke"},
        headers=server.headers(),
        timeout=60,
    )
    assert long.status_code == 200, long.text
    page = httpx2.get(f"{server.url}/", headers=server.headers(), timeout=60)
    assert page.status_code == 200 and '<table id="runs">' in page.text, page.text[:300]
    html_file = tmp_path / "page.html"
    html_file.write_text(page.text.replace("</body>", MEASURE + "</body>"))
    dom = chromium(tmp_path / "profile", "--window-size=1280,900", "--virtual-time-budget=2000", "--dump-dom", html_file.as_uri())
    m = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    got = json.loads(m.group(1).replace("&quot;", '"'))
    assert got["viewport"] == 1280 and got["page"] <= 1280, got
    assert got["idLines"] and all(n == 1 for n in got["idLines"]), got  # one line box each
    assert got["headRight"]["age"] <= 1280 and max(got["headRight"].values()) <= 1280, got
