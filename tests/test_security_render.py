"""Issue 9 section 5 and issue 8's markup bug: every renderer shows outside text
literally (no Rich markup parsed) and with control characters neutralised, on a
terminal (FORCE_COLOR) and off one, while the records keep the text as captured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_cli
from test_executor import HAL, OK, Spec, ready_spec

MARKUP = '[bold]hi[/bold] a[1]'
LISTCOMP = "[print(i) for i in range(3)]"
NASTY = "\x1b]0;pwned\x07\x1b[2Jgone\rback\x08\x9b31m"
RAW = ("\x1b]0;", "\x07", "\x1b[2J", "\r", "\x08", "\x9b")

TTY = {"NO_COLOR": "", "FORCE_COLOR": "1", "TERM": "xterm-256color"}
PLAIN = {"NO_COLOR": "1"}
MODES = pytest.mark.parametrize("mode", [TTY, PLAIN], ids=["terminal", "plain"])


def assert_neutral(text: str) -> None:
    for seq in RAW:
        assert seq not in text, (seq, text)
    assert "\\x1b]0;pwned\\x07" in text and "\\x1b[2Jgone" in text


def submit(root: Path, *cmd: str) -> str:
    res = run_cli("ray", "jobs", "submit", "--target", "r", "--workflow", "w", "--wait", "--state-root", str(root), "--", *cmd)
    assert res.returncode in (0, 1), res.stderr
    return res.stdout.strip().splitlines()[-1]


@MODES
def test_jobs_status_shows_commands_literally(tmp_path: Path, mode: dict[str, str]) -> None:
    root = tmp_path / "s"
    rid = submit(root, "sh", "-c", f'echo "{MARKUP}"')
    res = run_cli("ray", "jobs", "status", rid, "--state-root", str(root), env=mode)
    assert res.returncode == 0, res.stderr
    assert f'echo "{MARKUP}"' in res.stdout
    rid2 = submit(root, "python3", "-c", LISTCOMP)
    res2 = run_cli("ray", "jobs", "status", rid2, "--state-root", str(root), env=mode)
    assert LISTCOMP in res2.stdout
    rid3 = submit(root, "echo", NASTY)
    res3 = run_cli("ray", "jobs", "status", rid3, "--state-root", str(root), env=mode)
    assert_neutral(res3.stdout + res3.stderr)
    # the record keeps the argv as captured
    rec = json.loads((root / "runs" / rid3 / "run_record.json").read_text())
    assert rec["command"] == ["echo", NASTY]
    # and --json escapes it as JSON does
    js = run_cli("ray", "jobs", "status", rid3, "--state-root", str(root), "--json", env=mode)
    assert "\x1b" not in js.stdout and json.loads(js.stdout)["command"][1] == NASTY


@MODES
def test_jobs_list_shows_messages_literally(tmp_path: Path, mode: dict[str, str]) -> None:
    root = tmp_path / "s"
    rid = submit(root, "true")
    path = root / "runs" / rid / "run_record.json"
    rec = json.loads(path.read_text())
    rec["message"] = f"{MARKUP} {NASTY}"  # as an older merlin or a hand edit could leave it
    path.write_text(json.dumps(rec))
    for args in (["ray", "jobs", "list"], ["ray", "jobs", "watch", rid, "--timeout", "5s"]):
        res = run_cli(*args, "--state-root", str(root), env=mode)
        assert res.returncode == 0, res.stderr
        assert MARKUP in res.stdout, res.stdout
        assert_neutral(res.stdout)


def _spec_with_nasty_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Spec:
    s = Spec(tmp_path / "spec")
    s.orchestrate()
    s.set_validations(OK)
    ready_spec(s, monkeypatch)
    script = f"printf '%s\\n' '{MARKUP}' '{LISTCOMP}'; printf '\\033]0;pwned\\007\\033[2Jgone\\rback\\010\\233'; exit 1"
    s.set_validations([{"id": "nasty", "argv": ["sh", "-c", script], "description": f"d {MARKUP}"}], task_id=HAL)
    return s


@MODES
def test_targetgen_execute_and_status_neutralise_validation_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: dict[str, str]) -> None:
    s = _spec_with_nasty_validation(tmp_path, monkeypatch)
    target = str(s.target_dir)
    res = run_cli("targetgen", "execute", "--from-dir", target, env=mode)
    assert res.returncode == 10, res.stderr
    shown = res.stdout + res.stderr
    assert MARKUP in shown and LISTCOMP in shown
    for seq in RAW:
        assert seq not in shown, (seq, shown)
    assert "\\x1b]0;pwned\\x07" in shown
    # the task log keeps the output as captured; only the views are neutralised
    assert "\x1b]0;pwned\x07" in (s.target_dir / "logs" / f"{HAL}.log").read_text(errors="replace")
    status = run_cli("targetgen", "status", "--target-dir", target, env=mode)
    assert status.returncode == 0, status.stderr
    shown = status.stdout + status.stderr
    assert MARKUP in shown and LISTCOMP in shown
    for seq in RAW:
        assert seq not in shown, (seq, shown)


def test_neutralise_and_safe_console_units() -> None:
    from merlin.cli.output import neutralise, out

    assert neutralise("a\x1b[31mb\x07c\rd\x9be\u202ef\tg\nh") == "a\\x1b[31mb\\x07c\\x0dd\\x9be\\u202ef\tg\nh"
    console = out()
    with console.capture() as cap:
        console.print(f"{MARKUP} {LISTCOMP} :smile: {NASTY}")
    text = cap.get()
    assert MARKUP in text and LISTCOMP in text and ":smile:" in text
    for seq in RAW:
        assert seq not in text
