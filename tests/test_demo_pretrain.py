"""Progressive full-weight training of the demo model (training/demo/pretrain.py), through the stage runner."""
import pytest
import torch

from emocast_core.models import EmoCASTNet
from tests.training_helpers import group_relative_diff
from training.demo.build import DEMO_CONFIG
from training.demo.pretrain import init_from_scratch, open_full_stage
from training.demo.synthetic import make_synthetic_cache
from training.runner import run_stage
from training.stages import FROZEN_AT_ZERO, STAGE_ORDER, in_full_weight_group as in_group
from training.state import latest_checkpoint


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_synthetic_cache(tmp_path_factory.mktemp("cache"), DEMO_CONFIG, clips=4, frames=20, latent_size=8)


def fresh_net():
    torch.manual_seed(0)
    net = EmoCASTNet(DEMO_CONFIG)
    init_from_scratch(net)
    return net


def test_stage_groups_partition_the_network():
    net = EmoCASTNet(DEMO_CONFIG)
    for name, _ in net.named_parameters():
        owners = [s for s in STAGE_ORDER if in_group(s, name)]
        assert len(owners) == (0 if name in FROZEN_AT_ZERO else 1), (name, owners)
    assert in_group("lipsync", "audioproj.proj1.weight")
    assert in_group("emotion", "denoising_unet.up_blocks.1.audio_modules.0.transformer_blocks.0.attn_audioemo.to_q.weight")
    assert in_group("appearance", "reference_unet.conv_in.weight")
    with pytest.raises(ValueError, match="unknown training stage .style."):
        in_group("style", "x")


def _group(net, stage):
    return {n: p.detach().clone() for n, p in net.named_parameters() if in_group(stage, n)}


def train(net, cache, stage, folder, steps, total=4, batch=1, device="cpu"):
    """Open (or resume) the stage in `folder` and train it to `steps`; the trainer, closed."""
    trainer = open_full_stage(net, cache, stage, folder, batch_size=batch, lr=1e-3, total_steps=total, warmup=1,
                              device=device)
    run_stage(trainer, steps, folder, every=2, keep=1)
    trainer.close()
    return trainer


def test_a_stage_trains_only_its_group_and_resumes_bit_exactly(cache, tmp_path):
    net = fresh_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    train(net, cache, "lipsync", tmp_path / "a", 4)
    for name, p in net.named_parameters():
        changed = not torch.equal(p, before[name])
        if not in_group("lipsync", name):
            assert not changed, name
    assert any(not torch.equal(p, before[n]) for n, p in net.named_parameters() if in_group("lipsync", n))
    assert not any(p.requires_grad for p in net.parameters())  # handed back frozen
    straight = _group(net, "lipsync")

    # Interrupted after 2 steps (the checkpoint at step 2), then resumed in a fresh process-like setting.
    first = train(fresh_net(), cache, "lipsync", tmp_path / "b", 2)
    assert latest_checkpoint(tmp_path / "b").name == "checkpoint_00000002.safetensors" and first.wall_seconds > 0
    net3 = fresh_net()
    resumed = open_full_stage(net3, cache, "lipsync", tmp_path / "b", batch_size=1, lr=1e-3, total_steps=4, warmup=1)
    assert resumed.step == 2
    assert 0 < resumed.wall_seconds <= first.wall_seconds  # the training time up to the checkpoint comes back
    run_stage(resumed, 4, tmp_path / "b", every=2, keep=1)
    assert resumed.wall_seconds > first.wall_seconds
    for name, value in _group(net3, "lipsync").items():
        assert torch.equal(value, straight[name]), name
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["checkpoint_00000004.safetensors"]


def test_a_resume_with_other_settings_is_refused_but_a_longer_schedule_continues(cache, tmp_path):
    train(fresh_net(), cache, "lipsync", tmp_path, 2)
    with pytest.raises(ValueError, match="lr: saved 0.001, asked 0.002"):
        open_full_stage(fresh_net(), cache, "lipsync", tmp_path, batch_size=1, lr=2e-3, total_steps=4, warmup=1)
    longer = open_full_stage(fresh_net(), cache, "lipsync", tmp_path, batch_size=1, lr=1e-3, total_steps=8, warmup=2)
    assert longer.step == 2 and longer.config.total_steps == 8 and longer.config.warmup_steps == 2
    longer.run(1)  # the step the checkpoint scheduled, then the 8-step cosine from where it stands
    assert longer.lr == pytest.approx(1e-3 * longer.config.lr_factor(3)) != pytest.approx(1e-3)
    longer.close()


def test_from_scratch_ignores_face_embeddings_and_starts_temporal_branches_as_identities(cache, tmp_path):
    net = fresh_net()
    for name, p in net.named_parameters():
        if name.endswith("proj_out.weight") and (".motion_modules." in name or ".audio_modules." in name):
            assert p.abs().sum() == 0, name
    train(net, cache, "appearance", tmp_path, 2, total=2, batch=2)
    assert net.imageproj.proj.weight.abs().sum() == 0  # the synthetic cache has face embeddings: still zero
    with torch.no_grad():
        a, b = net.imageproj(torch.zeros(1, 512)), net.imageproj(torch.randn(1, 512))
    torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the demo build's --device cuda)")
def test_a_stage_trained_on_the_gpu_follows_the_cpu_run_and_resumes_on_the_cpu(cache, tmp_path):
    """Same batches and noise on any device: a GPU run tracks the CPU one, and its checkpoint resumes on the CPU."""
    cpu = fresh_net()
    train(cpu, cache, "lipsync", tmp_path / "cpu", 2)
    gpu = fresh_net()
    train(gpu, cache, "lipsync", tmp_path / "gpu", 2, device="cuda")
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    # Not elementwise: Adam's first steps move each weight by about lr * sign(grad), so a gradient near
    # zero that rounds the other way on the GPU moves its weight 2 * lr off (seen on an H200).
    cpu_group, gpu_group = _group(cpu, "lipsync"), _group(gpu, "lipsync")
    assert group_relative_diff(gpu_group, cpu_group) < 1e-2
    back = fresh_net()
    resumed = open_full_stage(back, cache, "lipsync", tmp_path / "gpu", batch_size=1, lr=1e-3, total_steps=4,
                              warmup=1)
    assert resumed.step == 2 and all(p.device.type == "cpu" for p in back.parameters())
    run_stage(resumed, 4, tmp_path / "gpu", every=2, keep=1)
    assert resumed.step == 4
