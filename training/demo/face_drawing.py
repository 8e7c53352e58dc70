"""Vectorised cartoon-face renderer for the synthetic set (numpy; all frames of a clip at once).

Coordinates are resolution-free: the frame spans [-1/ZOOM, 1/ZOOM] on both
axes (y down, head centre at (0, HEAD_Y)), so 64² and 128² renders show the
same face.  Shapes are signed distance fields
composited with analytic anti-aliasing (coverage = clamp(0.5 - d / pixel)),
which needs no supersampling; eyes, brows, nose and mouth are drawn only in
windows that cover them under the clip's poses.  Features sit in head-local coordinates that
follow the per-frame head translation and roll; the shoulders only translate.

`render(identity, frames)` takes an `Identity` and per-frame `FrameParams`
arrays and returns uint8 [T, H, W, 3].  `mouth_darkness` measures the mouth
opening of any rendering of that identity (ground truth or generated): the
count of dark pixels (luminance < 0.22) in an ellipse around the mouth that
covers the head motion (`mouth_mask`; `mouth_box` is its bounding box).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

HEAD_Y = -0.08  # head centre, image coordinates
ZOOM = 1.3  # pixels per image unit relative to the [-1, 1] frame: the head fills about half the width
MOUTH_DARK = (0.25, 0.05, 0.08)
DARK_LUMA = 0.22


@dataclass(frozen=True)
class Identity:
    skin: tuple
    hair: tuple
    background: tuple
    shirt: tuple
    lips: tuple
    iris: tuple
    hair_style: int  # 0 short, 1 long, 2 buzz cut, 3 side fringe
    face_w: float  # head half-width
    face_h: float  # head half-height
    jaw: float  # 0 = oval, 1 = strongly tapered chin
    eye_dx: float  # half the distance between the eyes
    eye_y: float  # relative to the head centre
    eye_w: float
    eye_h: float
    brow_gap: float
    brow_len: float
    brow_w: float
    mouth_y: float
    mouth_w: float
    mouth_open: float  # mouth height at openness 1

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


@dataclass
class FrameParams:
    """Per-frame arrays [T] (expression: synthetic_faces.EXPRESSIONS; motion in image units / radians)."""
    open: np.ndarray  # mouth opening, 1 = the identity's full height
    curve: np.ndarray  # corner lift (+ smile, - frown)
    smirk: np.ndarray  # right-corner-only lift
    round: np.ndarray  # narrower, rounder opening
    stretch: np.ndarray  # wider mouth
    upper_raise: np.ndarray  # asymmetric upper-lip raise and nose wrinkle
    brow_raise: np.ndarray
    brow_tilt: np.ndarray  # + inner ends down (anger), - inner ends up (sadness, fear)
    brow_in: np.ndarray  # inner ends pulled together
    eye_open: np.ndarray  # 1 = relaxed, < 1 narrowed / blinking, > 1 wide
    tx: np.ndarray
    ty: np.ndarray
    roll: np.ndarray


def _cov(d, px):
    return np.clip(0.5 - d / px, 0.0, 1.0)


def _ellipse(x, y, a, b):
    """Approximate signed distance to an axis-aligned ellipse (first-order, exact on the curve)."""
    f = (x / a) ** 2 + (y / b) ** 2 - 1.0
    return f / (2.0 * np.sqrt((x / a ** 2) ** 2 + (y / b ** 2) ** 2) + 1e-6)


def _segment(x, y, x0, y0, x1, y1, r):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    return np.sqrt((x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2) - r


def _paint(img, alpha, colour):
    """Blend `colour` over img [3, T, h, w] (channel-first: in-place per-channel updates are cheap)."""
    for ch, value in zip(img, np.asarray(colour, np.float32)):
        delta = value - ch
        delta *= alpha
        ch += delta


def _col(p: np.ndarray):
    return np.asarray(p, np.float32)[:, None, None]


def render(ident: Identity, fp: FrameParams, size: int = 64) -> np.ndarray:
    t = len(fp.open)
    px = 2.0 / size / ZOOM
    grid = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0) / ZOOM
    X, Y = grid[None, None, :], grid[None, :, None]
    img = np.empty((3, t, size, size), np.float32)
    for ch, value in zip(img, ident.background):
        ch[:] = value * (1.0 + 0.12 * Y * ZOOM)  # a soft vertical gradient behind the head
    tx, ty, roll = _col(fp.tx), _col(fp.ty), _col(fp.roll)

    # Shoulders and neck follow the head's translation only.
    _paint(img, _cov(_ellipse(X - 0.6 * tx, Y - 1.08, 0.78, 0.42), px), ident.shirt)
    _paint(img, _cov(_ellipse(X - 0.8 * tx, Y - 0.5 - 0.5 * ty, 0.15, 0.3), px), np.multiply(ident.skin, 0.82))

    c, s = np.cos(roll), np.sin(roll)
    dx, dy = X - tx, Y - HEAD_Y - ty
    x, y = c * dx + s * dy, -s * dx + c * dy  # head-local coordinates
    a, b = ident.face_w, ident.face_h
    if ident.hair_style == 1:  # long hair behind the head, down to the shoulders
        d = np.maximum(_ellipse(x, y - 0.12, a * 1.28, b * 1.18), y - 0.55)
        _paint(img, _cov(d, px), ident.hair)
    for side in (-1.0, 1.0):
        _paint(img, _cov(_ellipse(x - side * a * 0.98, y - 0.02, 0.07, 0.1), px), np.multiply(ident.skin, 0.9))
    taper = 1.0 - 0.28 * ident.jaw * np.clip(y / b, 0.0, 1.0)  # narrower towards the chin
    _paint(img, _cov(_ellipse(x / taper, y, a, b), px), ident.skin)
    _hair_cap(img, x, y, ident, px)

    # Small features are drawn in windows that cover them under any of this clip's poses.
    margin = float(np.abs(fp.tx).max() + np.abs(fp.ty).max() + 0.8 * np.abs(fp.roll).max()) + 2 * px

    def window(x0, x1, y0, y1):
        rows = _pixels(HEAD_Y + y0 - margin, HEAD_Y + y1 + margin, size)
        cols = _pixels(x0 - margin, x1 + margin, size)
        return img[:, :, rows, cols], x[:, rows, cols], y[:, rows, cols]
    brow_y = ident.eye_y - ident.eye_h - ident.brow_gap
    reach = ident.eye_dx + ident.brow_len * 0.5 + 0.04
    _brows(*window(-reach, reach, brow_y - 0.12, brow_y + 0.1), ident, fp, px)
    reach = ident.eye_dx + ident.eye_w + 0.02
    _eyes(*window(-reach, reach, ident.eye_y - 0.1, ident.eye_y + 0.1), ident, fp, px)
    _nose(*window(-0.1, 0.1, ident.eye_y, ident.mouth_y), ident, fp, px)
    reach = ident.mouth_w * 1.25 + 0.03
    _mouth(*window(-reach, reach, ident.mouth_y - 0.26, ident.mouth_y + ident.mouth_open + 0.2), ident, fp, px)
    return (np.clip(img.transpose(1, 2, 3, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _pixels(lo: float, hi: float, size: int) -> slice:
    """Pixel indices whose centres may fall in [lo, hi] (image units after zoom)."""
    def px(v):
        return int(np.clip((v * ZOOM + 1.0) / 2.0 * size, 0, size))
    return slice(max(px(lo) - 1, 0), min(px(hi) + 2, size))


def _hair_cap(img, x, y, ident, px):
    a, b = ident.face_w, ident.face_h
    if ident.hair_style == 2:  # buzz cut: a thin cap
        d = np.maximum(_ellipse(x, y + 0.01, a * 1.03, b * 1.03), y + b * 0.62)
    else:
        wave = 0.03 * np.cos(x * 18.0 / a) if ident.hair_style != 3 else 0.22 * x
        d = np.maximum(_ellipse(x, y + 0.02, a * 1.1, b * 1.08), y + b * 0.42 + wave)
    _paint(img, _cov(d, px), ident.hair)


def _brows(img, x, y, ident, fp, px):
    raise_ = _col(fp.brow_raise) * 0.055
    tilt = _col(fp.brow_tilt) * 0.035
    inward = _col(fp.brow_in) * 0.035
    colour = np.minimum(np.multiply(ident.hair, 0.8), 0.45)
    for side in (-1.0, 1.0):
        base = ident.eye_y - ident.eye_h - ident.brow_gap - raise_
        inner_x = side * (ident.eye_dx - ident.brow_len * 0.5) - side * inward
        outer_x = side * (ident.eye_dx + ident.brow_len * 0.5)
        d = _segment(x, y, inner_x, base + tilt, outer_x, base - 0.5 * tilt, ident.brow_w * 0.5)
        _paint(img, _cov(d, px), colour)


def _eyes(img, x, y, ident, fp, px):
    h = np.maximum(ident.eye_h * _col(fp.eye_open), 0.004)
    outline = np.multiply(ident.skin, 0.45)
    for side in (-1.0, 1.0):
        ex, ey = x - side * ident.eye_dx, y - ident.eye_y
        d = _ellipse(ex, ey, ident.eye_w, h)
        _paint(img, _cov(np.abs(d) - 0.009, px), outline)  # lid line: also the closed eye
        sclera = _cov(d, px)
        _paint(img, sclera, (0.96, 0.96, 0.94))
        r = ident.eye_h * 0.78
        _paint(img, sclera * _cov(np.sqrt(ex ** 2 + ey ** 2) - r, px), ident.iris)
        _paint(img, sclera * _cov(np.sqrt(ex ** 2 + ey ** 2) - r * 0.5, px), (0.05, 0.04, 0.05))


def _nose(img, x, y, ident, fp, px):
    ny = ident.eye_y + (ident.mouth_y - ident.eye_y) * 0.6
    shadow = np.multiply(ident.skin, 0.78)
    _paint(img, _cov(_ellipse(x, y - ny, 0.035, 0.022), px), shadow)
    wrinkle = _col(fp.upper_raise)
    for side in (-1.0, 1.0):  # disgust: wrinkles beside the bridge of the nose
        d = _segment(x, y, side * 0.03, ny - 0.1, side * 0.065, ny - 0.05, 0.008)
        _paint(img, _cov(d, px) * np.clip(wrinkle, 0, 1), shadow)


def _mouth(img, x, y, ident, fp, px):
    opening = np.maximum(_col(fp.open), 0.0)
    rnd = _col(fp.round)
    width = ident.mouth_w * (1.0 + 0.18 * _col(fp.stretch) - 0.35 * rnd * np.minimum(opening, 1.0))
    u = x / width
    inside = np.clip(1.0 - u * u, 0.0, 1.0)
    profile = inside ** (0.85 - 0.35 * rnd)  # rounder opening when surprised
    line = (ident.mouth_y - 0.065 * _col(fp.curve) * u * u
            - 0.075 * _col(fp.smirk) * np.maximum(u, 0.0) ** 2)
    h = ident.mouth_open * opening * profile
    raise_ = 0.035 * _col(fp.upper_raise) * np.sqrt(inside) * (1.0 + 0.7 * u)
    top = np.minimum(line - 0.38 * h - raise_, line - 0.012)
    bottom = np.maximum(line + 0.62 * h, line + 0.012)
    edge_x = (np.abs(u) - 1.0) * width
    lip = 0.032 * np.sqrt(inside) + 0.006
    lips = np.maximum(np.maximum(top - lip - y, y - bottom - 1.25 * lip), edge_x - 0.012)
    _paint(img, _cov(lips, px), ident.lips)
    _paint(img, _cov(np.maximum(np.maximum(top - y, y - bottom), edge_x), px), MOUTH_DARK)


def _mouth_region(ident: Identity):
    """Centre y and half-axes of an ellipse that holds the mouth at any opening and pose, clear of the chin."""
    return HEAD_Y + ident.mouth_y + 0.02, ident.mouth_w * 1.15 + 0.04, 0.16


def mouth_box(ident: Identity, size: int = 64) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) pixel bounding box of the measured mouth region."""
    cy, ax, by = _mouth_region(ident)
    rows, cols = _pixels(cy - by, cy + by, size), _pixels(-ax, ax, size)
    return rows.start, rows.stop, cols.start, cols.stop


def mouth_mask(ident: Identity, size: int = 64) -> np.ndarray:
    """bool [H, W]: the elliptic mouth region (its corners would catch long hair beside the chin)."""
    cy, ax, by = _mouth_region(ident)
    grid = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0) / ZOOM
    return (grid[None, :] / ax) ** 2 + ((grid[:, None] - cy) / by) ** 2 <= 1.0


def mouth_darkness(frames: np.ndarray, ident: Identity) -> np.ndarray:
    """Dark-pixel count per frame in the identity's mouth region; frames uint8 [T, H, W, 3] or float 0..1."""
    frames = np.asarray(frames)
    scale = 255.0 if frames.dtype == np.uint8 else 1.0
    luma = frames.astype(np.float32) @ (np.array([0.299, 0.587, 0.114], np.float32) / scale)
    return ((luma < DARK_LUMA) & mouth_mask(ident, frames.shape[1])).sum(axis=(1, 2)).astype(np.float32)
