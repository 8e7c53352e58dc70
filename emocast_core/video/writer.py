"""Frames (+ optional audio) to an H.264/AAC mp4 with PyAV, written atomically.

The clip is encoded into a hidden `.<name>.partial.mp4` next to the target and
renamed onto it only when the container is complete, so a crash, a bad input
or an interrupt raised from `frame_callback` never leaves a truncated video
under the final name (and no partial file either).
"""
from __future__ import annotations

import json
import os
from fractions import Fraction
from typing import Callable, Mapping, Optional

import av
import numpy as np

from .inputs import check_frames, fit_audio, frame_rate, frame_to_rgb24, pad_to_even

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast",
                "medium", "slow", "slower", "veryslow", "placebo")
# Rates the AAC encoder accepts; other input rates are resampled by PyAV.
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

FrameCallback = Callable[[int, int], None]


def write_mp4(path, frames, fps, *, audio=None, sample_rate: Optional[int] = None,
              quality: int = 19, preset: Optional[str] = None,
              metadata: Optional[Mapping[str, object]] = None,
              frame_callback: Optional[FrameCallback] = None) -> str:
    """Encode `frames` [T,H,W,3] (float 0..1, torch or numpy) at `fps` to `path`.

    - Video: H.264 yuv420p, CRF `quality` (0 = lossless, 51 = worst), x264
      `preset` (None = x264's default, medium).  Odd H or W are padded by one
      replicated edge row/column, so the file is at most 1 px larger.
    - Audio (optional): `audio` [C,N] float at `sample_rate` Hz, trimmed or
      zero-padded to the video's duration, encoded as AAC (PyAV resamples it
      to the nearest rate AAC supports when needed).
    - `metadata`: container tags; str values verbatim, others as JSON — the
      way core SaveVideo stores `prompt`/`workflow`.
    - `frame_callback(done, total)` runs after each frame (done = 1..T); an
      exception it raises (e.g. ComfyUI's interrupt) aborts the encode.

    Returns the final path.  Raises ValueError for bad inputs before writing.
    """
    n_frames, height, width = check_frames(frames)
    rate = frame_rate(fps)
    wav, sr = fit_audio(audio, sample_rate, n_frames, rate) if audio is not None else (None, None)
    crf = _check_quality(quality)
    if preset is not None and preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
    tags = _metadata_tags(metadata)

    final = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(final)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder {folder} does not exist; create it first")
    stem, _ = os.path.splitext(name)
    partial = os.path.join(folder, f".{stem}.partial.mp4")
    try:
        _encode(partial, frames, rate, (width + width % 2, height + height % 2),
                wav, sr, crf, preset, tags, frame_callback)
        os.replace(partial, final)
    except BaseException:
        _remove(partial)
        raise
    return final


def _encode(partial, frames, rate, size, wav, sr, crf, preset, tags, frame_callback):
    # faststart puts the index first so browsers can preview while loading;
    # use_metadata_tags lets mp4 carry arbitrary keys such as `prompt`.
    container = av.open(partial, mode="w", format="mp4",
                        options={"movflags": "use_metadata_tags+faststart"})
    try:
        for key, value in tags.items():
            container.metadata[key] = value
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
        audio = None
        if wav is not None:
            audio = container.add_stream("aac", rate=_aac_rate(sr))
            audio.layout = "mono" if wav.shape[0] == 1 else "stereo"
        total = len(frames)
        sent = 0  # audio samples handed to the encoder so far
        for i in range(total):
            img = pad_to_even(frame_to_rgb24(frames[i]))
            container.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            if audio is not None:
                # Interleave: push the audio that belongs to this frame's time span.
                upto = round(Fraction((i + 1) * sr) / rate)
                _encode_audio(container, audio, wav[:, sent:upto], sent, sr)
                sent = upto
            if frame_callback is not None:
                frame_callback(i + 1, total)
        container.mux(video.encode(None))
        if audio is not None:
            container.mux(audio.encode(None))
    except BaseException:
        try:
            container.close()
        except Exception:  # the original error matters, not a failed trailer
            pass
        raise
    container.close()


def _encode_audio(container, stream, chunk: np.ndarray, pts: int, sr: int) -> None:
    if chunk.shape[1] == 0:
        return
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                       layout="mono" if chunk.shape[0] == 1 else "stereo")
    frame.sample_rate = sr
    frame.time_base = Fraction(1, sr)
    frame.pts = pts
    container.mux(stream.encode(frame))


def _aac_rate(sr: int) -> int:
    """The input rate if AAC takes it, else the next supported rate up (or 96 kHz)."""
    if sr in AAC_RATES:
        return sr
    return next((r for r in AAC_RATES if r > sr), AAC_RATES[-1])


def _check_quality(quality) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 0 <= quality <= 51:
        raise ValueError(f"quality is an H.264 CRF: an integer 0..51 (lower is better, ~19 typical), got {quality!r}")
    return int(quality)


def _metadata_tags(metadata) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict of str keys, got {type(metadata).__name__}")
    tags = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"metadata keys must be non-empty strings, got {key!r}")
        tags[key] = value if isinstance(value, str) else json.dumps(value)
    return tags


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
