"""Dataset preparation: a folder of talking videos -> the training cache (training/README.md).

    report = prepare_dataset(videos_dir, cache_dir, PrepareModels(vae, wav2vec, text, face))

Per video (folder format: prepare_sources.py):
1. the audio track (none -> skipped) plans the clips: one clip `<stem>`, or, past
   `max_seconds`, equal segments of at most that length as `<stem>_000`, `<stem>_001`, ...;
2. frames resampled to 25 fps by timestamp; the first one where SCRFD finds a face
   gives the `Portrait` (crop, ArcFace, face region, masks), as the sampler's portrait
   prep computes it, and its crop is cut from EVERY frame and resized to the resolution;
3. per clip: VAE latents (posterior mean x 0.18215) in batches, wav2vec2 features of
   the clip's audio (as the audio node computes them, trimmed to the true frames),
   video and audio trimmed to the same T, the caption's CLIP text, and the motion
   energy -> `write_clip` (atomic).
Energy = mean |frame_t - frame_t-1| over the face box united with the lip box of
the model-size crop, in 8-bit levels (0..255) averaged over channels, pixels and
the clip's frame pairs: ~0 for a still face, a few levels for speech; the
sampler's energy_eps (0.1) is a tenth of a level.

Resumable and never fatal per file: complete clips are kept ("existing"), a
file that cannot become data is skipped with its reason, and the report (also
`<cache>/prepare_report.json`) lists everything.  `progress(done, total)` runs
often (per VAE batch) and may raise to interrupt: complete clips stay, no
partial folder is visible.  The settings that shape the tensors are kept in
`<cache>/prepare.json`; extending a cache with other settings is an error.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import av
import numpy as np
import torch

from .dataset import INDEX, META, TENSORS, UNCOND, PreparedClip, write_clip, write_uncond_text
from .prepare_sources import FPS, SkipVideo, Source, frames_at, read_audio, scan_folder

if __package__ and "." in __package__:  # inside the pack (see _core.py)
    from ..emocast_core.audio import encode_audio, frame_count
    from ..emocast_core.face import (DEFAULT_CROP_SCALE, FACE_EXPAND_RATIO, MODEL_SIZE, FaceModels, crop_pixels,
                                     hard_box, prepare_portrait)
    from ..emocast_core.face.resample import resize_hwc
    from ..emocast_core.text import token_ids
else:
    from emocast_core.audio import encode_audio, frame_count
    from emocast_core.face import (DEFAULT_CROP_SCALE, FACE_EXPAND_RATIO, MODEL_SIZE, FaceModels, crop_pixels,
                                   hard_box, prepare_portrait)
    from emocast_core.face.resample import resize_hwc
    from emocast_core.text import token_ids

CONFIG_FILE, REPORT_FILE = "prepare.json", "prepare_report.json"
_SHAPING = ("resolution", "crop_scale", "face_expand_ratio", "max_seconds", "min_frames", "fps", "text_dim")


@dataclass
class PrepareConfig:
    resolution: int = MODEL_SIZE
    crop_scale: float = DEFAULT_CROP_SCALE
    face_expand_ratio: float = FACE_EXPAND_RATIO
    max_seconds: float = 10.0  # segment length; 0 = one clip per video
    min_frames: int = 16  # 14 + 2 motion frames: the temporal stages' window
    vae_batch: int = 8

    def check(self) -> None:
        if self.resolution < 64 or self.resolution % 64:
            raise ValueError(f"resolution must be a multiple of 64 from 64, got {self.resolution}")
        if self.max_seconds < 0 or (0 < self.max_seconds * FPS < self.min_frames):
            raise ValueError(f"max_seconds must be 0 (no split) or at least {self.min_frames / FPS:g} s "
                             f"({self.min_frames} frames), got {self.max_seconds}")
        if self.min_frames < 1 or self.vae_batch < 1:
            raise ValueError(f"min_frames and vae_batch must be >= 1, got {self.min_frames}, {self.vae_batch}")


@dataclass
class PrepareModels:
    vae: object  # emocast_core.pipeline.LatentCodec
    wav2vec: object  # emocast_core.audio.Wav2Vec2Bundle
    text: object  # emocast_core.text.TextEncoder
    face: FaceModels
    separator: Callable | None = None  # optional vocal separation, as for encode_audio
    # optional f(source) -> Portrait, for data whose face geometry is known (the synthetic set);
    # default: SCRFD on the first frame with a face
    portrait: Callable | None = None


@dataclass
class PrepareReport:
    cache_dir: str
    prepared: list = field(default_factory=list)  # clip ids written now
    existing: list = field(default_factory=list)  # clip ids already complete
    skipped: list = field(default_factory=list)  # {"file", "reason"} (+ "clip" for one segment)
    ignored: list = field(default_factory=list)  # files in the folder that are neither videos nor descriptions
    stale: list = field(default_factory=list)  # cached clips no video of this run accounts for
    interrupted: bool = False
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"{len(self.prepared)} prepared, {len(self.existing)} existing, {len(self.skipped)} skipped"
                 + (" (interrupted)" if self.interrupted else "") + f" -> {self.cache_dir}"]
        lines += [f"skipped {s['clip'] if 'clip' in s else s['file']}: {s['reason']}" for s in self.skipped]
        lines += [f"stale clip (video gone): {c}" for c in self.stale]
        return "\n".join(lines)


class _Stop(Exception):
    """Carries what the progress callback raised past the per-file error handling."""


def prepare_dataset(videos_dir, cache_dir, models: PrepareModels, config: PrepareConfig | None = None,
                    progress: Callable[[int, int], None] | None = None) -> PrepareReport:
    config = config or PrepareConfig()
    config.check()
    sources, ignored, skipped = scan_folder(videos_dir)
    root = Path(cache_dir)
    with torch.no_grad():
        uncond = models.text.encode_ids(token_ids(models.text.tokenizer, ""))[0]
        record = {**{k: v for k, v in asdict(config).items() if k != "vae_batch"}, "fps": FPS,
                  "text_dim": int(uncond.shape[-1])}
        _claim_cache(root, record, uncond)
    report = PrepareReport(str(root), skipped=skipped, ignored=ignored, config=record)
    done = 0

    def tick() -> None:
        if progress is not None:
            try:
                progress(done, len(sources))
            except BaseException as e:
                raise _Stop() from e

    claimed: set[str] = set()
    try:
        for source in sources:
            tick()
            try:
                with torch.no_grad():
                    _prepare_video(source, root, models, config, claimed, report, tick)
            except _Stop:
                raise
            except (SkipVideo, ValueError, OSError, EOFError, av.FFmpegError) as e:
                report.skipped.append({"file": source.path.name, "reason": str(e) or type(e).__name__})
            done += 1
        tick()
    except _Stop as stop:
        report.interrupted = True
        raise stop.__cause__ from None
    finally:
        report.stale = sorted(p.name for p in root.iterdir() if (p / META).is_file() and not p.name.startswith(".")
                              and p.name not in claimed) if not report.interrupted else []
        _write_json(root / REPORT_FILE, report.to_dict())
    return report


def _claim_cache(root: Path, record: dict, uncond: torch.Tensor) -> None:
    """Start a cache, or check that an existing one was prepared with the same settings and text encoder."""
    if (root / CONFIG_FILE).is_file():
        old = json.loads((root / CONFIG_FILE).read_text())
        diff = [f"{k} {old.get(k)} (now {record[k]})" for k in _SHAPING if old.get(k) != record[k]]
        if diff:
            raise ValueError(f"the cache {root} was prepared with {', '.join(diff)}: use another cache name, or "
                             f"delete the folder to prepare it again")
    if (root / UNCOND).is_file() and (root / INDEX).is_file():
        from safetensors.torch import load_file

        old = load_file(str(root / UNCOND))["text"]
        if old.shape != uncond.shape or (old - uncond).abs().max() > 1e-2 * (1 + old.abs().max()):
            raise ValueError(f"the cache {root} was prepared with another text encoder: use the same one, another "
                             f"cache name, or delete the folder")
    else:
        write_uncond_text(root, uncond)
    _write_json(root / CONFIG_FILE, record)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _segments(frames: int, config: PrepareConfig) -> list[tuple[int, int]]:
    """Equal [start, stop) frame spans of at most max_seconds (no short tail)."""
    longest = round(config.max_seconds * FPS) if config.max_seconds > 0 else frames
    count = math.ceil(frames / longest)
    size = math.ceil(frames / count)
    return [(s, min(s + size, frames)) for s in range(0, frames, size)]


def _is_complete(folder: Path) -> bool:
    return (folder / META).is_file() and (folder / TENSORS).is_file()


def _prepare_video(source: Source, root: Path, models: PrepareModels, config: PrepareConfig, claimed: set,
                   report: PrepareReport, tick) -> None:
    samples, rate = read_audio(source.path)
    total = frame_count(samples.shape[1], FPS, rate)
    if total < config.min_frames:
        raise SkipVideo(f"too short: {total} frames of audio at 25 fps, need {config.min_frames}")
    spans = _segments(total, config)
    ids = [source.stem] if len(spans) == 1 else [f"{source.stem}_{i:03d}" for i in range(len(spans))]
    taken = [i for i in ids if i in claimed]
    if taken:
        raise SkipVideo(f"clip id {taken[0]} is already used by another video of the folder: rename one")
    claimed.update(ids)
    todo = [i for i, clip_id in enumerate(ids) if not _is_complete(root / clip_id)]
    report.existing += [clip_id for i, clip_id in enumerate(ids) if i not in todo]
    if not todo:
        return
    text = models.text.encode_ids(token_ids(models.text.tokenizer, source.caption))[0]  # a too-long caption fails early
    portrait = models.portrait(source) if models.portrait is not None else _find_face(source, models.face, config)
    region = _energy_region(portrait)
    clips = {i: _ClipBuilder(config.vae_batch, region) for i in todo}
    with contextlib.closing(frames_at(source.path)) as frames:
        for k, rgb in enumerate(frames):
            i = next((i for i in clips if spans[i][0] <= k < spans[i][1]), None)
            if i is None:
                if k >= spans[todo[-1]][1]:
                    break  # past the last clip to prepare: don't decode the rest
                continue
            if clips[i].add(_crop(rgb, portrait), models.vae):
                tick()
    for i in todo:
        clip_id, (start, stop) = ids[i], spans[i]
        try:
            latents, energy = clips.pop(i).finish(models.vae)
            a0, a1 = round(start / FPS * rate), round(stop / FPS * rate)
            audio = encode_audio(models.wav2vec, samples[:, a0:a1], rate, fps=FPS, separator=models.separator,
                                 name=f"{source.path.name} audio")
            t = min(len(latents), audio.num_frames, stop - start)
            if t < config.min_frames:
                raise SkipVideo(f"too short: {t} frames with both picture and sound, need {config.min_frames}")
            levels = portrait.mask_levels_for(portrait.size // latents.shape[-1])  # the VAE's latent grid
            clip = PreparedClip(
                latents=latents[:t], audio=audio.hidden_states[:t], text=text,
                face_embedding=portrait.face_embedding.reshape(-1), face_region=portrait.face_region[0],
                mask_levels=[torch.cat(level) for level in levels], caption=source.caption,
                emotion=source.emotion, energy=energy(t), fps=FPS)
            write_clip(root, clip_id, clip)
            report.prepared.append(clip_id)
        except (SkipVideo, ValueError) as e:
            report.skipped.append({"file": source.path.name, "clip": clip_id, "reason": str(e)})
        tick()


def _find_face(source: Source, face: FaceModels, config: PrepareConfig):
    """The Portrait of the first 25 fps frame in which SCRFD finds a face."""
    with contextlib.closing(frames_at(source.path)) as frames:
        for k, rgb in enumerate(frames):
            image = torch.from_numpy(rgb).float() / 255
            if face.detector.detect(image):
                return prepare_portrait(image, face, face_expand_ratio=config.face_expand_ratio,
                                        crop_scale=config.crop_scale, size=config.resolution,
                                        name=f"{source.path.name} frame {k}")
    raise SkipVideo("no face found in any frame")


def _crop(rgb: np.ndarray, portrait) -> torch.Tensor:
    """A frame cut and resized exactly as the portrait's crop: [S, S, 3] in 0..1."""
    image = torch.from_numpy(rgb).float() / 255
    size = portrait.size
    return resize_hwc(crop_pixels(image, portrait.crop), (size, size)).clamp(0, 1)


