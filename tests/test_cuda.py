"""What only a CUDA GPU can check: sampling in fp16/bf16 and LoRA training on the GPU.

Skipped on machines without CUDA (our CI); run them wherever a GPU is at hand:
`python -m pytest tests/test_cuda.py`.  The tolerances leave about three times
the error that the same half-precision sampling shows on the CPU.
"""
import pytest
import torch

from emocast_core.bench.model import random_conditioning
from emocast_core.pipeline import denoise_clip, generate_talking_head, make_scheduler
from tests.test_talking_head import _factor8_codec, make_request
from tests.training_helpers import CFG, cache, group_relative_diff, tiny_net
from training.trainer import EmoCASTTrainer, TrainConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return cache(tmp_path_factory.mktemp("cuda_cache"))


def _clip(device, dtype, steps=10):
    net = tiny_net().to(device, dtype)
    cond = random_conditioning(CFG, 16, 8, device, dtype)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, CFG.in_channels, 16, 8, 8, generator=g).to(device, dtype)
    motion = torch.randn(3, CFG.in_channels, 8, 8, generator=g).to(device, dtype)
    with torch.no_grad():
        return denoise_clip(net, make_scheduler(), noise, motion, cond, steps=steps).float().cpu()


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def cpu_clip():
    return _clip("cpu", torch.float32)


def test_a_clip_on_the_gpu_gives_the_cpu_numbers(cpu_clip):
    assert _rel(_clip("cuda", torch.float32), cpu_clip) < 5e-3  # TF32 convolutions allowed


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 0.06), (torch.bfloat16, 0.1)])
def test_a_clip_sampled_in_half_precision_tracks_fp32(cpu_clip, dtype, tol):
    out = _clip("cuda", dtype)
    assert torch.isfinite(out).all()
    assert _rel(out, cpu_clip) < tol


def test_a_whole_video_in_fp16_on_the_gpu_looks_like_the_cpu_one():
    req = make_request(frames=20, steps=4)
    cpu = generate_talking_head(tiny_net(), _factor8_codec(), req)
    codec = _factor8_codec()
    codec.vae.to("cuda", torch.float16)
    gpu = generate_talking_head(tiny_net().to("cuda", torch.float16), codec, req, device="cuda", dtype=torch.float16)
    assert gpu.shape == cpu.shape and gpu.dtype == torch.uint8 and gpu.device.type == "cpu"
    assert (gpu.float() - cpu.float()).abs().mean() < 3.0  # of 255


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_lora_training_under_autocast_on_the_gpu_resumes_on_the_cpu(data, tmp_path, precision):
    trainer = EmoCASTTrainer(tiny_net(), data, TrainConfig(stage="appearance", sample_margin=3, lr=1e-2,
                                                           mixed_precision=precision), device="cuda")
    assert trainer.amp is {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    before = {k: v.clone() for k, v in trainer.lora_state_dict().items()}
    losses = trainer.run(2, checkpoint_dir=tmp_path, checkpoint_every=2)
    assert all(torch.isfinite(torch.tensor(losses)))
    after = trainer.lora_state_dict()
    assert any(not torch.equal(after[k].cpu(), before[k].cpu()) for k in after)
    trainer.close()
    resumed = EmoCASTTrainer.resume(tiny_net(), data, tmp_path, device="cpu", mixed_precision="no")
    assert resumed.step == 2
    for k, v in resumed.lora_state_dict().items():
        torch.testing.assert_close(v, after[k].cpu())
    assert all(torch.isfinite(torch.tensor(resumed.run(1))))
    resumed.close()


def test_an_interrupted_gpu_run_resumes_where_it_stopped(data, tmp_path):
    cfg = TrainConfig(stage="appearance", sample_margin=3, lr=2e-3, lora_dropout=0.1, seed=5)
    straight = EmoCASTTrainer(tiny_net(), data, cfg, device="cuda")
    straight.run(4)
    first = EmoCASTTrainer(tiny_net(), data, cfg, device="cuda")
    first.run(2, checkpoint_dir=tmp_path, checkpoint_every=2)
    first.close()
    second = EmoCASTTrainer.resume(tiny_net(), data, tmp_path, device="cuda")
    # The GPU's own RNG (LoRA dropout masks) comes back exactly, with the CPU streams.
    assert torch.equal(second._rng["cuda"][0], first._rng["cuda"][0])
    second.run(2)
    # Not bit-exact as on the CPU: CUDA's backward kernels add in varying order, so two identical
    # runs already differ by ~1e-4 after one step (H200), and Adam turns that into lr-sized
    # differences in near-zero LoRA entries.  The run as a whole must agree.
    torch.testing.assert_close(second.loss_history, straight.loss_history, rtol=2e-3, atol=1e-6)
    got, want = second.lora_state_dict(), straight.lora_state_dict()
    assert got.keys() == want.keys() and group_relative_diff(got, want) < 1e-2


def test_half_precision_weights_train_on_the_gpu(data):
    trainer = EmoCASTTrainer(tiny_net().to(torch.float16), data, TrainConfig(stage="lipsync", frames=4, sample_margin=3),
                             device="cuda")  # as LoadEmoCAST hands over an fp16 model
    assert trainer.amp is torch.float16 and trainer.scaler is not None
    assert all(torch.isfinite(torch.tensor(trainer.run(2))))
    trainer.close()
