"""Whole-video generation: clips of 16 frames in sequence, each continuing the last.

Clip 0 uses the reference image as its two motion frames; clip k > 0 uses the
last two generated frames, re-encoded by the VAE (after the last clip nothing is
re-encoded: no clip follows).  Audio is consumed 16
frames at a time (padded to whole clips) and the video is trimmed to the
audio's true frame count.  Noise comes from one CPU generator seeded once, in
clip order, as the official script does with its fixed seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..models import EmoCASTNet
from .clip_sampler import denoise_clip
from .conditioning import clip_conditioning
from .scheduler import make_scheduler
from .vae import LatentCodec


@dataclass
class TalkingHeadRequest:
    reference: torch.Tensor  # [1, 3, H, W] in [-1, 1] (square, face-centred)
    face_embedding: torch.Tensor  # [1, 512] raw ArcFace (zeros if no face)
    face_region: torch.Tensor  # [1, 3, H, W] hard face box
    mask_levels: list  # 4 x (full, face, lip), each [1, hw] at latent / 2**level
    audio: object  # AudioFeatures: num_clips, clip_length, num_frames, clip_windows(c)
    text_cond: torch.Tensor  # [1, 77, 768]
    text_uncond: torch.Tensor  # [1, 77, 768]
    # Per-frame text [>= padded frames, 77, 768] (emotion keyframes): replaces text_cond for
    # both the TEA text and the EAA query, frame by frame.
    emotion_per_frame: torch.Tensor | None = None
    steps: int = 40
    guidance: float = 3.5
    seed: int = 42
    motion_scale: tuple = (1.0, 1.0, 1.0)


ProgressFn = Callable[[int, int], None]  # (steps done, steps total); may raise to interrupt


def _check(req: TalkingHeadRequest, net: EmoCASTNet) -> None:
    if req.steps < 1:
        raise ValueError(f"steps must be at least 1, got {req.steps}")
    size, multiple = req.reference.shape[-1], 8 * net.config.latent_factor
    if req.reference.shape[-2] != size or size % multiple:
        raise ValueError(f"the reference image must be square with a side divisible by {multiple}, "
                         f"got {tuple(req.reference.shape[-2:])}")
    grid = size // net.config.latent_factor
    if req.mask_levels[0][0].shape[-1] != grid * grid:
        raise ValueError(f"mask_levels[0] has {req.mask_levels[0][0].shape[-1]} cells, the model's {grid}x{grid} "
                         f"latent grid needs {grid * grid}: make them with the model's latent factor "
                         f"(Portrait.mask_levels_for({net.config.latent_factor}))")
    if req.emotion_per_frame is not None and req.emotion_per_frame.shape[0] < req.audio.num_clips * req.audio.clip_length:
        raise ValueError(
            f"per-frame emotion covers {req.emotion_per_frame.shape[0]} frames, the audio needs "
            f"{req.audio.num_clips * req.audio.clip_length} (whole clips)"
        )
    if req.audio.clip_length > net.config.motion_max_len - net.config.motion_frames:
        raise ValueError("clip_length + motion frames exceed the motion modules' 32 positions")


def iter_talking_head(
    net: EmoCASTNet,
    codec: LatentCodec,
    req: TalkingHeadRequest,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    on_step: ProgressFn | None = None,
    before_clip: Callable[[int], None] | None = None,
    after_clip: Callable[[int], None] | None = None,
) -> Iterator[torch.Tensor]:
    """The video clip by clip: uint8 frames [<= clip_length, H, W, 3] on the CPU, trimmed to the audio.

    Only one clip is alive at a time, so memory does not grow with the audio's length.
    `before_clip(c)` / `after_clip(c)` run around each clip (model placement, cache release).
    """
    _check(req, net)
    device = torch.device(device)
    to = dict(device=device, dtype=dtype)
    clips, length = req.audio.num_clips, req.audio.clip_length
    total_steps = clips * req.steps
    reference = req.reference.to(**to)
    with torch.no_grad():
        ref_latent = codec.encode(reference).to(**to)
    latent_size = ref_latent.shape[-1]
    if latent_size * net.config.latent_factor != req.reference.shape[-1]:
        raise ValueError(
            f"the VAE turns the {req.reference.shape[-1]}² reference into a {latent_size}² latent, but the model "
            f"was trained on a VAE that downsamples by {net.config.latent_factor}: use the VAE it was trained with")
    generator = torch.Generator().manual_seed(req.seed)
    scheduler = make_scheduler()
    motion = torch.cat([ref_latent, ref_latent, ref_latent])  # (reference, m1, m2) for clip 0
    for c in range(clips):
        if before_clip is not None:
            before_clip(c)
        with torch.no_grad():
            windows = req.audio.clip_windows(c).unsqueeze(0).to(**to)
            text = req.text_cond
            if req.emotion_per_frame is not None:
                text = req.emotion_per_frame[c * length : (c + 1) * length].unsqueeze(0)
            cond = clip_conditioning(
                net, text.to(**to), req.text_uncond.to(**to), req.face_embedding.to(**to), windows,
                [tuple(m.to(**to) for m in triple) for triple in req.mask_levels], req.face_region.to(**to),
            )
            noise = torch.randn(1, net.config.in_channels, length, latent_size, latent_size,
                                generator=generator).to(**to)
            step_fn = None
            if on_step is not None:
                step_fn = lambda i, n, c=c: on_step(c * req.steps + i + 1, total_steps)  # noqa: E731
            latents = denoise_clip(net, scheduler, noise, motion, cond, req.steps, req.guidance, req.motion_scale,
                                   on_step=step_fn)
            images = codec.decode(latents[0].transpose(0, 1))  # [F, 3, H, W] in [0, 1]
            if c + 1 < clips:  # the next clip's motion frames; the last clip has no next
                last = images[-net.config.motion_frames :].to(**to) * 2 - 1
                motion = torch.cat([ref_latent, codec.encode(last).to(**to)])
            keep = min(length, req.audio.num_frames - c * length)
            frames = (images[:keep].permute(0, 2, 3, 1).float().cpu() * 255).round().to(torch.uint8)
            del cond, latents, images
        yield frames
        if after_clip is not None:
            after_clip(c)


def generate_talking_head(net: EmoCASTNet, codec: LatentCodec, req: TalkingHeadRequest, **options) -> torch.Tensor:
    """The whole video: uint8 frames [num_frames, H, W, 3] on the CPU (`options`: those of `iter_talking_head`)."""
    size = req.reference.shape[-1]
    # Filled clip by clip: one uint8 copy of the video, never a list plus its concatenation.
    video = torch.empty(req.audio.num_frames, size, size, 3, dtype=torch.uint8)
    start = 0
    for frames in iter_talking_head(net, codec, req, **options):
        video[start : start + len(frames)] = frames
        start += len(frames)
    return video
