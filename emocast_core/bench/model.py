"""`--mode model`: one CFG denoiser step and one whole clip (ReferenceNet pass + DDIM steps), random weights."""
from __future__ import annotations

import time

import torch

from ..config import EmoCASTConfig
from ..models import EmoCASTNet
from ..pipeline import ClipConditioning, denoise_clip, make_scheduler
from ..weights import DTYPES
from .common import peak_rss_gb, synchronize


def random_conditioning(cfg: EmoCASTConfig, frames: int, latent: int, device, dtype) -> ClipConditioning:
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device, dtype)  # noqa: E731
    levels = [latent // 2**i for i in range(4)]
    masks = [tuple(torch.rand(2 * frames, s * s, generator=g).to(device, dtype) for _ in range(3)) for s in levels]
    return ClipConditioning(
        text_face=rand(2, cfg.text_tokens + cfg.face_tokens, cfg.cross_attention_dim),
        audio=rand(2, frames, cfg.audio_tokens, cfg.audio_token_dim),
        emotion=rand(2, cfg.text_tokens, cfg.audio_token_dim),
        masks=masks,
        face_features=rand(2, cfg.block_out_channels[0], frames, latent, latent),
    )


def run(config: str, device: str, dtype: str, size: int, frames: int, steps: int, repeats: int) -> dict:
    cfg = getattr(EmoCASTConfig, config)()
    device, torch_dtype = torch.device(device), DTYPES[dtype]
    latent = size // cfg.latent_factor
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    net = EmoCASTNet(cfg).to(device, torch_dtype).eval().requires_grad_(False)
    cond = random_conditioning(cfg, frames, latent, device, torch_dtype)
    noise = torch.randn(1, cfg.in_channels, frames, latent, latent, device=device, dtype=torch_dtype)
    motion = torch.randn(3, cfg.in_channels, latent, latent, device=device, dtype=torch_dtype)
    scheduler = make_scheduler()

    with torch.no_grad():
        denoise_clip(net, scheduler, noise, motion, cond, steps=1)  # warm-up (kernels, allocator)
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            denoise_clip(net, scheduler, noise, motion, cond, steps=1)
        synchronize(device)
        one_step = (time.perf_counter() - t0) / repeats
        t0 = time.perf_counter()
        denoise_clip(net, scheduler, noise, motion, cond, steps=steps)
        synchronize(device)
        clip = time.perf_counter() - t0
    result = {
        "config": config,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": dtype,
        "size": size,
        "frames": frames,
        "steps": steps,
        "cfg_step_s": round(one_step, 4),
        "clip_s": round(clip, 3),
        "s_per_frame": round(clip / frames, 4),
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 1),
    }
    if device.type == "cuda":
        result["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result
