"""Shared set-up of the training tests: a tiny net and a small synthetic cache."""
from pathlib import Path

import torch

from emocast_core.config import EmoCASTConfig
from emocast_core.deterministic_weights import fill_deterministic
from emocast_core.models import EmoCASTNet
from training.demo.synthetic import make_synthetic_cache

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


def group_relative_diff(got: dict, want: dict) -> float:
    """|got - want| / |want| over a whole group of tensors (the group's L2 norm; `got` may be on another
    device).  For runs that agree as a whole but not elementwise (Adam's sign-sized first steps)."""
    diff = sum(float((got[k].cpu() - v).norm() ** 2) for k, v in want.items()) ** 0.5
    return diff / sum(float(v.norm() ** 2) for v in want.values()) ** 0.5
