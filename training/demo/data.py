"""The synthetic videos -> a training cache, through the pack's dataset preparation.

The drawn faces need no detector: their geometry is known.  Each video's portrait
is prepared exactly as Portrait Prep prepares the demo portrait in the example
workflow (insightface_dir "none"): the whole 64² frame is the crop and the face region (`crop_scale` 0,
a full face mask), the lip region is the drawn mouth's box (a lip mask), and the
face embedding is zero (no ArcFace runs; the demo model ignores it).  One lip box
serves every drawn face: the union of the set's mouth regions (rows 30-48, columns
22-41 of 64), so a single lip mask image goes with any demo portrait.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..prepare import PrepareConfig, PrepareModels, prepare_dataset
from ..prepare_sources import frames_at

if __package__ and __package__.count(".") >= 2:  # inside the pack (see training/_core.py)
    from ...emocast_core.face import masks_only_models, prepare_portrait
else:
    from emocast_core.face import masks_only_models, prepare_portrait


LIP_BOX_64 = (30, 49, 22, 42)  # y0, y1, x0, x1 (half-open) in a 64² drawn face


def region_masks(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(face mask, lip mask) [1, S, S] for a drawn face of side S: the whole frame, and the lip box."""
    y0, y1, x0, x1 = (round(v * size / 64) for v in LIP_BOX_64)
    lip = torch.zeros(1, size, size)
    lip[:, y0:y1, x0:x1] = 1.0
    return torch.ones(1, size, size), lip


def drawn_portrait(image: torch.Tensor, size: int = 64, name: str = "portrait"):
    """A drawn face's Portrait (image [H, W, 3] in 0..1), as the demo workflow's Portrait Prep makes it."""
    face, lip = region_masks(image.shape[0])
    return prepare_portrait(image, masks_only_models(), allow_no_face=True, crop_scale=0, face_mask=face, lip_mask=lip,
                            size=size, name=name)


def first_frame(path: Path) -> torch.Tensor:
    with contextlib.closing(frames_at(path)) as frames:
        return torch.from_numpy(next(iter(frames))).float() / 255


def prepare_synthetic(videos: Path, cache: Path, vae, wav2vec, text, size: int = 64, progress=None):
    """prepare_dataset over the synthetic videos with their known geometry; returns the report."""
    def portrait(source):
        return drawn_portrait(first_frame(source.path), size, source.path.name)

    models = PrepareModels(vae=vae, wav2vec=wav2vec, text=text, face=None, portrait=portrait)
    return prepare_dataset(videos, cache, models, PrepareConfig(resolution=size, max_seconds=0), progress)
