"""Nothing from elsewhere (issue 15): no other project's source under benchmarks/; the
benchmarks that compare with upstream merlin take a checkout from $MERLIN_UPSTREAM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

PROBE = "import sys; sys.path.insert(0, 'benchmarks'); from _common import say_baseline, upstream_cli; say_baseline(upstream_cli())"


def _probe(env_value: str | None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "MERLIN_UPSTREAM"}
    if env_value is not None:
        env["MERLIN_UPSTREAM"] = env_value
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def test_no_copied_upstream_source_and_every_upstream_benchmark_takes_the_checkout() -> None:
    assert not (REPO / "benchmarks" / "baselines").exists()
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        text = script.read_text()
        assert "baselines/" not in text and '"baselines"' not in text, script.name  # no path into a copied tree
        if "tools/merlin.py" in text or "upstream_cli" in text:
            assert "upstream_cli()" in text or script.name == "_common.py", script.name
    readme = (REPO / "benchmarks" / "README.md").read_text()
    assert "MERLIN_UPSTREAM" in readme and "git clone https://github.com/ucb-bar/merlin" in readme


def test_without_a_checkout_the_baseline_is_absent_and_a_wrong_one_is_refused(tmp_path: Path) -> None:
    absent = _probe(None)
    assert absent.returncode == 0 and "baseline: upstream merlin absent" in absent.stdout
    wrong = _probe(str(tmp_path))
    assert wrong.returncode != 0 and "no tools/merlin.py there" in wrong.stderr
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "merlin.py").write_text("print('upstream')\n")
    found = _probe(str(tmp_path))
    assert found.returncode == 0 and f"baseline: upstream merlin at {tmp_path}" in found.stdout
