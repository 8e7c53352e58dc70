"""A training stage's settings: what `EmoCASTTrainer` takes and its checkpoints store."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import torch

from .objective import ObjectiveConfig
from .sampling import SamplingConfig
from .stages import get_stage

MIXED_PRECISION = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}
ADAPTERS = ("lora", "full")  # LoRA on the stage's layers, or all weights of its group (a model from nothing)
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "appearance"
    adapter: str = "lora"
    batch_size: int = 1
    grad_accum: int = 1
    lr: float | None = None  # None: the stage's default
    warmup_steps: int = 1  # linear warmup: step s < warmup uses (s+1)/warmup of the LR
    lr_schedule: str = "constant"  # after the warmup; "cosine" falls to lr_floor x LR at total_steps
    lr_floor: float = 0.1
    total_steps: int | None = None  # the cosine's length (a longer run continues it warm)
    weight_decay: float = 1e-2
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    optimizer: str = "adamw"  # or "adamw8bit" (bitsandbytes)
    rank: int | None = None
    alpha: float | None = None
    lora_dropout: float | None = None
    frames: int | None = None
    motion_frames: int = 2
    sample_margin: int = 30
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    sampling: SamplingConfig | None = None
    mixed_precision: str = "no"  # "bf16" / "fp16": CUDA autocast (half-precision weights always autocast)
    gradient_checkpointing: bool = False
    seed: int = 0

    def resolved(self) -> "TrainConfig":
        spec = get_stage(self.stage)
        cfg = replace(
            self, lr=spec.lr if self.lr is None else self.lr, rank=self.rank or spec.rank,
            alpha=spec.alpha if self.alpha is None else self.alpha, frames=self.frames or spec.frames,
            lora_dropout=spec.lora_dropout if self.lora_dropout is None else self.lora_dropout,
            sampling=self.sampling or spec.sampling, adam_betas=tuple(self.adam_betas),
        )
        if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.warmup_steps < 0 or cfg.max_grad_norm <= 0:
            raise ValueError("batch_size and grad_accum must be >= 1, warmup_steps >= 0, max_grad_norm > 0")
        if cfg.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {list(MIXED_PRECISION)}, got {cfg.mixed_precision!r}")
        if cfg.adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {list(ADAPTERS)}, got {cfg.adapter!r}")
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {cfg.lr_schedule!r}")
        if cfg.lr_schedule == "cosine" and not (cfg.total_steps or 0) >= 1:
            raise ValueError("lr_schedule 'cosine' needs total_steps >= 1")
        if cfg.optimizer not in ("adamw", "adamw8bit"):
            raise ValueError(f"optimizer must be 'adamw' or 'adamw8bit', got {cfg.optimizer!r}")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        if isinstance(d.get("objective"), dict):
            d["objective"] = ObjectiveConfig.from_dict(d["objective"])
        if isinstance(d.get("sampling"), dict):
            d["sampling"] = SamplingConfig(**d["sampling"])
        if "adam_betas" in d:
            d["adam_betas"] = tuple(d["adam_betas"])
        return cls(**d)

    def lr_factor(self, step: int) -> float:
        """The LR multiplier at optimizer step `step` (0-based): the warmup, then the schedule."""
        warm = self.warmup_steps
        if step < warm:
            return (step + 1) / warm
        if self.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, self.total_steps - warm))
        return self.lr_floor + (1 - self.lr_floor) * 0.5 * (1 + math.cos(math.pi * progress))


def settings_that_differ(saved: TrainConfig, asked: TrainConfig) -> list[str]:
    """'name: saved X, asked Y' for every setting that changes what the run computes."""
    out = []
    for f in fields(TrainConfig):
        # gradient_checkpointing: memory only, the same numbers either way; total_steps: a longer run
        # continues its cosine schedule warm from where it stands
        if f.name in ("gradient_checkpointing", "total_steps"):
            continue
        a, b = getattr(saved, f.name), getattr(asked, f.name)
        if a != b:
            out.append(f"{f.name}: saved {a!r}, asked {b!r}")
    return out
