"""Input normalisation: any IMAGE-like tensor -> one RGB image [H, W, 3] float32 in 0..1 on the CPU.

Policy:
- [B, H, W, C] takes batch item 0 (the node's contract); [H, W, C] is used as is.
- C = 1 (grayscale) is repeated to RGB; C = 3 is RGB; C = 4 (RGBA) is composited over
  white, because a transparent background in a portrait cut-out should read as a plain
  light backdrop, not as whatever colour the hidden pixels happen to hold.
- Values are clamped to 0..1 (upstream nodes can overshoot slightly).
- The short side must be at least MIN_SIDE pixels: below that no detector or landmarker
  sees a face and the 512² crop would be mostly interpolation.
"""
from __future__ import annotations

import torch

MIN_SIDE = 64


def as_rgb(image, name: str = "image") -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected an IMAGE tensor [B,H,W,C] or [H,W,C], got {type(image).__name__}.")
    if image.ndim == 4:
        if image.shape[0] < 1:
            raise ValueError(f"{name}: the image batch is empty.")
        image = image[0]
    if image.ndim != 3:
        raise ValueError(f"{name}: expected [B,H,W,C] or [H,W,C], got shape {tuple(image.shape)}.")
    h, w, c = image.shape
    if c not in (1, 3, 4):
        raise ValueError(f"{name}: expected 1 (gray), 3 (RGB) or 4 (RGBA) channels last, got shape "
                         f"{tuple(image.shape)}; a [C,H,W] tensor must be permuted to [H,W,C] first.")
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"{name}: {w}x{h} px is too small for face detection; use a portrait whose short side "
                         f"is at least {MIN_SIDE} px (512 px or more works best).")
    image = image.detach().to("cpu", torch.float32)
    if not torch.isfinite(image).all():
        raise ValueError(f"{name}: the image contains NaN or infinite values.")
    image = image.clamp(0.0, 1.0)
    if c == 1:
        return image.expand(h, w, 3).contiguous()
    if c == 4:
        alpha = image[..., 3:]
        return (image[..., :3] * alpha + (1.0 - alpha)).contiguous()
    return image.contiguous()
