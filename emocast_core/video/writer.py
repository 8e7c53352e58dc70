"""Frames (+ optional audio) to an H.264/AAC mp4 with PyAV, written atomically.

The video is encoded into a hidden `.<name>.partial.mp4` next to the target and
renamed onto it only when the container is complete, so a crash, a bad input
or an interrupt raised from `frame_callback` never leaves a truncated video
under the final name (and no partial file either).  `write_mp4` takes the whole
clip; `Mp4Stream` takes it piece by piece (long videos in flat memory).
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
    with Mp4Stream(path, fps, width, height, total_frames=n_frames, audio=audio, sample_rate=sample_rate,
                   quality=quality, preset=preset, metadata=metadata, frame_callback=frame_callback) as video:
        video.write(frames, checked=True)
    return video.path


class Mp4Stream:
    """An mp4 written piece by piece, for videos too long to hold in memory.

        with Mp4Stream(path, fps, width, height, total_frames=T, audio=wav, sample_rate=sr) as video:
            for clip in clips:
                video.write(clip)      # [t, H, W, 3], float 0..1 or uint8

    Same encoding as `write_mp4`.  The audio (whole, known up front) is fitted to
    `total_frames` and interleaved as the frames arrive.  Leaving the block normally
    renames the file onto `path`; an exception inside it (an interrupt, an error),
    or a video shorter than `total_frames`, removes the partial file instead, so
    nothing ever appears under `path` unless it is complete.
    """

    def __init__(self, path, fps, width: int, height: int, *, total_frames: Optional[int] = None, audio=None,
                 sample_rate: Optional[int] = None, quality: int = 19, preset: Optional[str] = None,
                 metadata: Optional[Mapping[str, object]] = None, frame_callback: Optional[FrameCallback] = None):
        self.rate = frame_rate(fps)
        if audio is not None and total_frames is None:
            raise ValueError("audio needs total_frames: the track is fitted to the video's duration up front")
        if total_frames is not None and total_frames < 1:
            raise ValueError(f"total_frames must be at least 1, got {total_frames}")
        self.total, self.size = total_frames, (int(width), int(height))
        self.wav, self.sr = (fit_audio(audio, sample_rate, total_frames, self.rate) if audio is not None
                             else (None, None))
        crf = _check_quality(quality)
        if preset is not None and preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        tags = _metadata_tags(metadata)
        self.path = os.path.abspath(os.fspath(path))
        folder, name = os.path.split(self.path)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"output folder {folder} does not exist; create it first")
        self.partial = os.path.join(folder, f".{os.path.splitext(name)[0]}.partial.mp4")
        self.frame_callback, self.written, self._sent = frame_callback, 0, 0
        self._container = None
        try:
            self._open(width + width % 2, height + height % 2, crf, preset, tags)
        except BaseException:
            self.abort()
            raise

    def _open(self, width, height, crf, preset, tags):
        # faststart puts the index first so browsers can preview while loading;
        # use_metadata_tags lets mp4 carry arbitrary keys such as `prompt`.
        self._container = av.open(self.partial, mode="w", format="mp4",
                                  options={"movflags": "use_metadata_tags+faststart"})
        for key, value in tags.items():
            self._container.metadata[key] = value
        self._video = self._container.add_stream("libx264", rate=self.rate)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
        self._audio = None
        if self.wav is not None:
            self._audio = self._container.add_stream("aac", rate=_aac_rate(self.sr))
            self._audio.layout = "mono" if self.wav.shape[0] == 1 else "stereo"

    def write(self, frames, checked: bool = False) -> None:
        """Append `frames` [t, H, W, 3] (the size given at the start)."""
        if self._container is None:
            raise ValueError("this video is closed; start a new Mp4Stream")
        n, height, width = (len(frames), *frames.shape[1:3]) if checked else check_frames(frames)
        if (width, height) != self.size:
            raise ValueError(f"frames are {width}x{height}, this video is {self.size[0]}x{self.size[1]}")
        if self.total is not None and self.written + n > self.total:
            raise ValueError(f"{self.written + n} frames written, more than the {self.total} announced")
        container, total = self._container, self.total or 0
        for i in range(n):
            img = pad_to_even(frame_to_rgb24(frames[i]))
            container.mux(self._video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            self.written += 1
            if self._audio is not None:
                # Interleave: push the audio that belongs to this frame's time span.
                upto = round(Fraction(self.written * self.sr) / self.rate)
                _encode_audio(container, self._audio, self.wav[:, self._sent:upto], self._sent, self.sr)
                self._sent = upto
            if self.frame_callback is not None:
                self.frame_callback(self.written, total)

    def close(self) -> str:
        """Finish the file and put it under its final name; returns that path."""
        if self._container is None:
            raise ValueError("this video is closed already")
        try:
            if self.written == 0 or (self.total is not None and self.written != self.total):
                raise ValueError(f"the video got {self.written} of {self.total or 'at least 1'} frames; "
                                 "nothing was saved")
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._container.mux(self._audio.encode(None))
            self._container.close()
            self._container = None
            os.replace(self.partial, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial file (a no-op after `close`)."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the original error matters, not a failed trailer
                pass
            self._container = None
        _remove(self.partial)

    def __enter__(self) -> "Mp4Stream":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


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
