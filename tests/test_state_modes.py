"""Issue 20 #7: every directory under a state root is 0700 and every file 0600 (the state umask,
``$MERLIN_STATE_UMASK``, 077 by default), after a workload touching every command family on a
fresh root: leases, runs on the local engine, artifacts, TargetGen, the gateway, a crash log,
and a real Ray run (with the shared head's own state root: its ``ray-start.log``).

A run's ``target/`` directory is skipped: it is the command's working directory, and what the
user's command writes there follows the user's umask, like any command's output (the same
exception as tests/test_security_secrets.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_cli
from merlin.controlplane import ControlPlane

INVENTORY = """\
schema_version: 1
items:
  - id: fpga-01
    pool: firesim_fpga
  - id: board-01
    pool: board
"""


def wrong_modes(root: Path) -> list[str]:
    """Every path under ``root`` (the root too) whose mode is not 0700 (directory) or 0600 (file)."""
    bad = []
    for p in [root, *root.rglob("*")]:
        rel = p.relative_to(root).parts
        if len(rel) >= 3 and rel[0] == "runs" and rel[2] == "target":
            continue  # runs/<id>/target: the user's command's own files (its umask)
        mode = stat.S_IMODE(p.lstat().st_mode)
        if mode != (0o700 if p.is_dir() else 0o600):
            bad.append(f"{oct(mode)} {p.relative_to(root.parent)}")
    return bad


def cli(root: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    cut = args.index("--") if "--" in args else len(args)  # options before a command's own argv
    res = run_cli(*args[:cut], "--state-root", str(root), *args[cut:])
    assert res.returncode in ok, (args, res.returncode, res.stderr)
    return res.stdout


def test_a_state_root_first_created_by_resources_define_is_private(tmp_path: Path) -> None:
    root = tmp_path / "fresh" / "state"
    inv = tmp_path / "lab.yaml"
    inv.write_text(INVENTORY)
    cli(root, "ray", "resources", "define", str(inv))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert wrong_modes(root) == []


@pytest.mark.slow  # several seconds: left out of --quick
def test_every_command_family_leaves_the_state_root_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "state"
    inv = tmp_path / "lab.yaml"
    inv.write_text(INVENTORY)
    # leases
    cli(root, "ray", "resources", "define", str(inv))
    lease = json.loads(cli(root, "ray", "resources", "reserve", "board:1", "--json"))["lease_id"]
    cli(root, "ray", "resources", "health", "fpga-01", "bad", "--reason", "fan")
    cli(root, "ray", "resources", "drain", "fpga-01", "--reason", "swap")
    cli(root, "ray", "resources", "show", lease)
    cli(root, "ray", "resources", "release", lease)
    # runs on the local engine
    run = json.loads(cli(root, "ray", "jobs", "submit", "--target", "m", "--workflow", "w", "--wait", "--json", "--",
                         "sh", "-c", "echo made > \"$MERLIN_TARGET_DIR/out.txt\"; echo done"))
    rid = run["run_id"]
    cli(root, "ray", "jobs", "status", rid)
    cli(root, "ray", "jobs", "list")
    assert "done" in cli(root, "ray", "jobs", "logs", rid)
    cli(root, "ray", "jobs", "why", rid)
    slow = json.loads(cli(root, "ray", "jobs", "submit", "--target", "m2", "--workflow", "w", "--json", "--", "sleep", "60"))["run_id"]
    cli(root, "ray", "jobs", "cancel", slow)
    cli(root, "ray", "jobs", "retry", slow)
    cli(root, "ray", "jobs", "cancel", slow)
    # artifacts
    assert "out.txt" in cli(root, "ray", "artifacts", "list", rid)
    cli(root, "ray", "artifacts", "fetch", rid, "out.txt", "--to", str(tmp_path / "fetched"))
    # TargetGen on the local engine (its target directory is the --out-dir's, the user's)
    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    ovl = EXAMPLES / "x86_cpu_baseline" / "overlays" / "host_local.yaml"
    cli(root, "targetgen", "execute", str(cap), "--overlay", str(ovl), "--engine", "local", "--out-dir", str(tmp_path / "targets"),
        ok=(0, 3, 10))
    # the gateway: one mutating call writes its audit log (and its token)
    pytest.importorskip("mcp", reason="the gateway extra is not installed")
    from merlin.gateway.auth import load_or_create_token, token_path
    from merlin.gateway.ops import Gateway

    gw = Gateway(root, transport="test")
    load_or_create_token(token_path(gw.cp))
    gw.call("leases_reserve", {"bundles": ["board:1"]}, client="pytest")
    assert gw.cp.layout.gateway_audit.is_file()
    # a crash log (an internal error in-process, as tests/test_layout_and_errors.py provokes it)
    from merlin.cli.app import main

    def boom(self, *a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(ControlPlane, "status", boom)
    monkeypatch.setattr(ControlPlane, "status_json", boom)
    monkeypatch.delenv("MERLIN_DEBUG", raising=False)
    with pytest.raises(SystemExit):
        main(["ray", "jobs", "status", rid, "--state-root", str(root)])
    capsys.readouterr()
    for part in ("resources/leases", "gateway/audit.jsonl", "gateway/token", "blobs/sha256", "crash", f"runs/{rid}/logs/attempt-1.log",
                 f"runs/{rid}/logs/supervisor.log"):
        assert (root / part).exists(), part
    assert list((root / "runs").glob("*/logs/*.log")), "the TargetGen run's log"
    assert wrong_modes(root) == []


def test_the_state_umask_option_reaches_leases_logs_and_the_gateway(tmp_path: Path) -> None:
    """``MERLIN_STATE_UMASK=007`` (a lab's shared group): 0770/0660 everywhere, the lease book and logs too."""
    root = tmp_path / "shared"
    inv = tmp_path / "lab.yaml"
    inv.write_text(INVENTORY)
    env = {"MERLIN_STATE_UMASK": "007"}
    for args in (("ray", "resources", "define", str(inv)), ("ray", "resources", "reserve", "board:1"),
                 ("ray", "jobs", "submit", "--target", "g", "--workflow", "w", "--wait", "--", "sh", "-c", "echo x > \"$MERLIN_TARGET_DIR/o.txt\"")):
        cut = args.index("--") if "--" in args else len(args)
        res = run_cli(*args[:cut], "--state-root", str(root), *args[cut:], env=env)
        assert res.returncode == 0, res.stderr
    modes = {(p.is_dir(), stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")] if p.relative_to(root).parts[2:3] != ("target",)}
    assert modes == {(True, 0o770), (False, 0o660)}, sorted(modes)


@pytest.mark.ray
@pytest.mark.slow
def test_a_ray_run_leaves_the_state_root_private(ray_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Ray run (logs kept from Ray, artifacts), on a ledger merlin itself created; and the shared
    head's own state root (created by ``start_local_cluster``): its ``ray-start.log``, token and records."""
    root = tmp_path / "ledger"
    cp = ControlPlane(root)
    head = ControlPlane(ray_cluster.state_root).ledger.read_cluster(ray_cluster.name)
    assert head is not None
    with cp.ledger.cluster_lock(head.name):  # the shared head's record, written into a root merlin creates
        cp.ledger.write_cluster(head)
    monkeypatch.setenv("MERLIN_STATE_ROOT", str(root))
    run = cp.submit(["sh", "-c", "echo ray-made > \"$MERLIN_TARGET_DIR/r.txt\"; echo on ray"], target="rm", workflow="w", engine="ray", wait=True, timeout=180)
    assert run.status == "succeeded", run
    assert "on ray" in cp.logs(run.run_id)
    assert (root / "runs" / run.run_id / "logs").is_dir()
    assert wrong_modes(root) == []
    head_root = ray_cluster.state_root
    assert list(head_root.glob("cluster/logs/*/ray-start.log"))
    assert wrong_modes(head_root) == []
