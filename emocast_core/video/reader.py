"""Decode an mp4 back into frames + audio (PyAV): for tests and sanity checks.

Loads the whole clip into memory; meant for short clips, not as a loader node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional

import av
import numpy as np


@dataclass
class DecodedVideo:
    frames: np.ndarray                 # [T, H, W, 3] float32 0..1
    fps: Fraction                      # the stream's average rate
    duration: float                    # container duration in seconds
    audio: Optional[np.ndarray] = None  # [C, N] float32, or None without an audio stream
    sample_rate: Optional[int] = None
    metadata: dict = field(default_factory=dict)  # container tags (str -> str)

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def video_duration(self) -> float:
        return float(self.frame_count / self.fps)

    @property
    def audio_samples(self) -> int:
        return 0 if self.audio is None else int(self.audio.shape[1])

    @property
    def audio_duration(self) -> float:
        return 0.0 if self.audio is None else self.audio_samples / self.sample_rate


def read_mp4(path) -> DecodedVideo:
    """All frames, the first audio stream and the container tags of `path`.

    AAC decoders emit whole 1024-sample frames, so the tail of the last one is
    encoder padding; audio is cut to the stream's stored duration, which is
    what players honour.
    """
    frames, chunks = [], []
    with av.open(str(path), mode="r") as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        wanted = [vstream] + ([astream] if astream is not None else [])
        for packet in container.demux(*wanted):
            for frame in packet.decode():
                if packet.stream is vstream:
                    frames.append(frame.to_ndarray(format="rgb24"))
                else:
                    chunks.append(planar_samples(frame))
        fps = Fraction(vstream.average_rate) if vstream.average_rate else Fraction(0)
        duration = float(container.duration / av.time_base) if container.duration is not None else 0.0
        metadata = dict(container.metadata)
        audio = sample_rate = None
        if astream is not None:
            sample_rate = int(astream.sample_rate)
            audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((astream.channels, 0), np.float32)
            if astream.duration is not None and astream.time_base is not None:
                audio = audio[:, :round(astream.duration * astream.time_base * sample_rate)]
    video = np.stack(frames).astype(np.float32) / 255.0 if frames else np.zeros((0, 0, 0, 3), np.float32)
    return DecodedVideo(video, fps, duration, audio, sample_rate, metadata)


def planar_samples(frame) -> np.ndarray:
    """An audio frame as float32 [C, n] whatever its sample format."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: one row of interleaved samples
        data = data.reshape(-1, len(frame.layout.channels)).T
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / np.iinfo(data.dtype).max
    return data.astype(np.float32, copy=False)
