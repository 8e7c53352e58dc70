"""Stage targets: they exist, are disjoint, are all that trains, and all receive gradient."""
import pytest
import torch
from torch import nn

from tests.training_helpers import CFG, cache, tiny_net
from training.objective import ConditionDropout, ObjectiveConfig, draw
from training.stages import STAGE_ORDER, stage_target_modules
from training.trainer import EmoCASTTrainer, TrainConfig

# 16 spatial transformers per UNet x 10 Linear, minus the ReferenceNet's last (feeds nothing).
EXPECTED = {"appearance": 2 * 16 * 10 - 10, "lipsync": 16 * 18, "emotion": 16 * 4 + 16 * 12}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return cache(tmp_path_factory.mktemp("stages_cache"))


def test_targets_exist_are_disjoint_and_skip_dead_modules():
    net = tiny_net()
    modules = dict(net.named_modules())
    seen = set()
    for stage in STAGE_ORDER:
        names = stage_target_modules(net, stage)
        assert len(names) == EXPECTED[stage] == len(set(names))
        assert all(isinstance(modules[n], nn.Linear) for n in names)
        assert not seen & set(names)
        seen |= set(names)
    appearance = stage_target_modules(net, "appearance")
    assert "reference_unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_ip.0" in appearance
    assert not any(n.startswith("reference_unet.up_blocks.3.attentions.2.") for n in appearance)
    emotion = stage_target_modules(net, "emotion")
    assert not any(n.startswith(("denoising_unet.down_blocks.3.", "denoising_unet.up_blocks.0.")) for n in emotion)
    assert any(".attn_audioemo.to_q" in n for n in emotion)
    assert all(".audio_modules." in n for n in stage_target_modules(net, "lipsync"))


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ValueError, match="appearance, lipsync, emotion"):
        stage_target_modules(tiny_net(), "style")


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_only_the_stage_lora_trains_and_every_adapter_gets_gradient(stage, data):
    net = tiny_net()
    frames = 1 if stage == "appearance" else 2
    trainer = EmoCASTTrainer(net, data, TrainConfig(stage=stage, frames=frames, sample_margin=3, batch_size=2))
    try:
        trainable = {n for n, p in net.named_parameters() if p.requires_grad}
        assert all(".lora_A.emocast." in n or ".lora_B.emocast." in n for n in trainable)
        assert {n.rsplit(".lora_", 1)[0] for n in trainable} == set(trainer.targets)
        assert len(trainable) == 2 * len(trainer.targets)

        no_drop = ObjectiveConfig(dropout=ConditionDropout(0, 0, 0, 0))
        batch = trainer._batch()
        draws = draw(tuple(batch["latents"].shape), no_drop, torch.Generator().manual_seed(0))
        draws.timesteps = torch.tensor([100, 600])
        trainer.objective(batch, draws).backward()
        dead = [n for n, p in net.named_parameters() if ".lora_B." in n and (p.grad is None or not p.grad.any())]
        assert not dead, f"{len(dead)} adapters get no gradient, e.g. {dead[:2]}"
        frozen_with_grad = [n for n, p in net.named_parameters() if not p.requires_grad and p.grad is not None]
        assert not frozen_with_grad
    finally:
        trainer.close()
    assert not any("lora" in n for n, _ in net.named_parameters())  # close() gives the plain net back
    assert CFG == net.config
