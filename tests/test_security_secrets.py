"""Issue 9 section 4: secrets are redacted by name AND by shape, in argv, env and
metadata; state is private by default (0600 files, 0700 directories) with a
documented umask for a lab's group; values redacted from the environment are
scrubbed from what merlin copies out of a failed Ray run."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.ledger.text import REDACTED, redact_argv, redact_env, redact_mapping, scrub_values, secret_values

GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AKIA = "AKIAIOSFODNN7EXAMPLE"
SK = "sk-proj-" + "Zx9" * 10
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    "argv, secret",
    [
        (["mysql", "--password", "hunter2pw", "db"], "hunter2pw"),
        (["tool", "--token=tok-4242-xyz"], "tok-4242-xyz"),
        (["mysql", "-p", "s3cretpw", "db"], "s3cretpw"),
        (["tool", "--api-key", "k-9988776655"], "k-9988776655"),
        (["git", "clone", "https://alice:pa55word@git.example/r.git"], "pa55word"),
        (["curl", "-H", "Authorization: Bearer abc.def-ghi_123456"], "abc.def-ghi_123456"),
        (["curl", "-H", "Authorization: token9876543210"], "token9876543210"),
        (["env", "DATABASE_URL=postgres://u:dbpass99@h/db", "run"], "dbpass99"),
        (["env", "PGPASS=pgsecret77", "psql"], "pgsecret77"),
        (["echo", GHP], GHP),
        (["echo", AKIA], AKIA),
        (["echo", SK], SK),
        (["echo", JWT], JWT),
        (["sh", "-c", f"mysql --password=shellpw11 && GITHUB_TOKEN=inline22 gh api && echo {GHP}"], "shellpw11"),
        (["sh", "-c", "GITHUB_TOKEN=inline22 gh api"], "inline22"),
    ],
)
def test_argv_secrets_redacted_by_shape_and_flag(argv: list[str], secret: str) -> None:
    red = redact_argv(argv)
    assert secret not in " ".join(red), red
    assert REDACTED in " ".join(red)
    assert red[0] == argv[0]


def test_argv_keeps_what_is_not_secret() -> None:
    for argv in (["ssh", "-p", "22", "host"], ["mkdir", "-p", "./out/x"], ["python3", "-c", "[print(i) for i in range(3)]"],
                 ["git", "clone", "https://git.example/r.git"], ["echo", "tokenless", "--verbose"]):
        assert redact_argv(argv) == argv
    # the user part of a URL stays; only the password goes
    assert redact_argv(["x", "https://alice:pw1234@h/p"]) == ["x", f"https://alice:{REDACTED}@h/p"]


@pytest.mark.parametrize(
    "argv, secret, kept",
    [
        (["mysql", "-uroot", "-pSECRETpw9", "db"], "SECRETpw9", ["mysql", "-uroot", f"-p{REDACTED}", "db"]),
        (["/usr/bin/mysqldump", "-pdump5ecret", "db"], "dump5ecret", ["/usr/bin/mysqldump", f"-p{REDACTED}", "db"]),
        (["sudo", "mariadb", "-pmaria5ecret"], "maria5ecret", ["sudo", "mariadb", f"-p{REDACTED}"]),
        (["sh", "-c", "mysql -uroot -pSHELLpw7 db; echo done"], "SHELLpw7", ["sh", "-c", f"mysql -uroot -p{REDACTED} db; echo done"]),
        # the shell's separator after an inline secret is the shell's: the stored command keeps it, byte for byte
        (["sh", "-c", "tool --password=semi5ecret;echo ok"], "semi5ecret", ["sh", "-c", f"tool --password={REDACTED};echo ok"]),
        (["sh", "-c", "tool --token=amp5ecret&&echo ok|cat"], "amp5ecret", ["sh", "-c", f"tool --token={REDACTED}&&echo ok|cat"]),
    ],
)
def test_glued_mysql_passwords_and_shell_separators(argv: list[str], secret: str, kept: list[str]) -> None:
    """Issue 20 #8: ``-pSECRET`` was stored in clear, and ``--password=X;`` lost its ``;``."""
    red = redact_argv(argv)
    assert secret not in " ".join(red)
    assert red == kept


