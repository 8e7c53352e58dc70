"""Paste generated size² frames back into the original picture with a soft-edged seam."""
from __future__ import annotations

import torch

from .crop import CropGeometry
from .resample import resize_hwc

_CHUNK = 16  # frames resized at once: bounds the extra memory for long, high-resolution clips


def _ramp(n: int, feather: float, left: bool, right: bool) -> torch.Tensor:
    """1-D weight over a crop edge: 0 at a feathered edge, smoothstep to 1 within `feather` px."""
    i = torch.arange(n, dtype=torch.float32) + 0.5
    weight = torch.ones(n)
    if feather > 0:
        if left:
            weight = torch.minimum(weight, i / feather)
        if right:
            weight = torch.minimum(weight, (n - i) / feather)
    weight = weight.clamp(0, 1)
    return weight * weight * (3 - 2 * weight)


def feather_mask(geometry: CropGeometry, feather_px: float) -> torch.Tensor:
    """[height, width] blend weight over the crop; edges on the image border are not feathered
    (nothing lies beyond them), so a crop that fills the image pastes back hard."""
    g = geometry
    f = max(0.0, float(feather_px))
    wx = _ramp(g.width, f, g.x0 > 0, g.x0 + g.width < g.image_width)
    wy = _ramp(g.height, f, g.y0 > 0, g.y0 + g.height < g.image_height)
    return wy[:, None] * wx[None, :]


def paste_back(original: torch.Tensor, frames: torch.Tensor, geometry: CropGeometry,
               feather_px: float = 16.0) -> torch.Tensor:
    """original [H, W, 3], frames [T, size, size, 3] (0..1) -> [T, H, W, 3].

    Frames are resized to the crop's native extent, then blended in with `feather_mask`:
    outside the crop the result is exactly `original`.
    """
    g = geometry
    if original.ndim != 3 or tuple(original.shape[:2]) != (g.image_height, g.image_width):
        raise ValueError(f"paste_back: original must be [{g.image_height},{g.image_width},C] (the source image), "
                         f"got {tuple(original.shape)}.")
    if frames.ndim != 4 or frames.shape[-1] != original.shape[-1]:
        raise ValueError(f"paste_back: frames must be [T,H,W,{original.shape[-1]}], got {tuple(frames.shape)}.")
    h, w = original.shape[:2]
    gx0, gy0, gx1, gy1 = g.box
    ox0, oy0, ox1, oy1 = max(gx0, 0), max(gy0, 0), min(gx1, w), min(gy1, h)
    cx0, cy0 = ox0 - gx0, oy0 - gy0
    original = original.to(frames.device, frames.dtype)
    mask = feather_mask(g, feather_px)[cy0:cy0 + oy1 - oy0, cx0:cx0 + ox1 - ox0, None].to(frames.device, frames.dtype)
    out = original.expand(frames.shape[0], *original.shape).clone()
    base = original[oy0:oy1, ox0:ox1]
    for start in range(0, frames.shape[0], _CHUNK):
        chunk = resize_hwc(frames[start:start + _CHUNK], (g.height, g.width)).clamp(0, 1)
        region = chunk[:, cy0:cy0 + oy1 - oy0, cx0:cx0 + ox1 - ox0]
        out[start:start + _CHUNK, oy0:oy1, ox0:ox1] = base + (region - base) * mask
    return out
