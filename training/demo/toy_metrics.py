"""Measurements of the toy benchmark (training/demo/toybench.py) on frames of synthetic-set faces.

All take frames uint8 [T, S, S, 3] of one talking clip, its reference portrait
uint8 [S, S, 3] (the identity's neutral still face) and the `Identity` that
labels.jsonl records, so generated frames are measured where the face is drawn:

- `lip_r`: Pearson r of face_drawing.mouth_darkness (dark pixels in the mouth
  region) and the speech envelope; r of a constant series (a still mouth) is
  undefined and counts as 0.
- `EmotionClassifier`: multinomial logistic regression on `emotion_features`:
  each frame is resized to 64² and shifted onto the portrait by the centroid of
  its skin-coloured pixels above the mouth (`face_offset`: the head sways and
  nods; the frame's global colour drift is removed before the colour test),
  and the grey difference to the portrait is cropped in a brow/eye/nose band
  and a mouth band placed by the identity's geometry, 2x2-pooled, minus each band's median (a global
  brightness drift is no expression).  Differences to the neutral portrait
  cancel the identity, so a classifier fitted on training identities transfers.
- `identity_error`: mean absolute colour difference (0..1) of the median skin
  colour and of the median background colour, frames vs portrait, over pixels
  that are skin (above the mouth) or background in the portrait and stay so
  under head motion (eroded masks).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .face_drawing import HEAD_Y, ZOOM, Identity, mouth_darkness

FEATURE_SIZE = 64  # emotion features are measured at this resolution whatever the clip size
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def pearson(a, b) -> float:
    """Pearson r; 0.0 where either series is constant (r undefined), e.g. a mouth that never moves."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def lip_r(frames: np.ndarray, ident: Identity, envelope: np.ndarray) -> float:
    return pearson(mouth_darkness(frames, ident), envelope)