def test_glued_p_flags_of_other_programs_are_not_passwords() -> None:
    for argv in (["gcc", "-pthread", "x.c"], ["find", ".", "-print"], ["cc", "-pedantic", "-pipe", "y.c"], ["sh", "-c", "gcc -pthread x.c"]):
        assert redact_argv(argv) == argv


def test_env_and_metadata_redacted_by_shape() -> None:
    env = {"DATABASE_URL": "postgres://u:dbpass99@h/db", "PGPASS": "pgsecret77", "HEADER": "Bearer abcdef123456", "MODE": "fast", "X": GHP}
    red = redact_env(env)
    assert red["DATABASE_URL"] == f"postgres://u:{REDACTED}@h/db"
    assert red["PGPASS"] == REDACTED and red["MODE"] == "fast" and red["X"] == REDACTED
    assert "abcdef123456" not in red["HEADER"]
    meta = redact_mapping({"note": f"deploy with {AKIA}", "nested": [{"url": "redis://:rpw5555@h:6379"}], "db_password": "x"})
    assert AKIA not in json.dumps(meta) and "rpw5555" not in json.dumps(meta) and meta["db_password"] == REDACTED
    # the values hidden from env are scrubbed from copied text, whole
    vals = secret_values(env)
    assert set(vals) >= {"postgres://u:dbpass99@h/db", "pgsecret77", GHP} and "fast" not in vals
    text = "connecting to postgres://u:dbpass99@h/db with pgsecret77 in fast mode"
    assert scrub_values(text, vals) == f"connecting to {REDACTED} with {REDACTED} in fast mode"


def test_messages_keep_prose_and_lose_secret_values() -> None:
    from merlin.ledger.text import plain

    for prose in ("Token authentication is OFF", "basic checks passed", "requires a token (RAY_AUTH_MODE=token)",
                  "jobs API http://127.0.0.1:8265 answered; mail a@b", "Basic configuration"):
        assert plain(prose) == prose
    for secret, msg in (("abc.def-ghi_123456", "sent Authorization: Bearer abc.def-ghi_123456"), ("dXNlcjpwYXNz", "Basic dXNlcjpwYXNz"),
                        ("p4ss", "postgres://u:p4ss@h/db failed"), (GHP, f"push with {GHP} refused")):
        assert secret not in plain(msg) and REDACTED in plain(msg)


def _tree_modes(root: Path, skip: Path | None = None) -> tuple[set[int], set[int]]:
    """Modes of the ledger's files and dirs; ``skip``: the run's target dir (the command's own files, umask)."""
    files, dirs = set(), set()
    for p in [root, *root.rglob("*")]:
        if skip is not None and (p == skip or skip in p.parents):
            continue
        (dirs if p.is_dir() else files).add(stat.S_IMODE(p.stat().st_mode))
    return files, dirs


def test_records_hold_no_secret_and_state_is_private(tmp_path: Path) -> None:
    root = tmp_path / "state"
    secrets = ["hunter2pw", "tok-4242-xyz", "s3cretpw", "pa55word", "abc.def-ghi_123456", "dbpass99", "pgsecret77"]
    env = {"DATABASE_URL": "postgres://u:dbpass99@h/db", "PGPASS": "pgsecret77", "MODE": "fast"}
    cmd = ["sh", "-c", 'echo "$MODE $1"', "sh", "--password", "hunter2pw", "--token=tok-4242-xyz", "-p", "s3cretpw",
           "https://al:pa55word@h/x", "Authorization: Bearer abc.def-ghi_123456"]
    res = run_cli("ray", "jobs", "submit", "--target", "sec", "--workflow", "w", "--wait", "--state-root", str(root),
                  *[f"--env={k}={v}" for k, v in env.items()], "--json", "--", *cmd)
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)
    assert not any(s in res.stdout for s in secrets), res.stdout
    # the command itself ran with the real values
    logs = run_cli("ray", "jobs", "logs", run["run_id"], "--state-root", str(root))
    assert logs.stdout.strip() == "fast --password"
    status = run_cli("ray", "jobs", "status", run["run_id"], "--state-root", str(root), "--json")
    assert status.returncode == 0 and not any(s in status.stdout for s in secrets)
    listed = run_cli("ray", "jobs", "list", "--state-root", str(root), "--json")  # prints the stored bytes unparsed
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["run_id"] == run["run_id"]
    assert not any(s in listed.stdout for s in secrets), listed.stdout
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".jsonl"):
            text = p.read_text()
            assert not any(s in text for s in secrets), (p, text)
    files, dirs = _tree_modes(root)
    files, dirs = _tree_modes(root, skip=Path(run["target_dir"]))
    assert dirs == {0o700} and files == {0o600}, (sorted(map(oct, dirs)), sorted(map(oct, files)))


