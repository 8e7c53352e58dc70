"""`make demo` (python -m scripts.runner.demo): honest when there is nothing to run, works when there is."""
import json
import os
import subprocess
import sys

import pytest

from scripts.runner.comfy_env import REPO


def run_demo(*args, env=None):
    return subprocess.run([sys.executable, "-m", "scripts.runner.demo", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_missing_workflow_is_reported_and_exits_nonzero(tmp_path):
    proc = run_demo(str(tmp_path / "emocast_basic.json"))
    assert proc.returncode == 2
    assert "is not available yet" in proc.stderr and "Nothing was started" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.comfyui
def test_demo_runs_a_ui_workflow_in_a_real_server(comfy_env, tmp_path):
    """A two-node UI workflow (EmptyImage -> SaveImage) goes through the whole demo path."""
    workflow = {
        "last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {},
        "nodes": [
            {"id": 1, "type": "EmptyImage", "mode": 0, "order": 0, "inputs": [],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": [16, 8, 1, 255]},
            {"id": 2, "type": "SaveImage", "mode": 0, "order": 1,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [], "widgets_values": ["demo/probe"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(workflow))
    env = dict(os.environ, EMOCAST_COMFY_CORE=str(comfy_env.core), EMOCAST_VENV=str(comfy_env.venv))
    proc = run_demo(str(path), "--base-dir", str(tmp_path / "base"), "--timeout", "120", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = [line.rsplit(": ", 1)[1] for line in proc.stdout.splitlines() if "output from node 2" in line]
    assert len(outputs) == 1 and outputs[0].endswith(".png"), proc.stdout
    assert (tmp_path / "base" / "output" / "demo").is_dir()
    assert open(outputs[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
