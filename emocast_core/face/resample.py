"""The two bilinear resizes the official pipeline relies on, in torch.

- `resize_area_like` = PIL/torchvision `Resize` (bilinear WITH antialiasing): the
  reference image, the FaceLocator box and the per-level masks.
- `resize_sample_like` = OpenCV `INTER_LINEAR` (bilinear WITHOUT antialiasing): SCRFD's
  letterbox and the mask's resize to the blur grid.
Both take [..., H, W] float tensors; agreement with PIL/OpenCV in float is ~1e-6.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _resize(x: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x.clone()
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:]).float()
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return out.reshape(*lead, *size)


def resize_area_like(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return _resize(x, size, antialias=True)


def resize_sample_like(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return _resize(x, size, antialias=False)


def resize_hwc(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[..., H, W, C] -> [..., h, w, C] with PIL-like antialiased bilinear."""
    return resize_area_like(image.movedim(-1, -3), size).movedim(-3, -1)
