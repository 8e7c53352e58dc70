"""Measure EmoCAST's speed and memory (nothing here is asserted by tests).

    python -m emocast_core.bench --config reduced --device cpu --dtype fp32
    python -m emocast_core.bench --config official --device cuda --dtype fp16 --size 512 --steps 40
    python -m emocast_core.bench --mode pipeline --seconds 10 --config official --device cuda --dtype fp16 --size 512

`--mode model` (default) times one CFG denoiser step and one whole clip
(ReferenceNet pass + `--steps` DDIM steps); `--mode pipeline` generates a
whole video for `--seconds` of audio (VAE encode/decode and clip chaining
included, an SD1.5-architecture VAE).  Random weights; prints seconds per
generated frame with peak memory (process RSS; VRAM on CUDA).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace

import torch

from .config import EmoCASTConfig
from .models import EmoCASTNet
from .pipeline import ClipConditioning, denoise_clip, make_scheduler
from .weights import DTYPES


def peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so wall-clock timings hold."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def run_pipeline(config: str, device: str, dtype: str, size: int, seconds: float, steps: int) -> dict:
    from diffusers import AutoencoderKL

    from .audio.features import AudioFeatures
    from .face import masks_only_models, prepare_portrait
    from .pipeline import SD_VAE_ARCHITECTURE, DiffusersVAECodec, EmoCASTPipeline
    from .text import EmotionConditioning

    cfg = getattr(EmoCASTConfig, config)()
    device, torch_dtype = torch.device(device), DTYPES[dtype]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    net = EmoCASTNet(cfg).to(device, torch_dtype).eval().requires_grad_(False)
    vae = AutoencoderKL(**SD_VAE_ARCHITECTURE).to(device, torch_dtype).eval()
    g = torch.Generator().manual_seed(0)
    frames = max(1, round(seconds * 25))
    padded = -(-frames // cfg.clip_length) * cfg.clip_length
    audio = AudioFeatures(torch.randn(padded, cfg.audio_layers, cfg.audio_channels, generator=g), frames, 25.0)
    # A random picture with a face box and a lip box given as masks (no face models needed).
    face, lip = torch.zeros(size, size), torch.zeros(size, size)
    face[size // 8: -size // 8, size // 6: -size // 6] = 1
    lip[size * 5 // 8: size * 3 // 4, size * 3 // 8: -size * 3 // 8] = 1
    portrait = prepare_portrait(torch.rand(size, size, 3, generator=g), masks_only_models(), allow_no_face=True,
                                crop_scale=0, face_mask=face, lip_mask=lip, size=size)
    portrait = replace(portrait, face_embedding=torch.randn(1, cfg.face_embed_dim, generator=g))
    text = torch.randn(2, cfg.text_tokens, cfg.cross_attention_dim, generator=g)
    emotion = EmotionConditioning(prompts=["random"], times_s=[0.0], cond=text[:1], uncond=text[1:])
    pipe = EmoCASTPipeline(net, DiffusersVAECodec(vae), device=device, dtype=torch_dtype)
    t0 = time.perf_counter()
    video = pipe(portrait, audio, emotion, steps=steps)
    synchronize(device)
    elapsed = time.perf_counter() - t0
    result = {
        "mode": "pipeline", "config": config,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": dtype, "size": size, "seconds_audio": seconds, "frames": int(video.shape[0]), "steps": steps,
        "total_s": round(elapsed, 2), "s_per_frame": round(elapsed / video.shape[0], 4),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    if device.type == "cuda":
        result["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emocast_core.bench", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["model", "pipeline"], default="model")
    p.add_argument("--config", choices=["tiny", "reduced", "official"], default="reduced")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (latent = size / 8)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--steps", type=int, default=4, help="DDIM steps for the clip timing (official: 40)")
    p.add_argument("--repeats", type=int, default=2, help="timed single-step runs")
    p.add_argument("--seconds", type=float, default=1.0, help="audio length for --mode pipeline")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = p.parse_args(argv)
    if args.size % 64:
        p.error("--size must be a multiple of 64 (the UNet downsamples the latent 3 times)")
    if args.mode == "pipeline":
        result = run_pipeline(args.config, args.device, args.dtype, args.size, args.seconds, args.steps)
    else:
        result = run(args.config, args.device, args.dtype, args.size, args.frames, args.steps, args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
