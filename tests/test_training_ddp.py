"""Headless entry with 2 CPU processes (torchrun + gloo): every rank ends with the same LoRA."""
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.training_helpers import REPO, cache, lora_equal
from training.state import read


@pytest.mark.slow
def test_two_ranks_hold_identical_lora(tmp_path):
    data = cache(tmp_path / "cache")
    out = tmp_path / "run"
    config = {
        "model": {"test_model": "tiny"}, "data": str(data), "output_dir": str(out), "seed": 5,
        "checkpoint_every": 2, "dump_rank_lora": True,
        "stages": [{"stage": "appearance", "steps": 3, "lr": 1e-3, "sample_margin": 3}],
    }
    (tmp_path / "stages.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--config", str(tmp_path / "stages.yaml"), "--cpu"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stdout and "step 3/3" in result.stdout

    stage = out / "1_appearance"
    rank0, rank1 = load_file(str(stage / "rank0.safetensors")), load_file(str(stage / "rank1.safetensors"))
    assert lora_equal(rank0, rank1)
    assert any(v.abs().sum() > 0 for k, v in rank0.items() if k.endswith("lora_up.weight"))  # it trained
    assert lora_equal(load_file(str(out / "emocast_lora.safetensors")), rank0)
    # Each rank drew its own samples: their sampler streams differ.
    main, _ = read(stage / "checkpoints" / "checkpoint_00000002.safetensors")
    other, _ = read(stage / "checkpoints" / "checkpoint_00000002.rank1.safetensors")
    assert not torch.equal(main["rng/gen/sampler"], other["rng/gen/sampler"])
