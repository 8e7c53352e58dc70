"""Synthetic talking-face set: drawn cartoon portraits speaking real espeak-ng sentences in the MEAD eight emotions.

    make_dataset(out_dir, clips=40, seed=0, size=64, split="train")
    python -m training.demo.synthetic_faces OUT --clips 40 --seed 0 --size 64 [--split heldout]

Everything is a function of the seed (espeak-ng is deterministic too).  The
output is an ordinary videos folder for dataset preparation
(training/prepare_sources.py):

    <out>/<split>_00000.mp4   H.264 + AAC (22050 Hz mono), 25 fps, size x size
    <out>/<split>_00000.txt   "emotion: <name>" on the first line, then the caption
    <out>/labels.jsonl        per-clip ground truth (prepare ignores it): one JSON object per line with
                              file, split, emotion, intensity, caption, caption_template, sentence,
                              sentence_id, voice, speed, pitch, identity_seed, identity (face_drawing.Identity
                              fields), seconds, frames, fps, sample_rate, audio_lead_s, envelope [T]
                              (speech.mouth_envelope), mouth_open [T] (drawn opening), eye_open [T],
                              head [T][tx, ty, roll], mouth_box [y0, y1, x0, x1]
                              (face_drawing.mouth_box: the bounding box of the measured mouth region)

Expressions (`EXPRESSIONS`, at intensity 1; a clip's intensity 0.8-1.15 scales
every entry's distance from neutral):

| emotion      | curve | smirk | brow_raise | brow_tilt | brow_in | eye_open | round | stretch | upper_raise | base | gain |
|--------------|-------|-------|------------|-----------|---------|----------|-------|---------|-------------|------|------|
| neutral      |  0    | 0     |  0         |  0        | 0       | 1.0      | 0     |  0      | 0           | 0    | 1.0  |
| happy        |  1.0  | 0     |  0.3       | -0.2      | 0       | 0.75     | 0     |  0.4    | 0           | 0.05 | 0.9  |
| sad          | -0.9  | 0     |  0.2       | -1.2      | 0.4     | 0.75     | 0     |  0      | 0           | 0    | 0.7  |
| surprised    |  0    | 0     |  1.4       |  0        | 0       | 1.5      | 1.0   | -0.2    | 0           | 0.45 | 0.7  |
| fearful      | -0.4  | 0     |  1.0       | -1.0      | 0.8     | 1.4      | 0.3   |  0.5    | 0           | 0.15 | 0.8  |
| disgusted    | -0.5  | 0     | -0.5       |  0.6      | 0.4     | 0.6      | 0     |  0      | 1.0         | 0.05 | 0.8  |
| angry        | -0.5  | 0     | -1.0       |  1.4      | 0.9     | 0.55     | 0     | -0.15   | 0           | 0    | 0.7  |
| contemptuous |  0    | 1.2   |  0.2       |  0        | 0       | 0.85     | 0     |  0      | 0           | 0    | 0.8  |

curve: both mouth corners up (+) or down (-); smirk: the right corner only;
brow_tilt: inner brow ends down (+, anger) or up (-, sadness and fear);
brow_in: inner ends pulled together; round: narrower, rounder opening;
upper_raise: asymmetric upper-lip raise with nose wrinkles.  Per frame, the
drawn mouth opening is base + gain x envelope (the speech's loudness, see
speech.py), brows lift 0.25 x envelope on loud syllables, the eyes blink
(~0.35/s), and the head sways (±0.03 image units), rolls (±2°) and nods
down with the speech.

Splits: identities by seed range (`IDENTITY_SEEDS`: train 0..999999, held out
1000000..1999999), sentences by index (speech.sentence_split: every 4th held
out) and captions by template (synthetic_captions: every 4th held out).
All voices and speeds appear in both splits.
"""
from __future__ import annotations

import argparse
import colorsys
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import speech
from .face_drawing import FrameParams, Identity, mouth_box, render
from .synthetic_captions import caption_table, template_split

# Only the video writer and the preset names: training._core would also load the models (5 s).
if __package__ and __package__.count(".") >= 2:  # inside the pack (see training/_core.py)
    from ...emocast_core.text.presets import PRESET_NAMES
    from ...emocast_core.video import write_mp4