def _energy_region(portrait) -> torch.Tensor:
    """[S, S] weights: the hard face box united with the hard lip box, at model size."""
    region = portrait.face_region[0, 0].clone()
    if portrait.lip_box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in portrait.frame_box(portrait.lip_box))
        region = torch.maximum(region, hard_box((x0, y0, x1, y1), portrait.size, portrait.size))
    return region


class _ClipBuilder:
    """Frames of one clip -> VAE latents in batches and per-pair motion energies, holding one batch of pixels."""

    def __init__(self, batch: int, region: torch.Tensor):
        self.batch, self.region = batch, region
        self.pending, self.latents, self.diffs, self.last = [], [], [], None

    def add(self, frame: torch.Tensor, vae) -> bool:
        if self.last is not None:
            diff = (frame - self.last).abs().mean(-1)
            self.diffs.append(float((diff * self.region).sum() / self.region.sum().clamp(min=1e-6)) * 255)
        self.last = frame
        self.pending.append(frame)
        if len(self.pending) < self.batch:
            return False
        self._flush(vae)
        return True

    def _flush(self, vae) -> None:
        if self.pending:
            pixels = torch.stack(self.pending).permute(0, 3, 1, 2) * 2 - 1
            self.latents.append(vae.encode(pixels).float().cpu())
            self.pending = []

    def finish(self, vae):
        """(latents [T, 4, h, w], energy(t) of the first t frames)."""
        self._flush(vae)
        if not self.latents:
            raise SkipVideo("no picture for this part of the audio")
        latents = torch.cat(self.latents)
        diffs = self.diffs
        return latents, lambda t: float(np.mean(diffs[: t - 1])) if t > 1 else 0.0
