"""The run's leak check (tests/leaks.py): a process naming the run's temp dir is found, reported and ended; others are not touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.leaks import end_leftovers, left_behind
from tests.process_support import wait_until


def test_a_process_left_under_the_temp_dir_is_found_reported_and_ended(tmp_path: Path) -> None:
    base = tmp_path / "run"
    (base / "t").mkdir(parents=True)
    by_arg = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(base / "t" / "gate")])
    by_cwd = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=base / "t")
    elsewhere = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path)
    # someone looking, in a shell of their own (HOME without rc files: a profile's own children, such as
    # pyenv's init, would be processes under the dir that are not the shell)
    home = tmp_path / "home"
    home.mkdir()
    person = subprocess.Popen(["bash", "-i"], cwd=base / "t", env={"PATH": os.environ["PATH"], "HOME": str(home)},
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        found = wait_until(lambda: (f := left_behind(base)) and len(f) == 2 and f)
        assert set(found) == {by_arg.pid, by_cwd.pid}, found
        said: list[str] = []
        assert end_leftovers(base, said.append) == 2
        assert by_arg.wait(timeout=10) is not None and by_cwd.wait(timeout=10) is not None
        assert str(by_arg.pid) in "\n".join(said) and "2 processes the tests left running" in said[0]
        assert elsewhere.poll() is None, "a process that does not name the run's temp dir is left alone"
        assert person.poll() is None, "an interactive shell in the temp dir is a person, not a leak"
        assert left_behind(base) == {}
    finally:
        for p in (by_arg, by_cwd, elsewhere, person):
            p.kill()
            p.wait()
