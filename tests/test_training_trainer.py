"""The trainer: learning, bit-exact resume, interrupt safety, LoRA files and applying them, inference mode."""
import importlib.util
import json

from dataclasses import replace as dataclasses_replace

import pytest
import torch

import training.state as state_mod
from tests.training_helpers import cache, lora_equal, tiny_net
from training.dataset import ClipCache
from training.lora import apply_lora, group_lora, load_lora, lora_weight_deltas
from training.objective import ConditionDropout, EmoCASTObjective, ObjectiveConfig, draw
from training.sampling import WindowKey
from training.state import latest_checkpoint, list_checkpoints
from training.trainer import EmoCASTTrainer, TrainConfig


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return cache(tmp_path_factory.mktemp("trainer_cache"))


# Exercise every random stream: LoRA dropout (global RNG), condition dropouts, accumulation.
RESUME_CFG = TrainConfig(stage="appearance", lr=2e-3, lora_dropout=0.1, grad_accum=2, sample_margin=3, seed=11,
                         objective=ObjectiveConfig(dropout=ConditionDropout(0.3, 0.3, 0.3, 0.3)))


@pytest.mark.slow
def test_loss_falls(data):
    trainer = EmoCASTTrainer(tiny_net(), data, TrainConfig(stage="appearance", lr=3e-3, batch_size=2, sample_margin=3))
    before = trainer.evaluate(8)
    losses = trainer.run(30)
    after = trainer.evaluate(8)
    assert after < 0.75 * before, (before, after)
    assert sum(losses[-10:]) < sum(losses[:10])
    assert trainer.step == 30 and len(trainer.loss_history) == 30


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run_bit_exactly(data, tmp_path):
    straight = EmoCASTTrainer(tiny_net(), data, RESUME_CFG)
    straight_losses = straight.run(6)
    expected = straight.lora_state_dict()
    straight.close()

    first = EmoCASTTrainer(tiny_net(), data, RESUME_CFG)
    first.run(3)
    first.save_checkpoint(tmp_path)
    first.close()
    del first
    torch.manual_seed(12345)  # other code using the global RNG in between must not matter

    resumed = EmoCASTTrainer.resume(tiny_net(), ClipCache(data, 1, 2, 3), tmp_path)  # fresh net, fresh dataset
    assert resumed.step == 3
    resumed_losses = resumed.run(3)
    assert lora_equal(resumed.lora_state_dict(), expected)
    assert resumed.loss_history == straight_losses and resumed_losses == straight_losses[3:]


