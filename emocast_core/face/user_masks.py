"""User-drawn MASK inputs (face, lip) -> boxes in original-image pixels.

Decision: a user mask is reduced to the bounding box of its pixels above 0.5 and then
goes through the official recipe (hard box → blur → normalise) without any expand
ratio: the FaceLocator and the audio masks were trained on rectangles, and the user's
drawing states the region directly. A mask of another size than the image is resized
to it first (its bounding box scales with it).
"""
from __future__ import annotations

import logging

import torch

from .resample import resize_sample_like

log = logging.getLogger(__name__)

THRESHOLD = 0.5


def mask_box(mask, height: int, width: int, name: str) -> tuple[int, int, int, int] | None:
    """ComfyUI MASK [B, H, W] or [H, W] (batch item 0) -> (x0, y0, x1, y1) half-open, or None if not given."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3) or mask.numel() == 0:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name}: expected a MASK [B,H,W] or [H,W], got {shape}.")
    m = (mask[0] if mask.ndim == 3 else mask).detach().to("cpu", torch.float32)
    if tuple(m.shape) != (height, width):
        log.info("EmoCAST: %s is %dx%d, the image %dx%d; resizing the mask", name, m.shape[1], m.shape[0], width,
                 height)
        m = resize_sample_like(m, (height, width))
    ys, xs = torch.nonzero(m > THRESHOLD, as_tuple=True)
    if ys.numel() == 0:
        raise ValueError(f"{name} is empty (no pixel above {THRESHOLD}); paint the region white, or disconnect "
                         f"the input to use the detected box.")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
