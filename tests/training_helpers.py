"""Shared set-up of the training tests: a tiny net and a small synthetic cache."""
from pathlib import Path

import torch

from emocast_core.config import EmoCASTConfig
from emocast_core.deterministic_weights import fill_deterministic
from emocast_core.models import EmoCASTNet
from training.synthetic import make_synthetic_cache

CFG = EmoCASTConfig.tiny()
REPO = Path(__file__).resolve().parents[1]


def tiny_net() -> EmoCASTNet:
    return fill_deterministic(EmoCASTNet(CFG)).eval().requires_grad_(False)


def cache(root: Path, clips: int = 4, frames: int = 12) -> Path:
    if not (root / "cache.json").is_file():
        make_synthetic_cache(root, CFG, clips=clips, frames=frames)
    return root


def lora_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
