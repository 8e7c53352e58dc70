"""Tiny stand-ins for InsightFace's SCRFD and ArcFace, exported to ONNX in the official I/O layout.

No package ships real InsightFace weights, so tests plant faces where these nets must find them.

TinyScrfd: input [1,3,640,640]; 9 outputs = scores [N,1], box distances [N,4], keypoint
offsets [N,10] for strides 8/16/32 with 2 anchors per cell (InsightFace's order).
- stride 8 fires on RED squares: score = (mean of (R−G)/2 over a 64×64 window centred on the
  anchor)⁴, so a 64-px red square (in the 640 letterbox) gives one peak at its centre; boxes ±32 px;
- stride 16 fires on GREEN squares the same way with a 32×32 window; boxes ±16 px;
- stride 32 never fires.
Keypoints: a frontal 5-point pattern scaled to the box (FACE_KPS for a 64-px face).

TinyArcFace: input [1,3,112,112] -> avg-pool 14 -> Linear(192, 512) -> [1,512] (seeded).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Keypoints of a 64-px face relative to its centre (eyes, nose, mouth corners).
FACE_KPS = ((-12, -10), (12, -10), (0, 2), (-10, 14), (10, 14))


class TinyScrfd(nn.Module):
    def forward(self, x):
        red = (x[:, 0:1] - x[:, 1:2]) / 2
        scores, boxes, kps = [], [], []
        for stride, signal, window, dist in ((8, red, 64, 4.0), (16, -red, 32, 1.0), (32, red * 0 - 1, 32, 1.0)):
            n = 640 // stride
            s = F.avg_pool2d(signal, window, stride, padding=window // 2)[:, :, :n, :n].clamp(0, 1) ** 4
            s = s.permute(0, 2, 3, 1).reshape(-1, 1)
            s = torch.stack([s, s], dim=1).reshape(-1, 1)  # 2 anchors per cell
            half = dist * stride
            offsets = torch.tensor([c * half / 32 / stride for kp in FACE_KPS for c in kp], dtype=torch.float32)
            scores.append(s)
            boxes.append(s * 0 + torch.full((4,), dist))
            kps.append(s * 0 + offsets)
        return (*scores, *boxes, *kps)


class TinyArcFace(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 8 * 8, 512)

    def forward(self, x):
        return self.fc(F.avg_pool2d(x, 14).flatten(1)) * 10


def export(module: nn.Module, shape, path) -> None:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about constant tensors: intended here
        torch.onnx.export(module.eval(), (torch.zeros(shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["input.1"])


def make_antelope(folder) -> TinyArcFace:
    """Write scrfd_10g_bnkps.onnx and glintr100.onnx into folder; returns the ArcFace module."""
    folder.mkdir(parents=True, exist_ok=True)
    export(TinyScrfd(), (1, 3, 640, 640), folder / "scrfd_10g_bnkps.onnx")
    arc = TinyArcFace()
    export(arc, (1, 3, 112, 112), folder / "glintr100.onnx")
    return arc