def test_state_umask_option_for_a_shared_group(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    res = run_cli("ray", "jobs", "submit", "--target", "g", "--workflow", "w", "--wait", "--state-root", str(root),
                  "--", "true", env={"MERLIN_STATE_UMASK": "007"})
    assert res.returncode == 0, res.stderr
    files, dirs = _tree_modes(root)
    files, dirs = _tree_modes(root, skip=next(root.glob("runs/*/target")))
    assert dirs == {0o770} and files == {0o660}, (sorted(map(oct, dirs)), sorted(map(oct, files)))
    bad = run_cli("ray", "jobs", "submit", "--target", "g", "--workflow", "w", "--state-root", str(root), "--", "true",
                  env={"MERLIN_STATE_UMASK": "9x"})
    assert bad.returncode == 2 and "MERLIN_STATE_UMASK" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_out_dir_outputs_follow_the_process_umask(tmp_path: Path) -> None:
    """Privacy is for state; a planner's --out-dir is the user's and stays as their umask says."""
    out = tmp_path / "open"
    out.mkdir(mode=0o755)
    os.chmod(out, 0o755)
    from merlin.atomic import atomic_write_json

    atomic_write_json(out / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((out / "x.json").stat().st_mode) == 0o666 & ~mask


@pytest.mark.ray
@pytest.mark.slow
def test_failed_ray_run_error_message_never_holds_a_redacted_value(ray_cp: ControlPlane) -> None:
    value = "v3ry-s3cret-Value-0042"
    url = "postgres://app:dbPw-7788@db/prod"
    run = ray_cp.submit(["sh", "-c", 'echo "token is $LAB_TOKEN"; echo "db $DATABASE_URL"; exit 3'], target="sec", workflow="leak",
                        engine="ray", env={"LAB_TOKEN": value, "DATABASE_URL": url}, wait=True, timeout=120)
    assert run.status.value == "failed", run.message
    att = run.attempts[-1]
    assert att.error_message and "token is" in att.error_message  # Ray copied the job's last output
    dumped = json.dumps(run.model_dump(mode="json"))
    assert value not in dumped and "dbPw-7788" not in dumped and url not in dumped
    assert REDACTED in att.error_message
    for p in ray_cp.layout.run_dir(run.run_id).rglob("*.json*"):
        assert value not in p.read_text() and "dbPw-7788" not in p.read_text(), p


def test_a_submitted_glued_password_is_nowhere_under_the_state_root_and_the_command_kept_byte_for_byte(tmp_path: Path) -> None:
    """Issue 20 #8, end to end: a run whose shell command holds ``-pSECRET`` and ``--password=X;`` ran with
    the values, and no file under the state root (records, events, index, logs) holds them; the stored
    command is the one that ran, byte for byte, apart from each value."""
    root = tmp_path / "state"
    script = "mysql() { :; }; tool() { :; }; mysql -uroot -pSECRETpw9 db; tool --password=semi5ecret;echo ok"
    res = run_cli("ray", "jobs", "submit", "--target", "sec", "--workflow", "glued", "--wait", "--state-root", str(root), "--json", "--", "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)
    assert run["status"] == "succeeded" and "SECRETpw9" not in res.stdout and "semi5ecret" not in res.stdout
    logs = run_cli("ray", "jobs", "logs", run["run_id"], "--state-root", str(root))
    assert logs.stdout.strip() == "ok"  # the `;` stayed the shell's: `echo ok` ran as its own command
    stored = json.loads((root / "runs" / run["run_id"] / "run_request.json").read_text())["command"]
    assert stored == ["sh", "-c", script.replace("SECRETpw9", REDACTED).replace("semi5ecret", REDACTED)]
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert b"SECRETpw9" not in data and b"semi5ecret" not in data, p