def _float(frames) -> torch.Tensor:
    """uint8 [T, S, S, 3] -> float [T, 3, S, S] in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def _skin(img: torch.Tensor, ident: Identity) -> torch.Tensor:
    """float [T, S, S]: 1 where a pixel is nearer the skin than the hair, backdrop, shirt and lips (robust to
    a generator's colour drift; the darker neck counts as skin, so callers keep to rows above the chin)."""
    t, _, h, w = img.shape
    palette = torch.tensor([ident.skin, ident.hair, ident.background, ident.shirt, ident.lips], dtype=torch.float32)
    d = torch.cdist(img.permute(0, 2, 3, 1).reshape(-1, 3), palette)
    return (d.argmin(1) == 0).reshape(t, h, w).float()


def _centroid(w: torch.Tensor) -> torch.Tensor:
    """[T, 2] (x, y) pixel centroid of each weight map [T, S, S]."""
    grid = torch.arange(w.shape[-1], dtype=torch.float32)
    n = w.sum((1, 2)).clamp_min(1e-6)
    return torch.stack([(w.sum(1) * grid).sum(1) / n, (w.sum(2) * grid).sum(1) / n], 1)


def _above(cut: torch.Tensor, size: int) -> torch.Tensor:
    """[T, S, 1] soft weight of rows above row `cut` [T] (fractional, so the centroid moves smoothly)."""
    return (cut[:, None, None] - torch.arange(size, dtype=torch.float32)[None, :, None] + 0.5).clamp(0.0, 1.0)


def face_offset(img: torch.Tensor, ref: torch.Tensor, ident: Identity) -> torch.Tensor:
    """[T, 2] pixel shift of each frame's face from the portrait's: skin centroids above a cut under the mouth.

    The cut follows the face (a fixed one would halve the vertical shift), found by fixed-point passes."""
    size = img.shape[-1]
    cut = torch.tensor([float(_row(ident.mouth_y + 0.06, size))])
    ref_c = _centroid(_skin(ref, ident) * _above(cut, size))
    # A global colour drift (a generator's tint) would move pixels across the palette: take it out first.
    drift = img.flatten(2).median(2).values - ref.flatten(2).median(2).values
    skin = _skin(img - drift[:, :, None, None], ident)
    off = torch.zeros(len(img), 2)
    for _ in range(6):  # each pass divides the vertical error by two
        off = _centroid(skin * _above(cut + off[:, 1], size)) - ref_c
    return off


def _shift(img: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Sample img [T, C, S, S] at pixel + offset [T, 2] (bilinear; edges repeat)."""
    t, _, size, _ = img.shape
    theta = torch.zeros(t, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = offset * (2.0 / size)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _row(v: float, size: int = FEATURE_SIZE) -> int:
    return round((HEAD_Y + v) * ZOOM * size / 2 + size / 2)


def emotion_features(frames: np.ndarray, portrait: np.ndarray, ident: Identity) -> np.ndarray:
    """float32 [T, D]: aligned, pooled grey differences to the portrait in the brow/eye and mouth bands."""
    img, ref = _float(frames), _float(portrait[None])
    if img.shape[-1] != FEATURE_SIZE:
        img = F.interpolate(img, size=(FEATURE_SIZE,) * 2, mode="area")
        ref = F.interpolate(ref, size=(FEATURE_SIZE,) * 2, mode="area")
    diff = ((_shift(img, face_offset(img, ref, ident)) - ref).permute(0, 2, 3, 1) @ _LUMA)[:, None]
    ey, my = _row(ident.eye_y - 0.07), _row(ident.mouth_y)
    bands = [diff[:, :, ey - 10:ey + 10, 12:52], diff[:, :, my - 8:my + 8, 18:46]]
    feats = []
    for band in bands:
        band = F.avg_pool2d(band, 2).flatten(1)
        feats.append(band - band.median(1, keepdim=True).values)
    return torch.cat(feats, 1).numpy()


class EmotionClassifier:
    """Standardised features -> linear softmax over the eight classes (fit on CPU in seconds)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        self.mean, self.std, self.weight, self.bias = mean, std, weight, bias

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, classes: int, steps: int = 300, decay: float = 1e-3,
            std_floor: float = 0.05, seed: int = 0) -> "EmotionClassifier":
        torch.manual_seed(seed)
        x = torch.from_numpy(x).float()
        y = torch.from_numpy(np.asarray(y)).long()
        # The floor keeps pixels that never change in training from amplifying a generator's small errors.
        mean, std = x.mean(0), x.std(0).clamp_min(std_floor)
        z = (x - mean) / std
        lin = torch.nn.Linear(z.shape[1], classes)
        opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(lin(z), y) + decay * lin.weight.pow(2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        return cls(mean, std, lin.weight.detach().clone(), lin.bias.detach().clone())

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (torch.from_numpy(np.asarray(x)).float() - self.mean) / self.std
        return (z @ self.weight.T + self.bias).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "std": self.std, "weight": self.weight, "bias": self.bias}

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "EmotionClassifier":
        return cls(sd["mean"], sd["std"], sd["weight"], sd["bias"])


def _erode(mask: torch.Tensor, px: int) -> torch.Tensor:
    return -F.max_pool2d(-mask[None, None].float(), 2 * px + 1, stride=1, padding=px)[0, 0] > 0.5


def identity_error(frames: np.ndarray, portrait: np.ndarray, ident: Identity) -> float:
    """Mean |Δ| (0..1) of the median skin colour and of the median background colour (frames vs portrait)."""
    img, ref = _float(frames), _float(portrait[None])
    size = ref.shape[-1]
    px = max(1, round(size * 0.05))  # head motion reaches about ±0.05 of the frame width
    above_mouth = _above(torch.tensor([float(_row(ident.mouth_y, size))]), size)  # clear of the neck
    skin = _erode((_skin(ref, ident) * above_mouth)[0] > 0.5, px)
    bg_d = ((ref[0] - torch.tensor(ident.background)[:, None, None]).abs().amax(0))
    background = _erode(bg_d < 0.15, px)  # the backdrop has a soft vertical gradient
    err = []
    for mask in (skin, background):
        if not mask.any():
            continue
        got = img[:, :, mask].permute(1, 0, 2).flatten(1).median(1).values
        want = ref[0][:, mask].median(1).values
        err.append(float((got - want).abs().mean()))
    return float(np.mean(err)) if err else 0.0
