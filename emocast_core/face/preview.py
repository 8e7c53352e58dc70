"""A preview of what the model sees: the size² crop with the soft masks tinted and the hard boxes outlined."""
from __future__ import annotations

import torch

from .resample import resize_area_like

FACE_COLOUR = (0.2, 0.9, 0.3)
LIP_COLOUR = (1.0, 0.25, 0.25)


def _outline(image: torch.Tensor, box, colour, thickness: int = 2) -> None:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    c = torch.tensor(colour)
    t = thickness
    image[y0:min(y0 + t, y1), x0:x1] = c
    image[max(y1 - t, y0):y1, x0:x1] = c
    image[y0:y1, x0:min(x0 + t, x1)] = c
    image[y0:y1, max(x1 - t, x0):x1] = c


def render_preview(image_01: torch.Tensor, face_blur: torch.Tensor, lip_blur: torch.Tensor,
                   face_box=None, lip_box=None, alpha: float = 0.35) -> torch.Tensor:
    """image_01 [S, S, 3]; blurred maps [g, g]; boxes (x0, y0, x1, y1) in S² pixels -> [S, S, 3]."""
    s = image_01.shape[0]
    face = resize_area_like((face_blur - lip_blur).clamp(min=0), (s, s))[..., None]
    lip = resize_area_like(lip_blur, (s, s))[..., None]
    out = image_01.clone()
    out = out + alpha * face * (torch.tensor(FACE_COLOUR) - out)
    out = out + alpha * lip * (torch.tensor(LIP_COLOUR) - out)
    if face_box is not None:
        _outline(out, face_box, FACE_COLOUR)
    if lip_box is not None:
        _outline(out, lip_box, LIP_COLOUR)
    return out.clamp(0, 1)
