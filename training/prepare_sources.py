"""The input side of dataset preparation: the videos folder, its descriptions, and decoding at 25 fps.

Folder format (flat; sub-folders and hidden files are ignored):

    <videos_dir>/clip_a.mp4            any of .mp4 .mov .mkv .webm, with an audio track
    <videos_dir>/clip_a.txt            its description: an optional first line `emotion: angry`
                                       (a MEAD name or code: neu hap sad sur fea dis ang con),
                                       then the caption
    <videos_dir>/metadata.jsonl        or one JSON object per line:
                                       {"file": "clip_b.mov", "caption": "...", "emotion": "sad"}

A video described both ways takes its metadata.jsonl line.  A caption that is
only an emotion name becomes that emotion's preset sentence, and an empty
caption with an emotion label becomes the label's preset sentence (the prompts
the sampler's presets use).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

if __package__ and "." in __package__:  # inside the pack (see _core.py)
    from ..emocast_core.text.presets import EMOTION_PRESETS, expand_preset, preset_name
    from ..emocast_core.video.reader import planar_samples
else:
    from emocast_core.text.presets import EMOTION_PRESETS, expand_preset, preset_name
    from emocast_core.video.reader import planar_samples

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm")
METADATA = "metadata.jsonl"
FPS = 25.0
_EMOTION_LINE = re.compile(r"^\s*emotion\s*:(.*)$", re.IGNORECASE)


class SkipVideo(Exception):
    """This file cannot become training data; the message is the report's reason."""


@dataclass(frozen=True)
class Source:
    path: Path
    caption: str | None  # None: no description found
    emotion: str | None  # a MEAD name, or None

    @property
    def stem(self) -> str:
        return self.path.stem


def _description(caption: str, emotion: str | None, where: str) -> tuple[str, str | None]:
    label = None
    if emotion is not None and str(emotion).strip():
        label = preset_name(str(emotion))
        if label is None:
            raise SkipVideo(f"{where}: emotion {emotion!r} is not a MEAD emotion "
                            f"({', '.join(EMOTION_PRESETS)} or a 3-letter code)")
    caption = expand_preset(caption) if caption.strip() else (EMOTION_PRESETS[label] if label else "")
    return caption, label


def _read_metadata(path: Path) -> dict[str, dict]:
    """file name -> its metadata.jsonl entry; a malformed line is the user's error to fix first."""
    entries = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{path} line {n} is not JSON ({e}); write one "
                             '{"file": ..., "caption": ..., "emotion": ...} object per line') from e
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
                or not isinstance(entry.get("caption", ""), str):
            raise ValueError(f'{path} line {n}: needs "file" (a name in the folder) and "caption" strings')
        if entry["file"] in entries:
            raise ValueError(f"{path} line {n}: {entry['file']!r} is described twice")
        entries[entry["file"]] = entry
    return entries


def _read_sidecar(path: Path) -> tuple[str, str | None]:
    lines = path.read_text(encoding="utf-8").strip().splitlines()
    match = _EMOTION_LINE.match(lines[0]) if lines else None
    emotion = match.group(1).strip() if match else None
    return "\n".join(lines[1:] if match else lines).strip(), emotion


def scan_folder(videos_dir: str | Path) -> tuple[list[Source], list[str], list[dict]]:
    """(videos in name order, ignored file names, skipped {file, reason}) of a videos folder."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"videos folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    metadata = _read_metadata(root / METADATA) if (root / METADATA).is_file() else {}
    videos = [p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS]
    if not videos:
        raise ValueError(f"no videos ({' '.join(VIDEO_EXTENSIONS)}) in {root}: put the talking clips there, "
                         f"each with a caption (<name>.txt or {METADATA})")
    names = {p.name for p in videos}
    ignored = [p.name for p in files if p not in videos and p.suffix.lower() != ".txt" and p.name != METADATA]
    skipped = [{"file": f, "reason": f"listed in {METADATA} but not a video in the folder"}
               for f in metadata if f not in names]
    sources = []
    for path in videos:
        sidecar = path.with_suffix(".txt")
        try:
            if path.name in metadata:
                entry = metadata[path.name]
                caption, emotion = _description(entry.get("caption", ""), entry.get("emotion"), METADATA)
            elif sidecar.is_file():
                caption, emotion = _description(*_read_sidecar(sidecar), sidecar.name)
            else:
                caption, emotion = None, None
        except SkipVideo as e:
            skipped.append({"file": path.name, "reason": str(e)})
            continue
        if not caption:
            skipped.append({"file": path.name, "reason": f"no caption: add {sidecar.name} or a {METADATA} line"})
            continue
        sources.append(Source(path, caption, emotion))
    return sources, ignored, skipped


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream as float32 [C, N] and its rate; SkipVideo without one."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise SkipVideo("no video stream")
        if not container.streams.audio:
            raise SkipVideo("no audio track")
        stream = container.streams.audio[0]
        chunks = [planar_samples(frame) for frame in container.decode(stream)]
        rate = int(stream.sample_rate)
        stored = stream.duration * stream.time_base if stream.duration and stream.time_base else None
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise SkipVideo("the audio track is empty")
    width = max(c.shape[0] for c in chunks)  # a mid-stream layout change: keep the widest, pad the rest
    audio = np.concatenate([np.pad(c, ((0, width - c.shape[0]), (0, 0))) for c in chunks], axis=1)
    # AAC decodes whole 1024-sample frames: cut the encoder padding as players do (as read_mp4)
    return (audio[:, :round(stored * rate)] if stored else audio), rate


def frames_at(path: Path, fps: float = FPS):
    """Yield RGB uint8 [H, W, 3] frames resampled to `fps` by timestamp (nearest decoded frame).

    Grid time k/fps is measured from the first frame; the clip ends one source
    frame after the last timestamp.  Unused source frames are never converted.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        # Slice threads only: with frame threading, closing the generator early (the first frame with a
        # face is all _find_face needs) can hang PyAV's close.  Decoding is cheap next to the VAE anyway.
        stream.thread_type = "SLICE"
        rate = float(stream.average_rate or stream.guessed_rate or fps)
        k, prev, prev_t, t0 = 0, None, 0.0, None
        for i, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else i / rate
            t0 = t if t0 is None else t0
            t -= t0
            if prev is not None:
                rgb = None
                while k / fps <= (prev_t + t) / 2:  # a tie goes to the earlier frame
                    rgb = prev.to_ndarray(format="rgb24") if rgb is None else rgb
                    yield rgb
                    k += 1
            prev, prev_t = frame, max(t, prev_t)
        if prev is not None:
            rgb = prev.to_ndarray(format="rgb24")
            while k / fps < prev_t + 1 / rate - 1e-6:
                yield rgb
                k += 1