else:
    from emocast_core.text.presets import PRESET_NAMES
    from emocast_core.video import write_mp4

EMOTIONS = PRESET_NAMES  # the MEAD eight, in the presets' order
FPS = speech.FPS
SPLITS = ("train", "heldout")
IDENTITY_SEEDS = {"train": (0, 1_000_000), "heldout": (1_000_000, 2_000_000)}
_KEYS = ("curve", "smirk", "brow_raise", "brow_tilt", "brow_in", "eye_open", "round", "stretch", "upper_raise",
         "base", "gain")
EXPRESSIONS: dict[str, dict[str, float]] = {name: dict(zip(_KEYS, row)) for name, row in {
    "neutral": (0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0),
    "happy": (1.0, 0, 0.3, -0.2, 0, 0.75, 0, 0.4, 0, 0.05, 0.9),
    "sad": (-0.9, 0, 0.2, -1.2, 0.4, 0.75, 0, 0, 0, 0, 0.7),
    "surprised": (0, 0, 1.4, 0, 0, 1.5, 1.0, -0.2, 0, 0.45, 0.7),
    "fearful": (-0.4, 0, 1.0, -1.0, 0.8, 1.4, 0.3, 0.5, 0, 0.15, 0.8),
    "disgusted": (-0.5, 0, -0.5, 0.6, 0.4, 0.6, 0, 0, 1.0, 0.05, 0.8),
    "angry": (-0.5, 0, -1.0, 1.4, 0.9, 0.55, 0, -0.15, 0, 0, 0.7),
    "contemptuous": (0, 1.2, 0.2, 0, 0, 0.85, 0, 0, 0, 0, 0.8),
}.items()}
_NEUTRAL = EXPRESSIONS["neutral"]
_SKIN = ((0.99, 0.87, 0.77), (0.96, 0.78, 0.64), (0.89, 0.68, 0.52), (0.78, 0.57, 0.42),
         (0.66, 0.46, 0.32), (0.54, 0.37, 0.26), (0.93, 0.74, 0.66))
_HAIR = ((0.09, 0.07, 0.06), (0.27, 0.16, 0.09), (0.45, 0.29, 0.15), (0.56, 0.24, 0.12),
         (0.85, 0.71, 0.43), (0.62, 0.62, 0.62), (0.18, 0.14, 0.22))


@dataclass
class Clip:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    audio: np.ndarray  # float32 [N], N = T * sample_rate / FPS
    sample_rate: int
    label: dict


def sample_identity(identity_seed: int) -> Identity:
    """A face from its seed (see IDENTITY_SEEDS for the split ranges)."""
    rng = np.random.default_rng([0x1D, int(identity_seed)])

    def jitter(colour, amount):
        return tuple(float(v) for v in np.clip(np.asarray(colour) + rng.uniform(-amount, amount, 3), 0, 1))
    skin = jitter(_SKIN[rng.integers(len(_SKIN))], 0.03)
    hair = jitter(_HAIR[rng.integers(len(_HAIR))], 0.04)
    while True:  # a background that stays clear of the skin and hair
        bg = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.65), rng.uniform(0.45, 0.95))
        if min(np.linalg.norm(np.subtract(bg, skin)), np.linalg.norm(np.subtract(bg, hair))) > 0.3:
            break
    shirt = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.9))
    lips = tuple(float(v) for v in 0.5 * np.asarray(skin) + 0.5 * np.array([0.78, 0.3, 0.33]))
    iris = colorsys.hsv_to_rgb(rng.choice([0.08, 0.3, 0.55, 0.6]), rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.6))
    face_w, face_h = rng.uniform(0.34, 0.45), rng.uniform(0.45, 0.54)
    return Identity(
        skin=skin, hair=hair, background=tuple(float(v) for v in bg), shirt=tuple(float(v) for v in shirt),
        lips=lips, iris=tuple(float(v) for v in iris), hair_style=int(rng.integers(4)),
        face_w=face_w, face_h=face_h, jaw=rng.uniform(0.0, 1.0),
        eye_dx=face_w * rng.uniform(0.38, 0.48), eye_y=rng.uniform(-0.1, -0.04),
        eye_w=rng.uniform(0.065, 0.085), eye_h=rng.uniform(0.04, 0.05),
        brow_gap=rng.uniform(0.045, 0.065), brow_len=rng.uniform(0.1, 0.13), brow_w=rng.uniform(0.022, 0.03),
        mouth_y=rng.uniform(0.46, 0.53) * face_h, mouth_w=rng.uniform(0.11, 0.15), mouth_open=rng.uniform(0.11, 0.14))


