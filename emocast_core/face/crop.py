"""Square crop around the face, and its geometry for pasting generated frames back.

Crop policy (the official code instead resizes the whole given image to 512², so it
expects users to pre-crop square, face-centred portraits):
- side = max(face box w, h) × crop_scale, at most the image's long side;
- centred on the face box, then shifted to stay inside the image along any axis the
  image is long enough for (real pixels beat padding; the face may sit off-centre);
- where the image is too short on an axis, the crop is centred on that axis and the
  missing border is filled by edge replication;
- the crop is cut at native resolution with integer pixel offsets (no resampling), so
  landmarks and masks are computed exactly as the official code computes them on a
  pre-cropped image; only then is it resized to size² (antialiased bilinear).
- crop_scale = 0, or no face: the whole image, resized to size² as officially (a
  non-square image is distorted, not cropped).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropGeometry:
    """Where the model's size×size frame lies in the original image.

    x0, y0: top-left of the crop in original pixels (negative = padded beyond the border);
    width, height: crop extent in original pixels (equal unless the whole image was used);
    image_width, image_height: the original image; size: the model frame's side (512).
    A point (u, v) in model pixels is (x0 + u·width/size, y0 + v·height/size) in the original.
    """
    x0: int
    y0: int
    width: int
    height: int
    image_width: int
    image_height: int
    size: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in original pixels, half-open."""
        return self.x0, self.y0, self.x0 + self.width, self.y0 + self.height

    @property
    def is_whole_image(self) -> bool:
        return (self.x0, self.y0, self.width, self.height) == (0, 0, self.image_width, self.image_height)


def whole_image(width: int, height: int, size: int) -> CropGeometry:
    return CropGeometry(0, 0, width, height, width, height, size)


def _place(center: float, side: int, length: int) -> int:
    if side <= length:
        return int(min(max(round(center - side / 2), 0), length - side))
    return -((side - length) // 2)


def square_crop(face_box, width: int, height: int, crop_scale: float, size: int) -> CropGeometry:
    """Square crop around face_box (x0, y0, x1, y1) in original pixels."""
    x0, y0, x1, y1 = (float(v) for v in face_box)
    side = int(round(max(x1 - x0, y1 - y0, 1.0) * crop_scale))
    side = max(1, min(side, max(width, height)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return CropGeometry(_place(cx, side, width), _place(cy, side, height), side, side, width, height, size)


def crop_pixels(image: torch.Tensor, geometry: CropGeometry) -> torch.Tensor:
    """[H, W, C] -> the crop [height, width, C] at native resolution, edges replicated where outside."""
    h, w = image.shape[:2]
    gx0, gy0, gx1, gy1 = geometry.box
    inner = image[max(gy0, 0):min(gy1, h), max(gx0, 0):min(gx1, w)]
    pad = (max(-gx0, 0), max(gx1 - w, 0), max(-gy0, 0), max(gy1 - h, 0))
    if not any(pad):
        return inner.clone()
    return F.pad(inner.permute(2, 0, 1)[None], pad, mode="replicate")[0].permute(1, 2, 0).contiguous()
