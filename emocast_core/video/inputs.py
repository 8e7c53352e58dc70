"""Validation and per-frame conversion of what `write_mp4` receives.

Frames are IMAGE-like `[T, H, W, 3]` float 0..1 (torch or numpy; uint8 0..255
is accepted as-is).  Nothing here makes a full copy of the clip: checks and
conversions walk it frame by frame or in small chunks.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

_CHECK_CHUNK = 16  # frames per finiteness check: bounded temporary memory


def frame_rate(fps) -> Fraction:
    """`fps` as the exact rational the container stores (milli-fps, like core)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    rate = Fraction(round(value * 1000), 1000)
    if rate == 0:
        raise ValueError(f"fps {fps!r} is too small; use at least 0.001")
    return rate


def check_frames(frames) -> tuple[int, int, int]:
    """Validate the clip and return (T, H, W); raises ValueError naming `frames`."""
    if not isinstance(frames, (torch.Tensor, np.ndarray)):
        raise ValueError(f"frames must be a torch tensor or numpy array [T,H,W,3], got {type(frames).__name__}")
    shape = tuple(frames.shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"frames must have shape [T,H,W,3] (RGB, channels last), got {list(shape)}")
    t, h, w, _ = shape
    if t == 0:
        raise ValueError("frames is empty (0 frames); pass at least one frame")
    if h == 0 or w == 0:
        raise ValueError(f"frames has zero height or width: {list(shape)}")
    if _is_uint8(frames):
        return t, h, w
    if not _is_float(frames):
        raise ValueError(f"frames must be float 0..1 (or uint8 0..255), got dtype {frames.dtype}")
    for start in range(0, t, _CHECK_CHUNK):
        chunk = frames[start:start + _CHECK_CHUNK]
        ok = bool(torch.isfinite(chunk).all()) if isinstance(chunk, torch.Tensor) else bool(np.isfinite(chunk).all())
        if not ok:
            raise ValueError(f"frames contain NaN or infinite values (first bad chunk starts at frame {start}); "
                             "fix the upstream node or clamp the images")
    return t, h, w


def frame_to_rgb24(frame) -> np.ndarray:
    """One `[H, W, 3]` frame as contiguous uint8 RGB, with rounding and clamping."""
    if isinstance(frame, torch.Tensor):
        if frame.dtype != torch.uint8:
            # Scale on the frame's own device, move only the uint8 result.
            frame = frame.detach().float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
        return np.ascontiguousarray(frame.cpu().numpy())
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)


def pad_to_even(img: np.ndarray) -> np.ndarray:
    """yuv420p subsamples chroma 2x2, so H.264 needs even sizes: replicate the
    last row/column instead of cropping so no picture content is lost."""
    h, w = img.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return img
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def fit_audio(waveform, sample_rate, n_frames: int, rate: Fraction) -> tuple[np.ndarray, int]:
    """Audio `[C, N]` (or `[N]`) as float32 `[C', M]` whose length equals the
    video's duration (M = round(n_frames * sample_rate / fps)): longer audio is
    trimmed, shorter is padded with silence.  More than two channels are
    averaged to mono because AUDIO carries no channel layout to map them by."""
    if not isinstance(waveform, (torch.Tensor, np.ndarray)):
        raise ValueError(f"audio must be a torch tensor or numpy array [C,N], got {type(waveform).__name__}")
    if sample_rate is None or isinstance(sample_rate, bool):
        raise ValueError("sample_rate is required with audio (an integer in Hz, e.g. 16000)")
    try:
        sr = int(sample_rate)
    except (TypeError, ValueError):
        raise ValueError(f"sample_rate must be an integer in Hz, got {sample_rate!r}") from None
    if sr != sample_rate or sr <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().float().numpy()
    wav = np.asarray(waveform, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2:
        raise ValueError(f"audio must have shape [C,N] (channels, samples), got {list(wav.shape)}; "
                         "for a ComfyUI AUDIO pass waveform[0]")
    if wav.shape[0] == 0 or wav.shape[1] == 0:
        raise ValueError(f"audio is empty (shape {list(wav.shape)}); pass at least one sample or no audio")
    if not np.isfinite(wav).all():
        raise ValueError("audio contains NaN or infinite samples")
    if wav.shape[0] > 2:
        wav = wav.mean(axis=0, keepdims=True)
    want = round(Fraction(n_frames * sr) / rate)
    if wav.shape[1] >= want:
        wav = wav[:, :want]
    else:
        wav = np.pad(wav, ((0, 0), (0, want - wav.shape[1])))
    return np.ascontiguousarray(wav), sr


def _is_uint8(x) -> bool:
    return x.dtype == torch.uint8 if isinstance(x, torch.Tensor) else x.dtype == np.uint8


def _is_float(x) -> bool:
    return x.is_floating_point() if isinstance(x, torch.Tensor) else np.issubdtype(x.dtype, np.floating)
