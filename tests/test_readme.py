"""The README's Python block runs as written: as a script file (twice: the second run replaces
its own output), and through ``python -c``, where, as in a Jupyter kernel, the main module has
no file for the worker processes to import again. (Not in a Jupyter kernel itself: no
notebook stack in the test dependencies.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(600)


def _python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python block"
    return blocks[0]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def test_the_readme_python_block_runs_as_written(sample_dir: Path, tmp_path: Path) -> None:
    block = _python_block()
    shutil.copytree(sample_dir, tmp_path / "data" / "sample")  # the paths it names
    script = tmp_path / "example.py"
    script.write_text(block)
    for attempt in range(2):
        done = _run([str(script)], tmp_path)
        assert done.returncode == 0, (attempt, done.stderr[-3000:])
        assert re.search(r"\[\('\w+', 0\.\d+\)", done.stdout), done.stdout
    assert (tmp_path / "out" / "sample" / "model.json").exists()
    inline = _run(["-c", block], tmp_path)
    assert inline.returncode == 0, inline.stderr[-3000:]
    assert "lord" not in re.findall(r"'(\w+)'", inline.stdout)  # the query word is left out
