"""Emotion-aware sampling: which clip each training sample comes from.

The paper credits "emotion-aware sampling" without defining it.  The pack's
definition (version `stages.DEFINITIONS_VERSION`):

1. Every clip has an emotion class: its label when the dataset gives one (a
   MEAD preset name or code), else the class its caption names by keywords
   (`classify_caption`), else `unknown`, a class of its own.
2. Classes get probability mass proportional to count**(1 - class_balance):
   1 = every class equally likely (inverse-frequency weights), 0 = natural.
3. Inside a class, a clip is drawn proportionally to (energy_eps + energy)**energy_alpha,
   `energy` being the clip's expressiveness (motion energy of the face/lip
   region between frames, computed by dataset preparation).  Normalising inside
   the class keeps the class masses of step 2 exact.

With class_balance 1 and energy_alpha 0 the weight of clip i is 1/(K * count[class_i]).
Draws come from one seeded `torch.Generator` (per rank), and each draw also
carries a seed for the window inside the clip, so the whole data stream is a
function of the generator state (saved in checkpoints).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ._core import PRESET_NAMES, preset_name

EMOTIONS: tuple[str, ...] = PRESET_NAMES  # the eight MEAD emotions
UNKNOWN = "unknown"

# Word-start regex fragments per emotion (matched on lower-case text, \b on both sides).
EMOTION_KEYWORDS: dict[str, tuple[str, ...]] = {
    "neutral": (r"neutral\w*", r"calm\w*", r"composed", r"expressionless", r"impassive\w*", r"deadpan"),
    "happy": (r"happ\w*", r"joy\w*", r"smil\w*", r"cheer\w*", r"delight\w*", r"glad\w*", r"laugh\w*"),
    "sad": (r"sad\w*", r"sorrow\w*", r"unhapp\w*", r"cry\w*", r"cries", r"tear\w*", r"grie\w*",
            r"depress\w*", r"melanchol\w*", r"gloom\w*"),
    "surprised": (r"surpris\w*", r"astonish\w*", r"amaz\w*", r"shock\w*", r"startl\w*", r"stun\w*"),
    "fearful": (r"fear\w*", r"scar(?:e|ed|es|y|ier|iest|ing)", r"afraid", r"terrif\w*", r"frighten\w*", r"anxious\w*", r"anxiet\w*",
                r"nervous\w*", r"panic\w*", r"horrified"),
    "disgusted": (r"disgust\w*", r"revuls\w*", r"repuls\w*", r"gross\w*", r"nause\w*"),
    "angry": (r"angr\w*", r"anger\w*", r"furious\w*", r"fury", r"rage\w*", r"enrag\w*", r"irritat\w*",
              r"annoy\w*", r"mad"),
    "contemptuous": (r"contempt\w*", r"scorn\w*", r"disdain\w*", r"sneer\w*", r"smug\w*", r"dismissive\w*"),
}
_PATTERNS = {e: re.compile(r"\b(?:" + "|".join(k) + r")\b") for e, k in EMOTION_KEYWORDS.items()}


def classify_caption(caption: str) -> str | None:
    """The MEAD emotion a caption names, by keyword counts; ties go to the earliest mention; None if none.

    Plain keyword matching: negations ("not happy") and mixed emotions are not understood.
    """
    text = caption.lower()
    best = None
    for emotion, pattern in _PATTERNS.items():
        hits = [m.start() for m in pattern.finditer(text)]
        if hits:
            key = (-len(hits), hits[0])
            if best is None or key < best[0]:
                best = (key, emotion)
    return best[1] if best else None


def emotion_class(label: str | None, caption: str = "") -> str:
    """A clip's class: its label (preset name or MEAD code), else its caption's keywords, else UNKNOWN."""
    if label:
        name = preset_name(label)
        if name is None:
            raise ValueError(f"emotion label {label!r} is not one of {', '.join(EMOTIONS)} (or a MEAD code); "
                             "fix the clip's meta.json or leave the label empty to classify the caption")
        return name
    return classify_caption(caption) or UNKNOWN


@dataclass(frozen=True)
class SamplingConfig:
    class_balance: float = 1.0  # 0 = natural class frequencies, 1 = all classes equally likely
    energy_alpha: float = 0.0  # 0 = energy ignored
    energy_eps: float = 0.1  # keeps still clips drawable

    def __post_init__(self):
        if not 0.0 <= self.class_balance <= 1.0:
            raise ValueError(f"class_balance must be in [0, 1], got {self.class_balance}")
        if self.energy_alpha < 0 or self.energy_eps <= 0:
            raise ValueError(f"energy_alpha must be >= 0 and energy_eps > 0, got {self.energy_alpha}, {self.energy_eps}")


def sampling_weights(classes: list[str], energies: list[float], cfg: SamplingConfig) -> torch.Tensor:
    """Probability of each clip [N] (float64, sums to 1); see the module docstring."""
    if len(classes) != len(energies) or not classes:
        raise ValueError(f"need one class and one energy per clip, got {len(classes)} and {len(energies)}")
    bad = [i for i, e in enumerate(energies) if not (math.isfinite(e) and e >= 0)]
    if bad:
        raise ValueError(f"clip energies must be finite and >= 0; clips {bad[:5]} are not")
    counts = Counter(classes)
    mass = {c: n ** (1.0 - cfg.class_balance) for c, n in counts.items()}
    total = sum(mass.values())
    within = torch.tensor([(cfg.energy_eps + e) ** cfg.energy_alpha for e in energies], dtype=torch.float64)
    index = {c: i for i, c in enumerate(counts)}
    cls = torch.tensor([index[c] for c in classes])
    class_sum = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, cls, within)
    class_mass = torch.tensor([mass[c] / total for c in counts], dtype=torch.float64)
    return class_mass[cls] * within / class_sum[cls]


class WindowKey(NamedTuple):
    """One training sample: a clip and the seed that picks its window and reference frame."""

    clip: int
    seed: int


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from a base seed and stream/rank numbers (stable across runs and platforms)."""
    value = seed & (2**63 - 1)
    for p in parts:
        value = (value * 6364136223846793005 + 1442695040888963407 + p) % (2**63)
    return value


class EmotionAwareSampler(torch.utils.data.Sampler):
    """Infinite weighted draws of `WindowKey`s from a seeded generator (`draw(n)` for batches)."""

    def __init__(self, weights: torch.Tensor, seed: int = 0, rank: int = 0):
        super().__init__()
        self.weights = weights.to(torch.float64)
        self.generator = torch.Generator().manual_seed(derive_seed(seed, 1, rank))

    def draw(self, n: int) -> list[WindowKey]:
        clips = torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        seeds = torch.randint(0, 2**62, (n,), generator=self.generator)
        return [WindowKey(int(c), int(s)) for c, s in zip(clips, seeds)]

    def __iter__(self):
        while True:
            yield self.draw(1)[0]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