def expression_params(emotion: str, envelope: np.ndarray, intensity: float = 1.0) -> dict[str, np.ndarray]:
    """Per-frame expression arrays: the class's table row at `intensity`, mouth and brows driven by the speech."""
    if emotion not in EXPRESSIONS:
        raise ValueError(f"emotion must be one of {', '.join(EMOTIONS)}, got {emotion!r}")
    row = {k: _NEUTRAL[k] + intensity * (v - _NEUTRAL[k]) for k, v in EXPRESSIONS[emotion].items()}
    env = np.asarray(envelope, np.float32)
    out = {k: np.full(len(env), row[k], np.float32) for k in _KEYS[:-2]}
    out["open"] = (row["base"] + EXPRESSIONS[emotion]["gain"] * env).astype(np.float32)
    out["brow_raise"] = out["brow_raise"] + 0.25 * env
    return out


def still_params(emotion: str, frames: int = 1, intensity: float = 1.0, open_: float = 0.0) -> FrameParams:
    """FrameParams of a motionless face holding an expression with speech-envelope `open_` (0: mouth at rest)."""
    p = expression_params(emotion, np.full(frames, open_, np.float32), intensity)
    zeros = np.zeros(frames, np.float32)
    return FrameParams(**p, tx=zeros, ty=zeros, roll=zeros)


def _motion(rng, frames: int, envelope: np.ndarray):
    t = np.arange(frames) / FPS

    def sway(amp, lo, hi):
        f, ph = rng.uniform(lo, hi, 2), rng.uniform(0, 2 * np.pi, 2)
        return amp * (0.7 * np.sin(2 * np.pi * f[0] * t + ph[0]) + 0.3 * np.sin(2 * np.pi * f[1] * t + ph[1]))
    nod = np.convolve(envelope, np.ones(5) / 5, mode="same")  # a slow nod down with the speech
    return [a.astype(np.float32) for a in (sway(0.03, 0.1, 0.5), sway(0.015, 0.2, 0.7) + 0.02 * nod,
                                           sway(0.035, 0.1, 0.4))]


def _blinks(rng, frames: int) -> np.ndarray:
    lids = np.ones(frames, np.float32)
    k = int(rng.integers(0, 25))
    while k < frames:
        for j, v in enumerate((0.45, 0.05, 0.3, 0.75)):
            if k + j < frames:
                lids[k + j] = v
        k += 6 + int(rng.exponential(FPS / 0.35))
    return lids


