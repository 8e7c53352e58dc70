"""SCRFD face detector (InsightFace `scrfd_10g_bnkps.onnx`) run directly with onnxruntime.

Same pre- and post-processing as InsightFace's `FaceAnalysis(det_size=640)`:
- letterbox: resize keeping the aspect ratio so the long side is 640 (bilinear, no
  antialiasing, like cv2.resize), placed top-left on black; RGB, (x − 127.5) / 128, NCHW;
- 9 outputs = scores, box distances, keypoint offsets for strides 8, 16, 32, with 2
  anchors per cell; anchor centre = (col·stride, row·stride), each repeated per anchor;
- box = centre ∓ distance·stride (left, top, right, bottom); keypoint = centre + offset·stride;
- score ≥ 0.5, sorted by score, greedy NMS at IoU 0.4 (areas with InsightFace's +1);
- coordinates divided by det_scale = new_height / height.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import onnx_runtime
from .resample import resize_sample_like

INPUT_SIZE = 640
STRIDES = (8, 16, 32)
SCORE_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4


@dataclass
class Face:
    box: np.ndarray  # [4] x0, y0, x1, y1 in image pixels
    score: float
    keypoints: np.ndarray  # [5, 2] left eye, right eye, nose, left mouth corner, right mouth corner (image left/right)

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def letterbox(rgb: torch.Tensor, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """RGB [H, W, 3] in 0..1 -> (blob [1, 3, size, size] float32, det_scale)."""
    h, w = rgb.shape[:2]
    if h / w > 1.0:
        new_h, new_w = size, max(1, int(size / (h / w)))
    else:
        new_w, new_h = size, max(1, int(size * (h / w)))
    resized = resize_sample_like(rgb.permute(2, 0, 1) * 255.0, (new_h, new_w))
    canvas = torch.zeros(3, size, size)
    canvas[:, :new_h, :new_w] = resized
    return ((canvas - 127.5) / 128.0)[None].numpy().astype(np.float32), new_h / h


def _rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(-1, 1)


def _by_stride(outputs: list) -> tuple[list, list, list]:
    """Group the 9 outputs by kind (last dim 1 / 4 / 10) and order each kind by stride (most rows first)."""
    outs = [_rows(o) for o in outputs]
    kinds = {k: sorted([o for o in outs if o.shape[1] == k], key=len, reverse=True) for k in (1, 4, 10)}
    if len(outs) != 9 or any(len(v) != 3 for v in kinds.values()):
        shapes = [tuple(np.shape(o)) for o in outputs]
        raise ValueError(f"Not an SCRFD detector with keypoints (expected 9 outputs: scores, boxes and 5 keypoints "
                         f"for strides 8/16/32), got output shapes {shapes}. Use scrfd_10g_bnkps.onnx.")
    return kinds[1], kinds[4], kinds[10]


def anchor_centres(stride: int, anchors: int, size: int = INPUT_SIZE) -> np.ndarray:
    cells = size // stride
    ys, xs = np.mgrid[:cells, :cells]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, anchors, axis=0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_THRESHOLD) -> list[int]:
    x0, y0, x1, y1 = boxes.T
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        inter = iw * ih
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return keep


def decode(outputs: list, det_scale: float, threshold: float = SCORE_THRESHOLD,
           nms_threshold: float = NMS_THRESHOLD, size: int = INPUT_SIZE) -> list[Face]:
    """Raw SCRFD outputs -> faces in original-image pixels, best score first."""
    scores_l, boxes_l, kps_l = _by_stride(outputs)
    all_scores, all_boxes, all_kps = [], [], []
    for stride, scores, dist, kps in zip(STRIDES, scores_l, boxes_l, kps_l):
        cells = (size // stride) ** 2
        if len(scores) % cells or not (len(scores) == len(dist) == len(kps)):
            raise ValueError(f"SCRFD output rows {len(scores)}/{len(dist)}/{len(kps)} do not fit a {size}² input at "
                             f"stride {stride}; the detector must take {size}×{size} images.")
        centres = anchor_centres(stride, len(scores) // cells, size)
        hit = scores[:, 0] >= threshold
        c, d, k = centres[hit], dist[hit] * stride, kps[hit] * stride
        all_scores.append(scores[hit, 0])
        all_boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
        all_kps.append(k.reshape(-1, 5, 2) + c[:, None, :])
    scores = np.concatenate(all_scores)
    order = scores.argsort()[::-1]
    scores = scores[order]
    boxes = np.concatenate(all_boxes)[order] / det_scale
    kps = np.concatenate(all_kps)[order] / det_scale
    return [Face(boxes[i], float(scores[i]), kps[i]) for i in nms(boxes, scores, nms_threshold)]


class ScrfdDetector:
    def __init__(self, path: str, prefer_cuda: bool = False):
        self.path = path
        self.session = onnx_runtime.session(path, prefer_cuda)
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, rgb: torch.Tensor) -> list[Face]:
        """RGB [H, W, 3] in 0..1 -> faces, largest first."""
        blob, det_scale = letterbox(rgb)
        outputs = self.session.run(None, {self.input_name: blob})
        return sorted(decode(outputs, det_scale), key=lambda f: f.area, reverse=True)