@pytest.mark.slow
def test_interrupt_leaves_the_last_checkpoint_intact(data, tmp_path, monkeypatch):
    trainer = EmoCASTTrainer(tiny_net(), data, RESUME_CFG)
    at_step_2 = {}

    def on_step(info):
        if info.step == 2:
            at_step_2.update(trainer.lora_state_dict())
        if info.step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        trainer.run(10, on_step=on_step, checkpoint_dir=tmp_path, checkpoint_every=2)
    assert trainer.step == 3  # the interrupted step completed; the trainer is still usable
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint_00000002.safetensors"]

    # A save that dies half-way (here: in the writer) leaves no file behind and the older one latest.
    def broken(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise Interrupt

    monkeypatch.setattr(state_mod, "save_file", broken)
    with pytest.raises(Interrupt):
        trainer.save_checkpoint(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_00000002.safetensors"]

    restored = EmoCASTTrainer.resume(tiny_net(), data, latest_checkpoint(tmp_path))
    assert restored.step == 2 and lora_equal(restored.lora_state_dict(), at_step_2)
    trainer.close()


def _randomize_lora(trainer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in trainer.params:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _loss(net, batch, draws):
    with torch.no_grad():
        return EmoCASTObjective(net)(batch, draws)


@pytest.fixture(scope="module")
def fixed(data):
    cache_ = ClipCache(data, 1, 2, 3)
    batch = cache_.collate([cache_[WindowKey(0, 0)], cache_[WindowKey(2, 1)]])
    draws = draw(tuple(batch["latents"].shape), ObjectiveConfig(dropout=ConditionDropout(0, 0, 0, 0)),
                 torch.Generator().manual_seed(0))
    return batch, draws


def test_lora_file_strength_zero_merge_hook_and_exact_restore(data, fixed, tmp_path):
    batch, draws = fixed
    trainer = EmoCASTTrainer(tiny_net(), data, TrainConfig(stage="appearance", sample_margin=3, rank=4, alpha=2))
    _randomize_lora(trainer)
    with_peft = _loss(trainer.net, batch, draws)
    path = trainer.save_lora(tmp_path / "my_lora.safetensors")
    trainer.close()

    state, meta = load_lora(path)
    assert set(state) == {f"{t}.{s}" for t in trainer.targets for s in ("lora_down.weight", "lora_up.weight", "alpha")}
    assert json.loads(meta["emocast.stages"])[0]["stage"] == "appearance" and meta["emocast.steps"] == "0"
    assert json.loads(meta["emocast.base_config"])["cross_attention_dim"] == 64
    assert group_lora(state)[trainer.targets[0]].scale == 0.5

    net = tiny_net()
    base_state = {k: v.clone() for k, v in net.state_dict().items()}
    base = _loss(net, batch, draws)
    with apply_lora(net, state, strength=0.0):
        assert torch.equal(_loss(net, batch, draws), base)
    merged = apply_lora(net, state, strength=1.0)
    assert torch.allclose(_loss(net, batch, draws), with_peft, rtol=1e-5)
    merged.remove()
    assert lora_equal(net.state_dict(), base_state)  # bit-exact restore
    with apply_lora(net, state, strength=1.0, mode="hook"):
        assert torch.allclose(_loss(net, batch, draws), with_peft, rtol=1e-5)
    assert torch.equal(_loss(net, batch, draws), base)

    deltas = lora_weight_deltas(state, 0.5)
    key = trainer.targets[0] + ".weight"
    assert deltas[key].shape == net.state_dict()[key].shape

    with pytest.raises(ValueError, match="not an EmoCAST LoRA"):
        apply_lora(net, {"foo": torch.zeros(1)})


def test_prior_stage_rides_along_and_the_file_holds_both(data, fixed, tmp_path):
    batch, draws = fixed
    first = EmoCASTTrainer(tiny_net(), data, TrainConfig(stage="appearance", sample_margin=3, rank=4))
    _randomize_lora(first)
    first.step = 5
    prior, stages = first.lora_state_dict(), [first.stage_record()]
    with_appearance = _loss(first.net, batch, draws)
    first.close()

    second = EmoCASTTrainer(tiny_net(), data, TrainConfig(stage="lipsync", frames=1, sample_margin=3),
                            prior_lora=prior, prior_stages=stages)
    assert torch.allclose(_loss(second.net, batch, draws), with_appearance, rtol=1e-5)  # B = 0: only the prior acts
    assert second.total_steps == 5
    state, meta = load_lora(second.save_lora(tmp_path / "both.safetensors"))
    assert [s["stage"] for s in json.loads(meta["emocast.stages"])] == ["appearance", "lipsync"]
    assert set(prior) < set(state) and len(state) == len(prior) + 3 * len(second.targets)
    second.close()
    with pytest.raises(ValueError, match="already adapts this stage"):
        EmoCASTTrainer(tiny_net(), data, TrainConfig(stage="appearance", sample_margin=3), prior_lora=prior)


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_training(data):
    cfg = TrainConfig(stage="lipsync", frames=2, lr=1e-3, sample_margin=3, batch_size=2)
    plain = EmoCASTTrainer(tiny_net(), data, cfg)
    plain.run(2)
    ckpt = EmoCASTTrainer(tiny_net(), data, TrainConfig(**{**cfg.__dict__, "gradient_checkpointing": True}))
    ckpt.run(2)
    a, b = plain.lora_state_dict(), ckpt.lora_state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not lora_equal(a, EmoCASTTrainer(tiny_net(), data, cfg).lora_state_dict())  # it did train


def test_runs_inside_inference_mode_like_a_comfyui_node(data):
    with torch.inference_mode():  # ComfyUI executes nodes so, and may have loaded the model so too
        net = tiny_net()
        assert next(net.parameters()).is_inference()
        trainer = EmoCASTTrainer(net, data, TrainConfig(stage="appearance", sample_margin=3, lr=1e-2))
        losses = trainer.run(1)
        lora = trainer.lora_state_dict()
    assert len(losses) == 1 and torch.isfinite(torch.tensor(losses)).all()
    assert any(v.abs().sum() > 0 for k, v in lora.items() if k.endswith("lora_up.weight"))
    trainer.close()


def test_settings_errors_are_clear(data):
    if importlib.util.find_spec("bitsandbytes") is None:
        net = tiny_net()
        with pytest.raises(ValueError, match="needs bitsandbytes"):
            EmoCASTTrainer(net, data, TrainConfig(optimizer="adamw8bit", sample_margin=3))
        assert not any("lora" in n for n, _ in net.named_parameters())  # a failed start leaves the net plain
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"stage": "emotion", "learning_rate": 1})
    with pytest.raises(ValueError, match="motion modules' 32 positions"):
        EmoCASTTrainer(tiny_net(), data, TrainConfig(stage="lipsync", frames=31, sample_margin=3))


def test_a_dataset_prepared_for_another_model_is_refused_before_any_step(data):
    """E.g. a cache made with the official 768-wide CLIP, trained on a model with another text width."""
    import dataclasses

    from emocast_core.models import EmoCASTNet
    from tests.training_helpers import CFG

    other = EmoCASTNet(dataclasses.replace(CFG, cross_attention_dim=CFG.cross_attention_dim * 2,
                                           audio_channels=CFG.audio_channels + 8))
    with pytest.raises(ValueError, match=r"prepared for another model \(text width \(the text encoder\): "
                                         rf"{CFG.cross_attention_dim} in the dataset, {2 * CFG.cross_attention_dim} "
                                         r"in the model; audio layers x channels") as err:
        EmoCASTTrainer(other, data, TrainConfig(sample_margin=3))
    assert "Prepare it again" in str(err.value)
    assert not any("lora" in n for n, _ in other.named_parameters())  # nothing was trained or patched


def test_resuming_with_other_settings_is_refused_and_says_which(data, tmp_path):
    first = EmoCASTTrainer(tiny_net(), data, RESUME_CFG)
    first.run(1)
    first.save_checkpoint(tmp_path)
    first.close()
    asked = dataclasses_replace(RESUME_CFG, rank=RESUME_CFG.resolved().rank * 2, lr=1e-4)
    with pytest.raises(ValueError, match=r"trained with other settings \(lr: saved 0.002, asked 0.0001; rank: "
                                         r"saved \d+, asked \d+\)\. To continue that run, use its settings"):
        EmoCASTTrainer.resume(tiny_net(), data, tmp_path, expected=asked)
    # Memory-only settings may change; the same settings continue.
    same = dataclasses_replace(RESUME_CFG, gradient_checkpointing=True)
    resumed = EmoCASTTrainer.resume(tiny_net(), data, tmp_path, expected=same)
    assert resumed.step == 1
    resumed.close()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_weights_train_under_autocast(data, tmp_path, dtype):
    net = tiny_net().to(dtype)  # as LoadEmoCAST may hand it over
    trainer = EmoCASTTrainer(net, data, TrainConfig(stage="appearance", sample_margin=3, lr=1e-2))
    assert trainer.amp is dtype and (trainer.scaler is not None) == (dtype is torch.float16)
    losses = trainer.run(1)
    trainer.save_checkpoint(tmp_path)  # fp16: the grad scaler's state goes along
    assert torch.isfinite(torch.tensor(losses)).all()
    assert all(v.dtype == torch.float32 for v in trainer.lora_state_dict().values())
    trainer.close()
    resumed = EmoCASTTrainer.resume(tiny_net().to(dtype), data, tmp_path)
    assert resumed.step == 1 and next(resumed.net.parameters()).dtype is dtype
    resumed.close()
