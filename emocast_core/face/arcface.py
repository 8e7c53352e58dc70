"""ArcFace identity embedding (InsightFace `glintr100.onnx`), as EmoCAST's face tokens expect it.

Aligned 112² RGB crop, (x − 127.5) / 127.5, NCHW -> the RAW 512-d output. Not
L2-normalised: InsightFace's `face.embedding` is raw and the official ImageProj was
trained on it.
"""
from __future__ import annotations

import numpy as np
import torch

from . import onnx_runtime
from .align import norm_crop

EMBEDDING_DIM = 512


def preprocess(aligned_255: torch.Tensor) -> np.ndarray:
    """[112, 112, 3] RGB in 0..255 -> blob [1, 3, 112, 112] float32."""
    return ((aligned_255.permute(2, 0, 1)[None] - 127.5) / 127.5).numpy().astype(np.float32)


class ArcFaceEmbedder:
    def __init__(self, path: str, prefer_cuda: bool = False):
        self.path = path
        self.session = onnx_runtime.session(path, prefer_cuda)
        self.input_name = self.session.get_inputs()[0].name

    def embed(self, rgb: torch.Tensor, keypoints) -> torch.Tensor:
        """RGB [H, W, 3] in 0..1 + 5 keypoints in its pixels -> [1, 512] float32 (raw)."""
        aligned = norm_crop(rgb * 255.0, keypoints)
        out = self.session.run(None, {self.input_name: preprocess(aligned)})[0]
        out = np.asarray(out, dtype=np.float32).reshape(1, -1)
        if out.shape[1] != EMBEDDING_DIM:
            raise ValueError(f"{self.path}: expected a {EMBEDDING_DIM}-d ArcFace embedding, got {out.shape[1]}-d. "
                             f"Use glintr100.onnx from the antelopev2 pack.")
        return torch.from_numpy(out.copy())


def no_face_embedding() -> torch.Tensor:
    """What the official code uses when InsightFace finds no face."""
    return torch.zeros(1, EMBEDDING_DIM)
