"""Views on a real pseudo-terminal of 80 and 120 columns (issue 19): no line of `jobs list`,
`jobs status`, `targetgen status`, `cluster list` or `resources list` is wider than the
terminal, and no suggested command is split over lines.

stdout and stderr are one pty whose window size is set (no $COLUMNS: Rich reads the size
from the terminal); what it shows is also fed to a terminal emulator (pyte), which checks
that the run ids a person would paste stand whole on one screen line. A line may be longer
than the terminal only when it is one unbreakable token (an identifier or a path after its
key, kubectl's rule) or a command to paste (the terminal wraps around it, Rich never inside).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest

from cli_runner import run_cli
from conftest import REPO

ME = "./merlin"  # $MERLIN_INVOKED_AS: every suggested command starts with it
WIDTHS = (80, 120)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_pty(args: list[str], width: int, state_root: Path, timeout: float = 60) -> tuple[str, list[str]]:
    """``merlin ARGS`` with stdout and stderr on a ``width``-column pty: (the text it wrote, the screen pyte shows)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 400, width, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update({"NO_COLOR": "1", "MERLIN_INVOKED_AS": ME, "MERLIN_STATE_ROOT": str(state_root), "TERM": "xterm"})
    proc = subprocess.Popen([sys.executable, "-m", "merlin", *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    raw = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed the pty
                data = b""
            if not data:
                break
            raw += data
        elif proc.poll() is not None:
            break
    os.close(master)
    proc.wait(timeout=10)
    screen = pyte.Screen(width, 400)
    screen.set_mode(pyte.modes.LNM)
    pyte.ByteStream(screen).feed(raw)
    text = ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r\n", "\n").replace("\r", "")
    return text, [line.rstrip() for line in screen.display if line.strip()]


def check_fits(text: str, width: int, commands: list[str], what: str) -> None:
    """Every line within ``width``, but a command to paste or a key and one token; every command whole on one line."""
    lines = text.splitlines()
    for line in lines:
        if len(line) <= width:
            continue
        if ME + " " in line or line.startswith("command "):
            continue  # a command: one line, the terminal wraps around it
        value = re.split(r"\s{2,}", line.strip(), maxsplit=1)[-1]
        assert " " not in value.strip(), f"{what} at {width}: a {len(line)}-column line:\n{line}\n\n{text}"
    for cmd in commands:
        assert any(cmd in line for line in lines), f"{what} at {width}: the command is not whole on one line: {cmd}\n\n{text}"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("views") / "state"
    env = {"MERLIN_STATE_ROOT": str(root)}
    ids = []
    for target, cmd in (("muon-gpu-hal", "echo boom; exit 7"), ("a-very-long-target-name-for-identifiers-x", "exit 3"), ("t", "true")):
        res = run_cli("ray", "jobs", "submit", "--engine", "local", "--target", target, "--workflow", "bring-up", "--wait", "--", "sh", "-c", cmd, env=env)
        ids.append(res.stdout.strip().splitlines()[-1])
    from merlin.controlplane import ControlPlane
    from merlin.ledger.models import ClusterPorts, ClusterRecord

    cp = ControlPlane(root)
    for name in ("default", "a-cluster-with-a-long-name"):  # nothing listens on port 1: unreachable, with a long message
        cp.ledger.write_cluster(
            ClusterRecord(
                name=name,
                kind="local",
                status="active",
                host="127.0.0.1",
                address="http://127.0.0.1:1",
                dashboard_url="http://127.0.0.1:1",
                temp_dir=str(root / "tmp"),
                ports=ClusterPorts(gcs=1, dashboard=2),
            )
        )
    cp.leases.define(
        [
            {"id": f"board{i}", "pool": "vcu118", "labels": {"site": "lab-b", "rack": f"r{i}", "fw": "2024.2-rc1"}, "host": "fpga-host-01.lab.example"}
            for i in range(3)
        ],
        source="test",
    )
    cap = REPO / "target_specs" / "examples" / "muon_gpu_hal" / "capability.yaml"
    out = tmp_path_factory.mktemp("views-targets")
    assert run_cli("targetgen", "orchestrate", str(cap), "--out-dir", str(out)).returncode == 0
    target = out / "muon_gpu_hal"
    assert run_cli("targetgen", "execute", "--from-dir", str(target), env=env).returncode == 10  # waits on the SDK probe question
    return {"root": root, "ids": ids, "target": target}


@pytest.mark.parametrize("width", WIDTHS)
def test_jobs_list_fits_and_keeps_run_ids_whole(place: dict[str, object], width: int) -> None:
    root = place["root"]
    text, screen = on_pty(["ray", "jobs", "list"], width, root)  # type: ignore[arg-type]
    check_fits(text, width, [], "jobs list")
    for rid in place["ids"]:  # type: ignore[attr-defined]
        assert any(line.split()[:1] == [rid] for line in screen), (width, screen)
    heads = [h.strip() for h in re.split(r"[┃│]", text.splitlines()[0])]
    assert heads[:2] == ["RUN ID", "STATUS"], text
    from merlin.cli.runs_table import DROP_ORDER

    dropped = [h for h in DROP_ORDER if h not in heads and h != "WAITING-ON"]
    assert dropped == [h for h in DROP_ORDER if h != "WAITING-ON"][: len(dropped)], (heads, dropped)  # in the documented order
    if width >= 120:
        assert "AGE" in heads and "ago" in text and "OUTCOME" in heads, text  # relative ages
    else:
        assert "operator?" in text, text  # OUTCOME dropped: the gate shows in STATUS
    wide, _ = on_pty(["ray", "jobs", "list", "-o", "wide"], width, root)  # type: ignore[arg-type]
    assert "CREATED" in wide and "OBSERVED" in wide and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", wide) and "boom" in wide or "exit code 7" in wide, wide


@pytest.mark.parametrize("width", WIDTHS)
def test_jobs_status_fits_and_its_next_steps_paste_whole(place: dict[str, object], width: int) -> None:
    root = place["root"]
    from merlin.cli.nextsteps import command

    for rid in place["ids"]:  # type: ignore[attr-defined]
        rec = json.loads(run_cli("ray", "jobs", "status", rid, "--json", env={"MERLIN_STATE_ROOT": str(root)}).stdout)
        os.environ["MERLIN_INVOKED_AS"] = ME
        try:
            cmds = [command(s, []) for s in rec["next_steps"]]
        finally:
            del os.environ["MERLIN_INVOKED_AS"]
        text, _ = on_pty(["ray", "jobs", "status", rid], width, root)  # type: ignore[arg-type]
        check_fits(text, width, cmds, "jobs status")


@pytest.mark.parametrize("width", WIDTHS)
def test_targetgen_status_fits_and_the_answer_command_is_one_line(place: dict[str, object], width: int) -> None:
    target = place["target"]
    data = json.loads(run_cli("targetgen", "status", "--target-dir", str(target), "--json").stdout)
    q = data["open_questions"][0]["id"]
    answer = f"{ME} targetgen answer --target-dir {target} --question-id {q} --choice OPTION"
    text, screen = on_pty(["targetgen", "status", "--target-dir", str(target)], width, place["root"])  # type: ignore[arg-type]
    check_fits(text, width, [answer], "targetgen status")
    assert any("implement_runtime_hal" in line.split() for line in screen), screen  # task ids whole


@pytest.mark.parametrize("width", WIDTHS)
def test_cluster_list_fits_with_the_jobs_url_whole(place: dict[str, object], width: int) -> None:
    text, _ = on_pty(["ray", "cluster", "list"], width, place["root"])  # type: ignore[arg-type]
    check_fits(text, width, [], "cluster list")
    rows = [line for line in text.splitlines() if line.startswith(("default ", "a-cluster-with-a-long-name "))]
    assert len(rows) == 2 and all("http://127.0.0.1:1" in line.split() for line in rows), text  # one line each, the URL whole
    names, _ = on_pty(["ray", "cluster", "list", "-o", "name"], width, place["root"])  # type: ignore[arg-type]
    assert names.split() == ["a-cluster-with-a-long-name", "default"] or names.split() == ["default", "a-cluster-with-a-long-name"], names


@pytest.mark.parametrize("width", WIDTHS)
def test_resources_list_fits(place: dict[str, object], width: int) -> None:
    text, _ = on_pty(["ray", "resources", "list"], width, place["root"])  # type: ignore[arg-type]
    check_fits(text, width, [], "resources list")
    assert sum(1 for line in text.splitlines() if line.split()[:1] and line.split()[0].startswith("board")) == 3, text


def test_explain_renders_its_styles_and_never_prints_markup(tmp_path: Path) -> None:
    cap = REPO / "target_specs" / "examples" / "muon_gpu_hal" / "capability.yaml"
    text, screen = on_pty(["targetgen", "explain", str(cap)], 80, tmp_path)
    assert "[bold]" not in text and "[/bold]" not in text, text
    assert screen[0].startswith("Muon SIMT GPU (HAL driver)"), screen[:3]
    check_fits("\n".join(line for line in text.splitlines() if "│" in line or "━" in line), 80, [], "targetgen explain tables")
