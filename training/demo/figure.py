"""The README's picture of the demo model: one row per emotion prompt, frames of the same speech.

    python -m training.demo.figure demo_model docs/demo_model.png

The portrait and speech are the demo workflow's (assets.py): a face and sentences
the model never saw.  Each row is generated from the same inputs and seed with
that emotion's preset prompt; the columns are every `stride`-th frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from . import speech
from .synthetic_faces import EMOTIONS
from . import assets
from .generate import DemoModel

if __package__ and __package__.count(".") >= 2:  # inside the pack (see training/_core.py)
    from ...emocast_core.text.presets import expand_preset
else:
    from emocast_core.text.presets import expand_preset


def emotion_rows(model: DemoModel, frames: int = 10, stride: int = 3, seconds: float = 1.6) -> np.ndarray:
    """uint8 [8 * S, (frames + 1) * S, 3]: the portrait, then `frames` generated frames per emotion."""
    audio = assets.speech_samples()[: round(seconds * speech.SAMPLE_RATE)]
    portrait = assets.portrait()
    rows = []
    for emotion in EMOTIONS:
        video = model.generate(portrait, audio, speech.SAMPLE_RATE, expand_preset(emotion))
        picked = video[: frames * stride : stride]
        rows.append(np.concatenate([portrait, *picked], axis=1))
    return np.concatenate(rows, axis=0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.demo.figure", description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the demo model folder (demo_model)")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling")
    args = ap.parse_args(argv)
    grid = emotion_rows(DemoModel.load(args.model))
    image = Image.fromarray(grid)
    image = image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
