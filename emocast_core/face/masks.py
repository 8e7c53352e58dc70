"""The official face/lip mask recipe, as a pure function of boxes and image size.

Official order (Hallo `get_mask` → `blur_mask` → `ImageProcessor`):
1. hard rectangles at the image's own resolution: face = silhouette bbox × 1.2, lip = lip bbox × 2.0
   (`expand_region`: centre and side floored, then shifted back inside the image);
2. FaceLocator input = the hard face box resized to size² (PIL bilinear), 3 identical channels;
3. each box: resize to the blur grid (OpenCV INTER_LINEAR) → Gaussian blur (face 51, lip 31,
   OpenCV's sigma rule, reflect-101 border) → min-max normalise to 0..1;
4. full = 1 − face_b, face = max(face_b − lip_b, 0), lip = lip_b;
5. per level: PIL bilinear resize to grid/1, /2, /4, /8 → flatten to [1, h·w].

The blur grid is the latent size (size/8; 64 for 512² as officially). For other grids the
blur's sigma and radius scale with it. Differences from the official code, all small:
it round-trips every map through 8-bit PNGs (we stay in float), and OpenCV's min-max of a
constant map gives 0 where we keep the map (only a box covering the whole image is constant).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .resample import resize_area_like, resize_sample_like

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) pixels, half-open

FACE_EXPAND_RATIO = 1.2
LIP_EXPAND_RATIO = 2.0
FACE_BLUR_KERNEL = 51  # on the 64² grid of a 512² frame
LIP_BLUR_KERNEL = 31
LEVELS = 4


def point_extent(points) -> tuple[float, float, float, float]:
    """(min_x, max_x, min_y, max_y) of [N, 2] points, rounded to pixels (numpy's half-to-even, as upstream)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = np.round(p.min(0)), np.round(p.max(0))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def expand_region(extent, width: int, height: int, ratio: float) -> Box:
    """Upstream's `expand_region` on (min_x, max_x, min_y, max_y), returned as (x0, y0, x1, y1).

    Centre and half-side are floored, then a box poking out is shifted back inside. One fix:
    a box larger than the image is clamped to it (upstream would produce negative indices).
    """
    def axis(lo: float, hi: float, length: int) -> tuple[int, int]:
        mid = (hi + lo) // 2
        half = ((hi - lo) * ratio) // 2
        lo, hi = mid - half, mid + half
        if lo < 0:
            hi, lo = hi - lo, 0
        if hi > length:
            lo, hi = lo - (hi - length), length
        return int(round(max(lo, 0))), int(round(min(hi, length)))

    min_x, max_x, min_y, max_y = extent
    x0, x1 = axis(min_x, max_x, width)
    y0, y1 = axis(min_y, max_y, height)
    return x0, y0, x1, y1


def hard_box(box: Box | None, height: int, width: int) -> torch.Tensor:
    """[H, W] with 1 inside box (clipped to the image), 0 elsewhere; all zeros for None."""
    mask = torch.zeros(height, width)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[max(y0, 0):max(min(y1, height), 0), max(x0, 0):max(min(x1, width), 0)] = 1.0
    return mask


def _gaussian_1d(kernel_64: int, grid: int) -> torch.Tensor:
    # OpenCV's sigma for ksize k and sigma=0: 0.3·((k−1)/2 − 1) + 0.8; both scaled to this grid.
    sigma = (0.3 * ((kernel_64 - 1) * 0.5 - 1) + 0.8) * grid / 64
    radius = int(min(max(round((kernel_64 - 1) / 2 * grid / 64), 1), grid - 1))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-x * x / (2 * sigma * sigma))
    return (k / k.sum()).float()


def gaussian_blur(m: torch.Tensor, kernel_64: int) -> torch.Tensor:
    """Separable Gaussian on a square [g, g] map with reflect-101 borders (= cv2.GaussianBlur)."""
    g = m.shape[-1]
    k = _gaussian_1d(kernel_64, g)
    r = (k.numel() - 1) // 2
    x = F.pad(m[None, None], (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x[0, 0]


def minmax_normalise(m: torch.Tensor) -> torch.Tensor:
    lo, hi = m.min(), m.max()
    if float(hi - lo) <= 1e-6:
        return m.clamp(0, 1)
    return (m - lo) / (hi - lo)


def blurred_box(hard: torch.Tensor, grid: int, kernel_64: int) -> torch.Tensor:
    """Hard [H, W] box -> soft [grid, grid] map in 0..1 (steps 3 of the recipe)."""
    small = resize_sample_like(hard, (grid, grid))
    return minmax_normalise(gaussian_blur(small, kernel_64))


@dataclass
class PortraitMasks:
    face_region: torch.Tensor  # [1, 3, size, size] hard face box for the FaceLocator
    levels: list  # LEVELS × (full, face, lip), each [1, h·w]
    face_blur: torch.Tensor  # [grid, grid] face_b
    lip_blur: torch.Tensor  # [grid, grid] lip_b


def portrait_masks(face_box: Box, lip_box: Box | None, height: int, width: int, size: int = 512,
                   latent_factor: int = 8) -> PortraitMasks:
    """Masks for boxes given in an image of height×width that is shown to the model at size².

    The levels are on the latent grid (size / latent_factor, 8 for SD's VAE) and its three halvings.
    lip_box None (no landmarks and no mouth) gives lip = 0 everywhere.
    """
    if size % (8 * latent_factor):
        raise ValueError(f"size must be a multiple of {8 * latent_factor} ({LEVELS} levels of the "
                         f"size/{latent_factor} latent), got {size}.")
    grid = size // latent_factor
    face_hard = hard_box(face_box, height, width)
    face_b = blurred_box(face_hard, grid, FACE_BLUR_KERNEL)
    lip_b = blurred_box(hard_box(lip_box, height, width), grid, LIP_BLUR_KERNEL)
    maps = (1.0 - face_b, (face_b - lip_b).clamp(min=0), lip_b)
    levels = []
    for level in range(LEVELS):
        side = grid >> level
        levels.append(tuple(resize_area_like(m, (side, side)).reshape(1, -1) for m in maps))
    region = resize_area_like(face_hard, (size, size)).clamp(0, 1)
    return PortraitMasks(region.expand(1, 3, size, size).contiguous(), levels, face_b, lip_b)
