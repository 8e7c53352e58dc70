"""Real speech for the synthetic talking-face set: espeak-ng sentences and their mouth envelope.

`synthesize(text, voice, speed, pitch)` runs Debian's espeak-ng (deterministic:
the same arguments give the same samples) and returns mono float32 at 22050 Hz.

Mouth openness per 25 fps frame (`mouth_envelope`):
1. RMS of the samples in the frame's own 40 ms window [k/25, (k+1)/25);
2. smoothed with a centred [1, 2, 1]/4 kernel (≈ 80 ms), as lips lag and lead the sound;
3. normalised per clip by its 95th percentile (robust to one loud plosive) and clipped to 1;
4. a gate: values under 0.08 become 0, so pauses close the mouth;
5. gamma 0.7, which opens quiet voiced frames visibly.

Sentences: `SENTENCES[i]` is held out for evaluation when i % 4 == 3.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

FPS = 25
SAMPLE_RATE = 22050  # espeak-ng's native rate
VOICES = ("en-us", "en-gb", "en+f3", "en+m2", "en-us+m3", "en-gb+f2", "en-us+f4", "en+m5",
          "en-gb-scotland", "en-us+f1", "en-gb-x-rp+m4", "en-029+f5")
SPEEDS = (140, 200)  # words per minute, drawn uniformly
PITCHES = (25, 75)  # espeak-ng -p (0..99)
ENVELOPE = {"window_s": 0.04, "smooth": (0.25, 0.5, 0.25), "percentile": 95, "gate": 0.08, "gamma": 0.7}

# Short, everyday sentences (1-2.5 s at these speeds) with varied vowels and plosives.
SENTENCES = (
    "Please call Stella today.",
    "The ship sailed at dawn.",
    "I left my keys on the table.",
    "We need more paper for the printer.",
    "Open the window, it is warm.",
    "My brother bought a blue bicycle.",
    "The train was late again.",
    "Could you pass me the salt?",
    "She painted the fence yellow.",
    "Dinner will be ready soon.",
    "Bring a coat, it might rain.",
    "The meeting starts at nine.",
    "He plays the piano every night.",
    "Those apples taste very sweet.",
    "Turn left at the old bridge.",
    "I have never seen that film.",
    "The garden needs water.",
    "Our team won the final match.",
    "Put the books back on the shelf.",
    "The baby is sleeping now.",
    "We walked along the beach.",
    "Nobody answered the phone.",
    "The soup is far too hot.",
    "Let me check the calendar.",
    "A dog barked all morning.",
    "They moved to a bigger house.",
    "Keep the receipt, just in case.",
    "The lights went out at once.",
    "Tomorrow we fly to Boston.",
    "Her voice was very quiet.",
    "Take the second door on the right.",
    "This box is heavier than it looks.",
    "The market opens at eight.",
    "I forgot to buy the milk.",
    "Wait for me by the gate.",
    "The river froze last winter.",
    "Fold the letter in half.",
    "He lost his wallet on the bus.",
    "Birds sing before sunrise.",
    "The clock on the wall stopped.",
)


def sentence_split(index: int) -> str:
    return "heldout" if index % 4 == 3 else "train"


def sentence_ids(split: str) -> list[int]:
    return [i for i in range(len(SENTENCES)) if sentence_split(i) == split]


def synthesize(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> np.ndarray:
    """espeak-ng reading `text`: mono float32 [N] in -1..1 at SAMPLE_RATE."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (needed for the synthetic set's speech): "
                                "apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        run = subprocess.run([exe, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "-w", str(out), text],
                             capture_output=True, text=True)
        if run.returncode != 0 or not out.is_file():
            raise ValueError(f"espeak-ng failed for voice {voice!r}: {run.stderr.strip() or run.returncode}")
        with wave.open(str(out)) as w:
            if w.getsampwidth() != 2 or w.getframerate() != SAMPLE_RATE:
                raise ValueError(f"espeak-ng wrote an unexpected wav ({w.getsampwidth() * 8} bit, {w.getframerate()} Hz)")
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
    return (pcm[:, 0].astype(np.float32) / 32768.0).copy()


def frame_rms(wav: np.ndarray, frames: int, sr: int = SAMPLE_RATE, fps: int = FPS) -> np.ndarray:
    """RMS of each 25 fps frame's 40 ms span; samples past the end count as silence."""
    hop = sr / fps
    edges = np.round(np.arange(frames + 1) * hop).astype(np.int64)
    padded = np.zeros(edges[-1], np.float64)
    n = min(len(wav), len(padded))
    padded[:n] = wav[:n]
    sums = np.add.reduceat(padded ** 2, edges[:-1]) if frames else np.zeros(0)
    return np.sqrt(sums / np.diff(edges)).astype(np.float32)


def mouth_envelope(wav: np.ndarray, frames: int, sr: int = SAMPLE_RATE, fps: int = FPS) -> np.ndarray:
    """Mouth openness 0..1 per frame from the speech (mapping: module docstring)."""
    rms = frame_rms(wav, frames, sr, fps).astype(np.float64)
    smooth = np.convolve(np.pad(rms, 1, mode="edge"), ENVELOPE["smooth"], mode="valid")
    scale = np.percentile(smooth, ENVELOPE["percentile"]) if frames else 0.0
    level = np.clip(smooth / scale, 0.0, 1.0) if scale > 1e-6 else np.zeros_like(smooth)
    level[level < ENVELOPE["gate"]] = 0.0
    return (level ** ENVELOPE["gamma"]).astype(np.float32)
