"""Bounded inputs (issue 9, section 3): every file merlin parses is refused,
with one located line and exit 2, before it can hang a command or exhaust
memory -- a FIFO, /dev/zero, a 47 MB file, an alias bomb, a node-count bomb --
and the one name rule of ``execute`` applies at load.

Cases that could hang run the real CLI in a subprocess with a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import REPO
from merlin.errors import SpecError
from merlin.spec.loader import load_capability, load_overlay
from merlin.spec.yamlsafe import DEFAULT_MAX_BYTES, DEFAULT_MAX_NODES, MAX_BYTES_ENV, MAX_NODES_ENV, load_yaml

DATA = REPO / "tests" / "bad_inputs"
BASE_CAPABILITY = DATA / "base_capability.yaml"
BASE_OVERLAY = DATA / "base_overlay.yaml"


def _validate(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return run_cli("targetgen", "validate", *args, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`merlin targetgen validate {' '.join(args)}` did not finish in {timeout}s")


def _refused(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result.stderr.splitlines()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_as_spec_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "capability.yaml"
    os.mkfifo(fifo)
    lines = _refused(_validate(str(fifo), timeout=30))
    assert lines == [f"{fifo}: is a FIFO (named pipe) (expected a capability spec YAML file)"]
    overlay = tmp_path / "overlay.yaml"
    os.mkfifo(overlay)
    lines = _refused(_validate(str(BASE_CAPABILITY), "--overlay", str(overlay), timeout=30))
    assert lines == [f"{overlay}: is a FIFO (named pipe) (expected a deployment overlay YAML file)"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_is_refused_before_reading() -> None:
    lines = _refused(_validate("/dev/zero", timeout=30))
    assert lines == ["/dev/zero: is a character device (expected a capability spec YAML file)"]
    with pytest.raises(SpecError) as info:
        load_overlay("/dev/zero")
    assert info.value.lines == ["/dev/zero: is a character device (expected a deployment overlay YAML file)"]


def test_large_file_with_a_million_keys_is_refused_by_size(tmp_path: Path) -> None:
    """The 47 MB, 1M-key YAML of the probe: refused from its size, without being read or parsed."""
    big = tmp_path / "capability.yaml"
    with big.open("w") as f:
        f.write("schema_version: 1\n")
        row = "k{:07d}: " + "v" * 35 + "\n"  # 47 bytes a key
        f.writelines(row.format(i) for i in range(1_000_000))
    size = big.stat().st_size
    assert size > 45_000_000
    lines = _refused(_validate(str(big), timeout=30))
    assert lines == [
        f"{big}: file is too large ({size:,} bytes; expected a capability spec YAML file of at most "
        f"{DEFAULT_MAX_BYTES:,} bytes, raise the limit with {MAX_BYTES_ENV})"
    ]


def test_size_limit_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "capability.yaml"
    spec.write_bytes(BASE_CAPABILITY.read_bytes())
    monkeypatch.setenv(MAX_BYTES_ENV, "100")
    with pytest.raises(SpecError) as info:
        load_capability(spec)
    assert info.value.lines[0].startswith(f"{spec}: file is too large (") and "at most 100 bytes" in info.value.lines[0]
    monkeypatch.setenv(MAX_BYTES_ENV, str(spec.stat().st_size))
    assert load_capability(spec).model.target.name == "base_target"
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(SpecError) as info:
        load_capability(spec)
    assert info.value.lines == [f"{MAX_BYTES_ENV}='lots': not a whole number (expected a positive limit, default {DEFAULT_MAX_BYTES})"]


def _bomb(levels: int = 9) -> str:
    lines = ["    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, levels)]
    return "".join(lines)


def test_alias_bomb_in_deployment_extra_is_refused_at_load(tmp_path: Path) -> None:
    """The free-form deployment.extra used to pass validate and then blow up orchestrate and execute."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(BASE_OVERLAY.read_text() + "  extra:\n" + _bomb())
    lines = _refused(_validate(str(BASE_CAPABILITY), "--overlay", str(overlay), "--json", timeout=60))
    assert len(lines) == 1
    assert lines[0].startswith(f"{overlay}:20: YAML aliases expand the document to more than {DEFAULT_MAX_NODES:,} nodes"), lines
    assert MAX_NODES_ENV in lines[0]
    plan = run_cli("targetgen", "plan", str(BASE_CAPABILITY), "--overlay", str(overlay), "--out-dir", str(tmp_path / "out"))
    assert plan.returncode == 2 and plan.stderr.splitlines() == lines
    for command in ("orchestrate", "execute"):  # the commands that used to grow without bound
        result = run_cli("targetgen", command, str(BASE_CAPABILITY), "--overlay", str(overlay), "--out-dir", str(tmp_path / "out"), timeout=60)
        assert result.returncode == 2 and result.stderr.splitlines()[-1] == lines[0], (command, result.stderr)
    assert not (tmp_path / "out").exists()


