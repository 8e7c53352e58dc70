"""The demo workflow's inputs: a drawn portrait, its two region masks and an espeak-ng sentence.

    python -m training.demo.assets workflows/input

The portrait is a held-out identity's neutral face (the model never saw it), the
sentences are held-out sentences, so the demo shows the model generalising.
Everything is a function of the constants below.
"""
from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np
from PIL import Image

from . import speech
from .synthetic_faces import IDENTITY_SEEDS, sample_identity, still_params
from .face_drawing import render
from .data import region_masks

PORTRAIT, FACE_MASK, LIP_MASK, SPEECH = ("emocast_demo_portrait.png", "emocast_demo_face_mask.png",
                                         "emocast_demo_lip_mask.png", "emocast_demo_speech.wav")
IDENTITY = IDENTITY_SEEDS["heldout"][0] + 17
# Two held-out sentences (index % 4 == 3), read by one voice with short pauses between them.
SENTENCES = (3, 11)
VOICE, SPEED, PITCH = "en-us", 150, 50
PAUSE_S = 0.35


def portrait(size: int = 64) -> np.ndarray:
    return render(sample_identity(IDENTITY), still_params("neutral"), size)[0]


def speech_samples() -> np.ndarray:
    pause = np.zeros(round(PAUSE_S * speech.SAMPLE_RATE), np.float32)
    parts = [pause]
    for i in SENTENCES:
        parts += [speech.synthesize(speech.SENTENCES[i], VOICE, SPEED, PITCH), pause]
    return np.concatenate(parts)


def write_inputs(folder: str | Path, size: int = 64) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    face, lip = region_masks(size)
    Image.fromarray(portrait(size)).save(folder / PORTRAIT)
    for name, mask in ((FACE_MASK, face), (LIP_MASK, lip)):
        Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).convert("RGB").save(folder / name)
    pcm = (np.clip(speech_samples(), -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(folder / SPEECH), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(speech.SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return [folder / n for n in (PORTRAIT, FACE_MASK, LIP_MASK, SPEECH)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.demo.assets", description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="where to write them (workflows/input)")
    for path in write_inputs(ap.parse_args(argv).folder):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
