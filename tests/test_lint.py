"""What the ComfyUI Registry's `comfy node validate` checks (ruff S102 exec, S307 eval, E702), plus pyflakes."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_registry_rules_and_pyflakes():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed (requirements-test.txt lists it)")
    run = subprocess.run([ruff, "check", "--no-cache", "--select", "S102,S307,E702,F,E9", "--exclude", ".cache",
                          "--output-format", "concise", str(REPO)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
