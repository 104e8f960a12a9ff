"""A TargetGen overlay's ``runtime:`` section: validated by the spec loader (one line naming the
file and the key), and the TargetGen run it starts gets that env plus merlin itself (a wheel built
from the submitter's checkout), so ``python -m merlin`` runs from the env, not from merlin's venv."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_cli
from tests.wheelhouse import wheelhouse  # noqa: F401  (fixture)

CAP = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
OVERLAY = EXAMPLES / "x86_cpu_baseline" / "overlays" / "host_local.yaml"
#: a package index on this machine's disk (a file:// URL: no network); merlin's dependencies come from it
LOCAL_INDEX = Path("/opt/pypi/simple")


def _overlay(tmp_path: Path, runtime_yaml: str) -> Path:
    ovl = tmp_path / "overlays" / "with_runtime.yaml"
    ovl.parent.mkdir(parents=True, exist_ok=True)
    ovl.write_text(OVERLAY.read_text() + "\nruntime:\n" + runtime_yaml)
    return ovl


@pytest.mark.parametrize(
    ("runtime_yaml", "key"),
    [("  pyhton: '3.11'\n", "runtime.pyhton"), ("  python: '3'\n", "runtime.python"), ("  packages: rich\n", "runtime.packages")],
)
def test_a_bad_runtime_section_is_one_line_naming_the_file_and_the_key(tmp_path: Path, runtime_yaml: str, key: str) -> None:
    ovl = _overlay(tmp_path, runtime_yaml)
    res = run_cli("targetgen", "validate", str(CAP), "--overlay", str(ovl))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "with_runtime.yaml:" in lines[0] and key in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_a_good_runtime_section_validates_and_lands_in_the_bundle_with_absolute_paths(tmp_path: Path) -> None:
    (tmp_path / "overlays" / "reqs.txt").parent.mkdir(parents=True)
    (tmp_path / "overlays" / "reqs.txt").write_text("mlnprobe==1.0\n")
    ovl = _overlay(tmp_path, "  python: '3.11'\n  requirements: reqs.txt\n  find_links: [wheels]\n  no_index: true\n")
    assert run_cli("targetgen", "validate", str(CAP), "--overlay", str(ovl)).returncode == 0
    out = tmp_path / "targets"
    res = run_cli("targetgen", "orchestrate", str(CAP), "--overlay", str(ovl), "--out-dir", str(out))
    assert res.returncode == 0, res.stderr
    bundle = json.loads(next(out.rglob("execution_bundle.json")).read_text())
    assert bundle["runtime"] == {"python": "3.11", "requirements": str(ovl.parent / "reqs.txt"), "find_links": [str(ovl.parent / "wheels")], "no_index": True}


@pytest.mark.slow
@pytest.mark.ray
def test_the_targetgen_run_gets_merlin_itself_in_its_env_and_runs_from_it(ray_cp, tmp_path: Path, wheelhouse: Path) -> None:
    if not (LOCAL_INDEX / "typer").is_dir():
        pytest.skip(f"no local package index at {LOCAL_INDEX} (merlin's dependencies come from an index; this test asks none over the network)")
    from merlin.envs.spec import find_uv

    # the local index has every dependency of merlin but uv itself: a stand-in wheel named uv
    # (the executor in the env never calls uv; only the launcher, outside it, does)
    stub = tmp_path / "stub-uv"
    (stub / "src" / "uv").mkdir(parents=True)
    (stub / "pyproject.toml").write_text(
        '[project]\nname = "uv"\nversion = "0.13.9"\n[build-system]\nrequires = ["uv_build>=0.9,<0.20"]\nbuild-backend = "uv_build"\n'
    )
    (stub / "src" / "uv" / "__init__.py").write_text("")
    subprocess.run(
        [find_uv(), "build", "--wheel", "--no-index", "--no-config", "--quiet", "--out-dir", str(wheelhouse.parent / "stub"), str(stub)],
        check=True,
        timeout=120,
    )
    ovl = _overlay(
        tmp_path, f"  packages: ['mlnprobe==2.0']\n  find_links: ['{wheelhouse}', '{wheelhouse.parent / 'stub'}']\n  index_url: ['{LOCAL_INDEX.as_uri()}']\n"
    )
    root, cache = ray_cp.root, tmp_path / "envcache"
    res = run_cli("targetgen", "execute", str(CAP), "--overlay", str(ovl), "--engine", "ray", "--out-dir", str(tmp_path / "targets"),
                  "--wait", "--json", "--state-root", str(root), env={"MERLIN_ENV_CACHE": str(cache)}, timeout=600)  # fmt: skip
    assert res.returncode == 10, res.stdout + res.stderr  # the executor's first operator question
    run = json.loads(res.stdout)
    assert run["status"] == "succeeded" and run["outcome"] == "awaiting_operator", run["message"]
    assert run["command"][:3] == ["python", "-m", "merlin"], run["command"]  # the env's python, not this venv's
    cp = ray_cp
    req = cp.ledger.read_request(run["run_id"])
    assert req.runtime is not None
    merlin_req = [p for p in req.runtime.packages if p.startswith("merlin @ file://")]
    assert merlin_req and merlin_req[0].endswith(".whl") and str(root / "wheels") in merlin_req[0], req.runtime.packages
    env_id = cp.status(run["run_id"]).attempt.env_id
    site = list((cache / "envs" / env_id).glob("lib/python*/site-packages"))[0]
    assert (site / "merlin" / "__init__.py").is_file(), "merlin itself is installed in the env (not an editable link)"
    assert (site / "mlnprobe" / "__init__.py").is_file() and "2.0" in (site / "mlnprobe" / "__init__.py").read_text()
    assert "merlin-env: environment" in cp.logs(run["run_id"])
    # built once per version and content of the checkout's sources
    assert len(list((root / "wheels").glob("merlin-*/merlin-*.whl"))) == 1
    shutil.rmtree(tmp_path / "targets", ignore_errors=True)