def test_small_alias_reuse_is_still_fine(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(BASE_OVERLAY.read_text() + "  extra:\n" + _bomb(levels=3))
    extra = load_overlay(overlay).model.deployment.extra
    assert len(extra["l2"]) == 10 and extra["l2"][0] == extra["l1"]


@pytest.mark.slow  # several processes, seconds even on a quiet machine
def test_node_count_bomb_is_refused(tmp_path: Path) -> None:
    """Many plain nodes within the size limit: refused at the line where the count crosses the limit."""
    spec = tmp_path / "capability.yaml"
    items = DEFAULT_MAX_NODES + 10
    per_line = 1000
    body = "".join("  - [" + ", ".join(["1"] * per_line) + "]\n" for _ in range(items // per_line + 1))
    spec.write_text(BASE_CAPABILITY.read_text() + "references:\n" + body)
    assert spec.stat().st_size < DEFAULT_MAX_BYTES
    with pytest.raises(SpecError) as info:
        load_capability(spec)
    assert len(info.value.lines) == 1
    line = info.value.lines[0]
    assert line.startswith(f"{spec}:") and f"YAML has more than {DEFAULT_MAX_NODES:,} nodes" in line and MAX_NODES_ENV in line
    assert 41 < int(line.split(":")[1]) <= 41 + items // per_line + 1


def test_node_limit_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_NODES_ENV, "20")
    with pytest.raises(SpecError) as info:
        load_capability(BASE_CAPABILITY)
    assert "YAML has more than 20 nodes" in info.value.lines[0]


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_capability(tmp_path)
    assert info.value.lines == [f"{tmp_path}: is a directory (expected a capability spec YAML file)"]
    with pytest.raises(SpecError) as info:
        load_capability(tmp_path / "nope.yaml")
    assert info.value.lines == [f"{tmp_path / 'nope.yaml'}: no such file (expected a capability spec YAML file)"]


def test_prompt_frontmatter_is_bounded(tmp_path: Path) -> None:
    """Prompt fragments go through the same limits: a FIFO, an alias bomb in frontmatter."""
    from merlin.targetgen.prompts import parse_fragment

    bomb = tmp_path / "10-bomb.md"
    bomb.write_text("---\nsection: target_facts\nnote:\n" + _bomb() + "---\nbody\n")
    with pytest.raises(SpecError) as info:
        parse_fragment(bomb, "target")
    assert len(info.value.lines) == 1 and info.value.lines[0].startswith(f"{bomb}:8: YAML aliases expand")  # l4, where 10**5 is crossed, info.value.lines
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "20-fifo.md"
        os.mkfifo(fifo)
        with pytest.raises(SpecError) as info:
            parse_fragment(fifo, "target")
        assert info.value.lines == [f"{fifo}: is a FIFO (named pipe) (expected a prompt fragment (Markdown with YAML frontmatter))"]


def test_prompt_fragment_fifo_does_not_hang_a_subprocess(tmp_path: Path) -> None:
    """In a child process with a timeout, so a regression hangs nothing but the child."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "10-fifo.md"
    os.mkfifo(fifo)
    code = (
        "import sys; from pathlib import Path; from merlin.errors import SpecError\n"
        "from merlin.targetgen.prompts import parse_fragment\n"
        "try:\n    parse_fragment(Path(sys.argv[1]), 'target')\nexcept SpecError as e:\n    print(e.lines[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip().endswith("is a FIFO (named pipe) (expected a prompt fragment (Markdown with YAML frontmatter))")


def test_load_yaml_is_the_public_entry_for_other_kinds(tmp_path: Path) -> None:
    """The lease inventory (and any later file) uses merlin.spec.yamlsafe.load_yaml: same limits, located lines."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("schema_version: 1\ndevices:\n  - name: board-a\n    tags: [k1]\n")
    doc = load_yaml(inventory, kind="lease inventory")
    assert doc.data["devices"][0]["name"] == "board-a"
    assert doc.line("devices", 0, "tags") == 4 and doc.where("devices", 0, "name") == f"{inventory}:3: devices[0].name"
    inventory.write_text("schema_version: 1\ndevices: []\ndevices: []\n")
    with pytest.raises(SpecError) as info:
        load_yaml(inventory, kind="lease inventory")
    assert info.value.lines == [f"{inventory}:3: devices: duplicate key (first defined on line 2)"]
    with pytest.raises(SpecError) as info:
        load_yaml(tmp_path, kind="lease inventory")
    assert info.value.lines == [f"{tmp_path}: is a directory (expected a lease inventory YAML file)"]


# --- one name rule, applied at load ----------------------------------------------

NAMES = ["ok", "a.b", "a-b_c", "x" * 128, "ok..name", "..", "a/b", ".hidden", "-x", "", "x" * 129, "a\n", "é", "a b", "1"]


@pytest.mark.parametrize("name", NAMES, ids=[json.dumps(n)[:20] for n in NAMES])
def test_spec_name_rule_is_executes_rule(name: str) -> None:
    """A target name plan accepts is never refused by execute (merlin.ledger.paths.validate_name)."""
    import yaml

    from merlin.errors import BadInput
    from merlin.ledger.paths import validate_name
    from merlin.spec.models import CapabilitySpec
    from merlin.spec.names import is_safe_name

    data = yaml.safe_load(BASE_CAPABILITY.read_text())
    data["target"]["name"] = name
    try:
        CapabilitySpec.model_validate(data)
        at_load = True
    except Exception:
        at_load = False
    try:
        validate_name(name)
        at_execute = True
    except BadInput:
        at_execute = False
    if name == "a\n":  # the ledger's '$' lets a trailing newline through; the spec rule does not
        assert at_load is False and is_safe_name(name) is False
        return
    assert at_load == at_execute == is_safe_name(name), (name, at_load, at_execute)


def test_bad_target_name_is_a_located_error_in_validate(tmp_path: Path) -> None:
    spec = tmp_path / "capability.yaml"
    spec.write_text(BASE_CAPABILITY.read_text().replace("  name: base_target", "  name: ok..name"))
    lines = _refused(_validate(str(spec)))
    assert lines == [
        f"{spec}:6: target.name: 'ok..name' is not a safe name "
        "(expected letters, digits, '_', '.', '-', starting with a letter or digit, at most 128, no '..')"
    ]
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(BASE_OVERLAY.read_text().replace("  name: sim_local", "  name: sim..local"))
    with pytest.raises(SpecError) as info:
        load_overlay(overlay)
    assert info.value.lines[0].startswith(f"{overlay}:4: deployment.name: 'sim..local' is not a safe name")
