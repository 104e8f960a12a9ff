"""`ray cluster env NAME`: after eval, Ray's own CLI and SDK submit, list and stop a job on a merlin cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import run_cli
from ray_fixtures import env_without_ray_vars

RAY = str(Path(sys.executable).parent / "ray")


def _bash(script: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = env_without_ray_vars()
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return subprocess.run(["bash", "-c", "set -e\n" + script], capture_output=True, text=True, env=env, timeout=timeout)


def test_env_of_an_unknown_cluster_is_not_found(tmp_path: Path) -> None:
    result = run_cli("ray", "cluster", "env", "lab", "--state-root", str(tmp_path))
    assert result.returncode == 4, result.stderr
    assert "no cluster 'lab'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.ray
def test_after_eval_rays_own_cli_and_sdk_submit_list_and_stop_a_job(ray_cp, tmp_path: Path) -> None:
    root = ray_cp.root
    rec = ray_cp.ledger.read_cluster("default")
    doc = json.loads(run_cli("ray", "cluster", "env", "--state-root", str(root), "--json").stdout)
    assert doc["variables"]["RAY_API_SERVER_ADDRESS"] == rec.address
    assert doc["variables"]["RAY_AUTH_MODE"] == "token" and doc["variables"]["RAY_AUTH_TOKEN_PATH"] == rec.auth.token_file

    merlin = f"{sys.executable} -m merlin"
    # without the exports Ray's CLI cannot list this cluster's jobs (the failure)
    bare = _bash(f"RAY_API_SERVER_ADDRESS={rec.address} {RAY} job list", timeout=120)
    assert bare.returncode != 0, bare.stdout

    cli_id = f"env-cli-{uuid.uuid4().hex[:8]}"
    cli = _bash(
        f"""eval "$({merlin} ray cluster env default --state-root {root})"
{RAY} job submit --no-wait --submission-id {cli_id} -- python -c 'import time; time.sleep(120)'
{RAY} job list | grep -q {cli_id}
{RAY} job stop --no-wait {cli_id}
{RAY} status
"""
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "Node status" in cli.stdout or "Resources" in cli.stdout, cli.stdout

    sdk_id = f"env-sdk-{uuid.uuid4().hex[:8]}"
    code = (
        "from ray.job_submission import JobSubmissionClient\n"
        "c = JobSubmissionClient()\n"
        f"c.submit_job(entrypoint=\"python -c 'import time; time.sleep(120)'\", submission_id={sdk_id!r})\n"
        f"assert {sdk_id!r} in [j.submission_id for j in c.list_jobs()]\n"
        f"assert c.stop_job({sdk_id!r})\n"
        "print('sdk ok')\n"
    )
    script = tmp_path / "sdk.py"
    script.write_text(code)
    sdk = _bash(f'eval "$({merlin} ray cluster env default --state-root {root})"\n{sys.executable} {script}')
    assert sdk.returncode == 0 and "sdk ok" in sdk.stdout, sdk.stdout + sdk.stderr

    # the dashboard, from the printed comment: its page loads, and the API it calls answers with the file's token
    import re

    import httpx2

    printed = run_cli("ray", "cluster", "env", "--state-root", str(root)).stdout
    url, token_file = re.search(r"^# dashboard: (\S+) \(when it asks for the token, paste the contents of (\S+)\)$", printed, re.M).groups()  # type: ignore[union-attr]
    assert "<title>Ray Dashboard</title>" in httpx2.get(url, timeout=30).text
    assert httpx2.get(f"{url}/nodes?view=summary", timeout=30).status_code == 401
    cookie = {"ray-authentication-token": Path(token_file).read_text().strip()}
    assert httpx2.get(f"{url}/nodes?view=summary", cookies=cookie, timeout=30).status_code == 200


def test_the_exports_source_in_bash_for_a_token_file_and_a_token_variable_cluster(tmp_path: Path) -> None:
    from merlin.controlplane import ControlPlane
    from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterRecord

    cp = ControlPlane(tmp_path / "state")
    for name, auth in (("lab", ClusterAuth(mode="token", token_file="/srv/tok en")), ("env", ClusterAuth(mode="token", token_env="LAB_TOKEN"))):
        cp.ledger.write_cluster(ClusterRecord(
            name=name, status="active", host="127.0.0.1", address="http://127.0.0.1:8300", dashboard_url="http://127.0.0.1:8300",
            gcs_address="127.0.0.1:6400", temp_dir="", ports=ClusterPorts(gcs=6400, dashboard=8300), auth=auth, message="active",
        ))  # fmt: skip
    show = "; ".join(f'echo "{v}=${{{v}-unset}}"' for v in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
    merlin = f"{sys.executable} -m merlin"
    lab = _bash(f'export RAY_AUTH_TOKEN=stale; eval "$({merlin} ray cluster env lab --state-root {cp.root})"; {show}')
    assert lab.returncode == 0, lab.stderr
    assert lab.stdout.splitlines() == [
        "RAY_API_SERVER_ADDRESS=http://127.0.0.1:8300", "RAY_ADDRESS=127.0.0.1:6400", "RAY_AUTH_MODE=token",
        "RAY_AUTH_TOKEN_PATH=/srv/tok en", "RAY_AUTH_TOKEN=unset", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0",
    ]  # fmt: skip
    env = _bash(f'export LAB_TOKEN=s3cret; eval "$({merlin} ray cluster env env --state-root {cp.root})"; {show}')
    assert "RAY_AUTH_TOKEN=s3cret" in env.stdout.splitlines() and "RAY_AUTH_TOKEN_PATH=unset" in env.stdout.splitlines()
    printed = run_cli("ray", "cluster", "env", "env", "--state-root", str(cp.root)).stdout
    assert "s3cret" not in printed and 'export RAY_AUTH_TOKEN="${LAB_TOKEN}"' in printed  # the secret itself is never printed
