"""Classifier-free-guidance batches in the official layout: row 0 unconditional, row 1 conditional.

| input               | unconditional          | conditional        |
|---------------------|------------------------|--------------------|
| TEA text tokens     | CLIP("")               | CLIP(prompt)       |
| face tokens         | ImageProj(zeros)       | ImageProj(ArcFace) |
| audio tokens        | zeros (after AudioProj)| AudioProj(windows) |
| EAA emotion query   | CLIP(prompt) (quirk)   | CLIP(prompt)       |
| FaceLocator         | zeros                  | FaceLocator(mask)  |
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import EmoCASTNet


@dataclass
class ClipConditioning:
    text_face: torch.Tensor  # [2, 77 + 4, 768], or per frame [2, F, 77 + 4, 768]
    audio: torch.Tensor  # [2, F, 32, 768]
    emotion: torch.Tensor  # [2, 77, 768] or per frame [2, F, 77, 768]
    masks: list  # per level: (full, face, lip), each [2F, hw]
    face_features: torch.Tensor  # [2, C0, F, h, w]

    @property
    def frames(self) -> int:
        return self.audio.shape[1]


def text_face_tokens(net: EmoCASTNet, text_cond, text_uncond, face_embedding) -> torch.Tensor:
    """TEA tokens [2, 77 + 4, 768]; with per-frame text [1, F, 77, 768], per frame [2, F, 81, 768]."""
    face = net.imageproj(torch.cat([torch.zeros_like(face_embedding), face_embedding])).to(text_cond.dtype)
    if text_cond.dim() == 4:
        frames = text_cond.shape[1]
        text = torch.cat([text_uncond.unsqueeze(1).expand(-1, frames, -1, -1), text_cond])
        return torch.cat([text, face.unsqueeze(1).expand(-1, frames, -1, -1)], dim=2)
    return torch.cat([torch.cat([text_uncond, text_cond]), face], dim=1)


def face_locator_features(net: EmoCASTNet, face_region: torch.Tensor, frames: int) -> torch.Tensor:
    """face_region [1, 3, H, W] (hard face box) -> [2, C0, F, H/8, W/8], zeros for the uncond half."""
    feats = net.face_locator(face_region.unsqueeze(2).expand(-1, -1, frames, -1, -1))
    return torch.cat([torch.zeros_like(feats), feats])


def frame_masks(levels, frames: int) -> list:
    """Per level (full, face, lip) maps [1, hw] -> [2F, hw] (same for every frame and both halves)."""
    return [tuple(m.reshape(1, -1).repeat(2 * frames, 1) for m in triple) for triple in levels]


def clip_conditioning(net, text_cond, text_uncond, face_embedding, audio_windows, mask_levels, face_region):
    """Everything one clip needs, from encoded text, ArcFace, wav2vec windows [1, F, 5, L, H] and masks.

    `text_cond` may be per frame [1, F, 77, 768] (emotion keyframes); it then drives
    both the TEA text and the EAA query of each frame.  The EAA query is the prompt's
    text in both CFG halves, as officially.
    """
    frames = audio_windows.shape[1]
    audio = net.audioproj(audio_windows)
    return ClipConditioning(
        text_face=text_face_tokens(net, text_cond, text_uncond, face_embedding),
        audio=torch.cat([torch.zeros_like(audio), audio]),
        emotion=torch.cat([text_cond, text_cond]),
        masks=frame_masks(mask_levels, frames),
        face_features=face_locator_features(net, face_region, frames),
    )
