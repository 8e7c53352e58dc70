"""Face and lip boxes from landmarks: MediaPipe's 478-point mesh, or SCRFD's 5 keypoints as a fallback.

Boxes here are raw extents (min_x, max_x, min_y, max_y) before `expand_region`.
"""
from __future__ import annotations

import numpy as np

from .masks import point_extent

# MediaPipe face-mesh indices used upstream: the face oval (36) and the outer lip contour (20).
SILHOUETTE_IDS = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                  152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LIP_IDS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375)

# Fallback from 5 keypoints, measured on MediaPipe meshes of frontal faces: the outer-lip bbox spans the
# mouth corners in x, is ~0.4 of that width tall and centred ~0.1 width below the corners' midpoint. The
# silhouette bbox is close to SCRFD's face box (brow/forehead to chin, cheek to cheek), used as is.
LIP_HEIGHT_PER_WIDTH = 0.4
LIP_DROP_PER_WIDTH = 0.1


def mesh_extents(points) -> tuple[tuple, tuple]:
    """[≥468, 2] mesh points in pixels -> (face extent, lip extent)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 468 or p.shape[1] < 2:
        raise ValueError(f"expected MediaPipe face-mesh points [468 or 478, 2], got {p.shape}.")
    return point_extent(p[list(SILHOUETTE_IDS), :2]), point_extent(p[list(LIP_IDS), :2])


def keypoint_extents(box, keypoints) -> tuple[tuple, tuple]:
    """SCRFD box [4] + keypoints [5, 2] -> (face extent, lip extent), approximating the mesh boxes."""
    x0, y0, x1, y1 = (float(v) for v in box)
    left, right = np.asarray(keypoints, dtype=np.float64)[3:5]
    width = max(abs(right[0] - left[0]), 1.0)
    cx = (left[0] + right[0]) / 2
    cy = (left[1] + right[1]) / 2 + LIP_DROP_PER_WIDTH * width
    half_h = LIP_HEIGHT_PER_WIDTH * width / 2
    face = point_extent([[x0, y0], [x1, y1]])
    lip = point_extent([[cx - width / 2, cy - half_h], [cx + width / 2, cy + half_h]])
    return face, lip


def extent_iou(a, b) -> float:
    """IoU of two (min_x, max_x, min_y, max_y) extents."""
    iw = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[2], b[2]))
    inter = iw * ih
    union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / union if union > 0 else 0.0
