"""Progressive full-weight training of the demo model (training/demo/pretrain.py)."""
import pytest
import torch

from emocast_core.models import EmoCASTNet
from tests.training_helpers import group_relative_diff
from training.demo.build import DEMO_CONFIG
from training.demo.pretrain import FROZEN_AT_ZERO, StageRun, in_group, init_from_scratch
from training.stages import STAGE_ORDER
from training.demo.synthetic import make_synthetic_cache


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
    with pytest.raises(ValueError, match="unknown stage"):
        in_group("style", "x")


def _group(net, stage):
    return {n: p.detach().clone() for n, p in net.named_parameters() if in_group(stage, n)}


def test_a_stage_trains_only_its_group_and_resumes_bit_exactly(cache, tmp_path):
    net = fresh_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    run = StageRun(net, cache, "lipsync", tmp_path / "a", batch_size=1, lr=1e-3, total_steps=4, warmup=1)
    run.run(4, every=2, log=lambda m: None)
    for name, p in net.named_parameters():
        changed = not torch.equal(p, before[name])
        if not in_group("lipsync", name):
            assert not changed, name
    assert any(not torch.equal(p, before[n]) for n, p in net.named_parameters() if in_group("lipsync", n))
    straight = _group(net, "lipsync")

    # Interrupted after 2 steps (the checkpoint at step 2), then resumed in a fresh process-like setting.
    net2 = fresh_net()
    StageRun(net2, cache, "lipsync", tmp_path / "b", batch_size=1, lr=1e-3, total_steps=4, warmup=1).run(
        2, every=2, log=lambda m: None)
    net3 = fresh_net()
    resumed = StageRun(net3, cache, "lipsync", tmp_path / "b", batch_size=1, lr=1e-3, total_steps=4, warmup=1)
    assert resumed.step == 2
    first_seconds = resumed.seconds  # the interrupted run's training time comes back with the checkpoint
    assert first_seconds > 0
    resumed.run(4, every=2, log=lambda m: None)
    assert resumed.seconds > first_seconds
    for name, value in _group(net3, "lipsync").items():
        assert torch.equal(value, straight[name]), name
    assert not (tmp_path / "b.partial").exists() and not (tmp_path / "b.old").exists()


def test_from_scratch_ignores_face_embeddings_and_starts_temporal_branches_as_identities(cache, tmp_path):
    net = fresh_net()
    for name, p in net.named_parameters():
        if name.endswith("proj_out.weight") and (".motion_modules." in name or ".audio_modules." in name):
            assert p.abs().sum() == 0, name
    StageRun(net, cache, "appearance", tmp_path, batch_size=2, lr=1e-3, total_steps=2, warmup=1).run(
        2, every=2, log=lambda m: None)
    assert net.imageproj.proj.weight.abs().sum() == 0  # the synthetic cache has face embeddings: still zero
    with torch.no_grad():
        a, b = net.imageproj(torch.zeros(1, 512)), net.imageproj(torch.randn(1, 512))
    torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the demo build's --device cuda)")
def test_a_stage_trained_on_the_gpu_follows_the_cpu_run_and_resumes_on_the_cpu(cache, tmp_path):
    """Same batches and noise on any device: a GPU run tracks the CPU one, and its checkpoint resumes on the CPU."""
    cpu = fresh_net()
    StageRun(cpu, cache, "lipsync", tmp_path / "cpu", batch_size=1, lr=1e-3, total_steps=4, warmup=1).run(
        2, every=2, log=lambda m: None)
    gpu = fresh_net()
    StageRun(gpu, cache, "lipsync", tmp_path / "gpu", batch_size=1, lr=1e-3, total_steps=4, warmup=1,
             device="cuda").run(2, every=2, log=lambda m: None)
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    # Not elementwise: Adam's first steps move each weight by about lr * sign(grad), so a gradient near
    # zero that rounds the other way on the GPU moves its weight 2 * lr off (seen on an H200).
    cpu_group, gpu_group = _group(cpu, "lipsync"), _group(gpu, "lipsync")
    assert group_relative_diff(gpu_group, cpu_group) < 1e-2
    back = fresh_net()
    resumed = StageRun(back, cache, "lipsync", tmp_path / "gpu", batch_size=1, lr=1e-3, total_steps=4, warmup=1)
    assert resumed.step == 2 and all(p.device.type == "cpu" for p in back.parameters())
    resumed.run(4, every=2, log=lambda m: None)
    assert resumed.step == 4
