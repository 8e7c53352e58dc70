"""Denoise one clip of latents (the inner loop of the official pipeline)."""
from __future__ import annotations

from typing import Callable

import torch

from ..models import EmoCASTNet, ReferenceBank
from .conditioning import ClipConditioning


def write_reference(net: EmoCASTNet, motion_latents: torch.Tensor, text_face: torch.Tensor, frames: int,
                    bank_dtype: torch.dtype | None = torch.float16) -> ReferenceBank:
    """Run the ReferenceNet once (t = 0) on (reference, motion 1, motion 2) for both CFG halves.

    The conditioning is tiled, not interleaved, over the 6 rows (u, c, u, c, u, c),
    and the bank is rounded to fp16 on hand-over: both as in the official pipeline.
    Per-frame text (emotion keyframes) conditions the ReferenceNet with the clip's middle frame.
    """
    if text_face.dim() == 4:
        text_face = text_face[:, text_face.shape[1] // 2]
    features = net.reference_unet(motion_latents.repeat(2, 1, 1, 1), 0, text_face.repeat(3, 1, 1))
    bank = ReferenceBank.official_cfg(features, frames)
    return bank.rounded_to(bank_dtype) if bank_dtype is not None else bank


@torch.no_grad()
def denoise_clip(
    net: EmoCASTNet,
    scheduler,
    noise: torch.Tensor,
    motion_latents: torch.Tensor,
    cond: ClipConditioning,
    steps: int = 40,
    guidance: float = 3.5,
    motion_scale=(1.0, 1.0, 1.0),
    bank_dtype: torch.dtype | None = torch.float16,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """noise [1, 4, F, h, w]; motion_latents [3, 4, h, w] = (reference, m1, m2), VAE-scaled.

    Returns the denoised latents [1, 4, F, h, w] (before 1/0.18215 and decoding).
    `on_step(i, steps)` runs after each step (progress, interrupts).
    """
    scheduler.set_timesteps(steps, device=noise.device)
    bank = write_reference(net, motion_latents, cond.text_face, noise.shape[2], bank_dtype).indices_on(noise.device)
    x = noise * scheduler.init_noise_sigma
    clip_cache = {}  # work that is the same at every step of this clip
    for i, t in enumerate(scheduler.timesteps):
        v = net.denoising_unet(
            torch.cat([x, x]), t, cond.text_face, cond.audio, cond.emotion, cond.masks, cond.face_features, bank,
            motion_scale, clip_cache,
        )
        v_uncond, v_cond = v.chunk(2)
        v = v_uncond + guidance * (v_cond - v_uncond)
        x = scheduler.step(v, t, x, eta=0.0).prev_sample
        if on_step is not None:
            on_step(i, steps)
    return x
