"""ArcFace alignment: similarity transform from 5 keypoints to the standard 112² template, bilinear warp.

Same as InsightFace's `norm_crop` (scikit-image's Umeyama estimate + cv2.warpAffine with a
black border), written with numpy and torch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ARCFACE_SIZE = 112
# Left eye, right eye, nose tip, left mouth corner, right mouth corner (image left/right), 112² frame.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def umeyama(src, dst) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src [N,2] onto dst [N,2], as 3×3.

    Umeyama (1991): SVD of the cross-covariance; a reflection is refused by flipping the
    smallest singular direction.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n, dim = src.shape
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    d = np.ones(dim)
    if np.linalg.det(cov) < 0:
        d[-1] = -1
    u, s, vt = np.linalg.svd(cov)
    rank = np.linalg.matrix_rank(cov)
    t = np.eye(dim + 1)
    if rank == 0:
        raise ValueError("keypoints are degenerate (all identical); cannot align the face.")
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(vt) > 0:
        rot = u @ vt
    elif rank == dim - 1:
        rot = u @ np.diag(np.r_[np.ones(dim - 1), -1]) @ vt
    else:
        rot = u @ np.diag(d) @ vt
    scale = (s @ d) / src_c.var(0).sum()
    t[:dim, :dim] = scale * rot
    t[:dim, dim] = dst_mean - scale * rot @ src_mean
    return t


def warp_affine(image: torch.Tensor, matrix: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """image [H, W, C] -> [h, w, C]; output pixel (u, v) samples input at matrix⁻¹·(u, v, 1).

    Pixel centres sit at integer coordinates and outside pixels are 0, as cv2.warpAffine with
    INTER_LINEAR and a constant black border.
    """
    h_in, w_in = image.shape[:2]
    h, w = size
    inv = np.linalg.inv(np.vstack([np.asarray(matrix, dtype=np.float64)[:2], [0, 0, 1]]))
    v, u = np.mgrid[:h, :w].astype(np.float64)
    src = np.stack([u, v, np.ones_like(u)], axis=-1) @ inv.T
    gx = src[..., 0] * 2 / max(w_in - 1, 1) - 1
    gy = src[..., 1] * 2 / max(h_in - 1, 1) - 1
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1)).float()[None]
    out = F.grid_sample(image.permute(2, 0, 1)[None].float(), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out[0].permute(1, 2, 0)


def norm_crop(image: torch.Tensor, keypoints) -> torch.Tensor:
    """image [H, W, C] + 5 keypoints [5, 2] (image pixels) -> the aligned 112×112 crop [112, 112, C]."""
    kps = np.asarray(keypoints, dtype=np.float64).reshape(5, 2)
    return warp_affine(image, umeyama(kps, ARCFACE_TEMPLATE), (ARCFACE_SIZE, ARCFACE_SIZE))
