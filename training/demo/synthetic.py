"""A small synthetic training cache with learnable structure (tests, smoke runs).

Every clip shares one smooth latent pattern (what a model can learn first), has
an identity offset tied to its face embedding, and a "mouth" patch whose
amplitude follows the audio envelope, in channels chosen by the emotion text.
The energy written to meta.json is the mean frame-to-frame change of the patch,
as real preparation would measure it on the lip region.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from .._core import EmoCASTConfig
from ..dataset import MASK_LEVELS, PreparedClip, write_clip, write_uncond_text
from ..sampling import EMOTIONS, derive_seed


def _gen(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(1234, *parts))


def _box(size: int, top: float, bottom: float, left: float, right: float) -> torch.Tensor:
    m = torch.zeros(size, size)
    m[round(top * size) : round(bottom * size), round(left * size) : round(right * size)] = 1
    return m


def synthetic_clip(cfg: EmoCASTConfig, index: int, emotion: str, frames: int = 12, latent_size: int = 8) -> PreparedClip:
    s = latent_size
    y, x = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    c = cfg.in_channels
    shared = torch.stack([torch.sin(2 * x), torch.cos(2 * y), x * y, 0.5 * (x + y)])  # [4, s, s]
    shared = shared.repeat(math.ceil(c / 4), 1, 1)[:c]  # latent channels of the model's autoencoder
    g = _gen(2, index)
    face = torch.randn(cfg.face_embed_dim, generator=g)
    identity = 0.3 * torch.tanh(face[:c])[:, None, None] * (1 - x.abs())[None]
    eg = _gen(3, EMOTIONS.index(emotion))
    emotion_text = torch.randn(1, cfg.cross_attention_dim, generator=eg).expand(77, -1)
    emotion_channels = torch.softmax(torch.randn(c, generator=eg), 0)[:, None, None]

    t = torch.arange(frames, dtype=torch.float32)
    envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * t / 6 + index)  # syllable-like rhythm
    mouth = _box(s, 0.6, 0.85, 0.3, 0.7)
    latents = (shared + identity).expand(frames, -1, -1, -1) + envelope[:, None, None, None] * emotion_channels * mouth
    direction = torch.randn(cfg.audio_layers, cfg.audio_channels, generator=_gen(4))
    audio = envelope[:, None, None] * direction + 0.1 * torch.randn(frames, cfg.audio_layers, cfg.audio_channels,
                                                                    generator=g)
    text = emotion_text + 0.05 * torch.randn(77, cfg.cross_attention_dim, generator=g)
    energy = float((latents[1:] - latents[:-1]).mul(mouth).abs().sum() / (mouth.sum() * c * (frames - 1)))

    face_box = _box(cfg.latent_factor * s, 0.15, 0.9, 0.2, 0.8)  # pixels, for the face locator
    face_m = _box(s, 0.15, 0.9, 0.2, 0.8)
    regions = torch.stack([1 - face_m, face_m - mouth, mouth])  # (full, face, lip) at the latent size
    # Coarser levels by area averaging, so no region vanishes at 2x2 or 1x1.
    levels = [F.avg_pool2d(regions, 2**level).reshape(3, -1) for level in range(MASK_LEVELS)]
    return PreparedClip(
        latents=latents, audio=audio, text=text, face_embedding=face, face_region=face_box.expand(3, -1, -1),
        mask_levels=levels, caption=f"A person is talking with {emotion} emotion.", emotion=None, energy=energy,
    )


def make_synthetic_cache(root: str | os.PathLike, cfg: EmoCASTConfig | None = None, clips: int = 4,
                         frames: int = 12, latent_size: int = 8, emotions: list[str] | None = None) -> Path:
    """Write `clips` synthetic clips (emotions cycling through `emotions`, labels left to the captions)."""
    cfg = cfg or EmoCASTConfig.tiny()
    emotions = emotions or list(EMOTIONS)
    root = Path(root)
    write_uncond_text(root, torch.randn(77, cfg.cross_attention_dim, generator=_gen(5)))
    for i in range(clips):
        write_clip(root, f"clip_{i:04d}", synthetic_clip(cfg, i, emotions[i % len(emotions)], frames, latent_size))
    return root
