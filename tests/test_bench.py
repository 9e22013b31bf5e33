"""Every benchmark script runs in its quick mode, so none of them can rot unnoticed.

Scripts are found by glob: a new ``bench/*.py`` with a ``__main__`` block is covered without editing
this file. Modules without one are helpers; each must be imported by some script, which covers it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
FILES = sorted(BENCH.glob("*.py"))
SCRIPTS = [path for path in FILES if 'if __name__ == "__main__":' in path.read_text()]
HELPERS = [path for path in FILES if path not in SCRIPTS]
# Every script reports its result as a ratio against a baseline measured in the same run.
RATIO = re.compile(r"ratio\b[^\n]*?\d+\.\d+")


def test_bench_scripts_are_found() -> None:
    expected = {"engine_overhead.py", "faces.py", "gpu_swap.py", "train_step.py", "video_flicker.py", "video_swap.py"}
    assert {path.name for path in SCRIPTS} >= expected


@pytest.mark.parametrize("helper", HELPERS, ids=lambda path: path.name)
def test_helper_modules_are_used_by_a_script(helper: Path) -> None:
    importers = [path.name for path in SCRIPTS if re.search(rf"^\s*from {helper.stem} import", path.read_text(), re.M)]
    assert importers, f"bench/{helper.name} has no __main__ block and no script imports it"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_bench_script_runs_quick(script: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script), "--quick"],
        cwd=BENCH.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{script.name} --quick failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    assert RATIO.search(result.stdout), f"{script.name} --quick printed no ratio:\n{result.stdout}"