def make_clip(seed: int, emotion: str, identity_seed: int, split: str = "train", size: int = 64,
              seconds: tuple[float, float] = (1.5, 3.0)) -> Clip:
    """One talking clip; every choice besides the emotion and identity comes from `seed`."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    rng = np.random.default_rng([0x5F, int(seed)])
    ident = sample_identity(identity_seed)
    sentence_id = int(rng.choice(speech.sentence_ids(split)))
    voice = str(rng.choice(speech.VOICES))
    speed, pitch = int(rng.integers(*speech.SPEEDS, endpoint=True)), int(rng.integers(*speech.PITCHES, endpoint=True))
    wav = speech.synthesize(speech.SENTENCES[sentence_id], voice, speed, pitch)
    lead = float(rng.uniform(0.0, 0.2))
    # The clip holds the whole sentence when the range allows, else is cut at its end.
    secs = float(np.clip(lead + len(wav) / speech.SAMPLE_RATE + rng.uniform(0.05, 0.3), *seconds))
    frames = math.ceil(secs * FPS - 1e-9)
    audio = np.zeros(frames * speech.SAMPLE_RATE // FPS, np.float32)
    start = round(lead * speech.SAMPLE_RATE)
    n = max(0, min(len(wav), len(audio) - start))
    audio[start:start + n] = wav[:n]
    env = speech.mouth_envelope(audio, frames)

    intensity = float(rng.uniform(0.8, 1.15))
    expr = expression_params(emotion, env, intensity)
    expr["eye_open"] = expr["eye_open"] * _blinks(rng, frames)
    tx, ty, roll = _motion(rng, frames, env)
    fp = FrameParams(**expr, tx=tx, ty=ty, roll=roll)
    table = [(t, c) for t, c in caption_table(emotion) if template_split(t) == split]
    template, caption = table[int(rng.integers(len(table)))]

    def r4(a):
        return [round(float(v), 4) for v in a]
    label = {"split": split, "emotion": emotion, "intensity": round(intensity, 4), "caption": caption,
             "caption_template": template, "sentence": speech.SENTENCES[sentence_id], "sentence_id": sentence_id,
             "voice": voice, "speed": speed, "pitch": pitch, "identity_seed": int(identity_seed),
             "identity": ident.to_dict(), "seconds": round(secs, 4), "frames": frames, "fps": FPS,
             "sample_rate": speech.SAMPLE_RATE, "audio_lead_s": round(lead, 4), "envelope": r4(env),
             "mouth_open": r4(fp.open), "eye_open": r4(fp.eye_open),
             "head": [r4(v) for v in zip(tx, ty, roll)], "mouth_box": list(mouth_box(ident, size))}
    return Clip(render(ident, fp, size), audio, speech.SAMPLE_RATE, label)


def plan(clips: int, seed: int = 0, split: str = "train", identities: int | None = None) -> list[tuple[int, str, int]]:
    """(clip seed, emotion, identity seed) per clip: emotions balanced in shuffled blocks of 8,
    identities drawn from a pool of `identities` (default clips // 4) in the split's seed range."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    rng = np.random.default_rng([0xDA, int(seed), SPLITS.index(split)])
    lo, hi = IDENTITY_SEEDS[split]
    pool = rng.choice(hi - lo, size=max(1, identities or clips // 4), replace=False) + lo
    emotions = [e for _ in range(math.ceil(clips / 8)) for e in rng.permutation(EMOTIONS)][:clips]
    clip_seeds = rng.integers(0, 2 ** 31, size=clips)
    return [(int(clip_seeds[i]), str(emotions[i]), int(pool[i % len(pool)])) for i in range(clips)]


def make_dataset(out_dir, clips: int = 40, seed: int = 0, size: int = 64, seconds: tuple[float, float] = (1.5, 3.0),
                 split: str = "train", identities: int | None = None, quality: int = 18) -> list[dict]:
    """Write `clips` talking videos + caption sidecars + labels.jsonl into `out_dir`; returns the labels."""
    if clips < 1:
        raise ValueError(f"clips must be at least 1, got {clips}")
    if not 0 < seconds[0] <= seconds[1]:
        raise ValueError(f"seconds must be a (min, max) range of positive durations, got {seconds}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for i, (clip_seed, emotion, identity_seed) in enumerate(plan(clips, seed, split, identities)):
        clip = make_clip(clip_seed, emotion, identity_seed, split, size, seconds)
        stem = f"{split}_{i:05d}"
        write_mp4(out / f"{stem}.mp4", clip.frames, FPS, audio=clip.audio[None], sample_rate=clip.sample_rate,
                  quality=quality)
        (out / f"{stem}.txt").write_text(f"emotion: {emotion}\n{clip.label['caption']}\n", encoding="utf-8")
        labels.append({"file": f"{stem}.mp4", "clip_seed": clip_seed, **clip.label})
    tmp = out / ".labels.jsonl.partial"
    tmp.write_text("".join(json.dumps(lab) + "\n" for lab in labels), encoding="utf-8")
    tmp.replace(out / "labels.jsonl")
    return labels


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.demo.synthetic_faces", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64, help="frame size in pixels (64 or 128)")
    ap.add_argument("--split", choices=SPLITS, default="train")
    ap.add_argument("--identities", type=int, default=None, help="distinct faces (default clips // 4)")
    ap.add_argument("--min-seconds", type=float, default=1.5)
    ap.add_argument("--max-seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    labels = make_dataset(args.out, args.clips, args.seed, args.size, (args.min_seconds, args.max_seconds),
                          args.split, args.identities)
    frames = sum(lab["frames"] for lab in labels)
    print(f"wrote {len(labels)} clips ({frames} frames, {frames / FPS:.1f} s) to {args.out}")


if __name__ == "__main__":
    main()
