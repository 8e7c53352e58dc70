"""Headless entry with 2 CPU processes (torchrun + gloo): identical LoRA on every rank, exact resume."""
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from emocast_core.weights import save_net
from tests.training_helpers import REPO, cache, lora_equal, tiny_net
from training.lora import load_lora, stages_of
from training.state import fingerprint, read


def _train(tmp_path, out, steps: int) -> str:
    net = tmp_path / "tiny.safetensors"
    if not net.is_file():
        save_net(tiny_net(), net)
    config = {
        "model": {"path": str(net)}, "data": str(cache(tmp_path / "cache")), "output_dir": str(out), "seed": 5,
        "checkpoint_every": 2,
        "stages": [{"stage": "appearance", "steps": steps, "lr": 1e-3, "sample_margin": 3, "lora_dropout": 0.1}],
    }
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--config", str(path), "--cpu"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_two_ranks_hold_identical_lora_and_resume_exactly(tmp_path):
    out = tmp_path / "run"
    log = _train(tmp_path, out, 3)
    assert "2 process(es)" in log and "step 3/3" in log
    checkpoints = out / "1_appearance" / "checkpoints"

    def ranks_agree(step: int) -> dict:
        """The main checkpoint's LoRA, after checking that rank 1 held the very same one."""
        main, doc = read(checkpoints / f"checkpoint_{step:08d}.safetensors")
        other, other_doc = read(checkpoints / f"checkpoint_{step:08d}.rank1.safetensors")
        lora = {k[5:]: v for k, v in main.items() if k.startswith("lora/")}
        assert doc["trained_sha256"] == fingerprint(lora) == other_doc["trained_sha256"]
        # Each rank draws its own samples: their sampler streams differ.
        assert not torch.equal(main["rng/gen/sampler"], other["rng/gen/sampler"])
        return lora

    lora = ranks_agree(3)
    assert any(v.abs().sum() > 0 for k, v in lora.items() if k.endswith("lora_up.weight"))  # it trained
    assert lora_equal(load_file(str(out / "emocast_lora.safetensors")), lora)

    # Asking for more steps continues from the end-of-stage checkpoint, as if never stopped.
    log = _train(tmp_path, out, 5)
    assert "resumed at step 3" in log
    straight = tmp_path / "straight"
    _train(tmp_path, straight, 5)
    resumed, meta = load_lora(out / "emocast_lora.safetensors")
    assert stages_of(meta)[-1]["steps"] == 5
    assert lora_equal(resumed, load_lora(straight / "emocast_lora.safetensors")[0])
    assert lora_equal(ranks_agree(5), resumed)
