"""Run one training stage to a number of steps: resume or start, train, checkpoint at the end.

The training node, `python -m training.train` and the demo build all go through
these two calls, so a stage resumes, checkpoints and refuses changed settings the
same way everywhere.
"""
from __future__ import annotations

import os
from typing import Callable

from torch import nn

from .dataset import ClipCache
from .state import latest_checkpoint
from .trainer import EmoCASTTrainer, StepInfo
from .train_config import TrainConfig


def open_stage(net: nn.Module, data: ClipCache | str | os.PathLike, config: TrainConfig,
               checkpoints: str | os.PathLike, *, resume: bool = True, prior_lora: dict | None = None,
               prior_stages: list | None = None, device=None, accelerator=None,
               reschedule: bool = False) -> EmoCASTTrainer:
    """A trainer for `config`'s stage: from the newest checkpoint in `checkpoints` when `resume` finds one
    (its settings must be `config`'s), else fresh.  A longer `total_steps` continues a cosine schedule
    warm; `reschedule` also lets the warmup change with it (the demo build's --steps-scale)."""
    latest = latest_checkpoint(checkpoints) if resume else None
    if latest is not None:
        schedule = {"total_steps": config.total_steps}
        if reschedule:
            schedule["warmup_steps"] = config.warmup_steps
        return EmoCASTTrainer.resume(net, data, latest, device=device, accelerator=accelerator, expected=config,
                                     **schedule)
    return EmoCASTTrainer(net, data, config, prior_lora=prior_lora, prior_stages=prior_stages, device=device,
                          accelerator=accelerator)


def run_stage(trainer: EmoCASTTrainer, steps: int, checkpoints: str | os.PathLike, *, every: int = 0,
              keep: int = 0, on_step: Callable[[StepInfo], None] | None = None) -> None:
    """Train until the stage has `steps` optimizer steps, with a checkpoint every `every` steps (0: none
    on the way) and one at the end, so asking for more steps later continues exactly; keeps the newest
    `keep` checkpoints (0: all)."""
    if trainer.step < steps:
        trainer.run(steps - trainer.step, on_step=on_step, checkpoint_dir=checkpoints, checkpoint_every=every,
                    keep_checkpoints=keep)
    if trainer.checkpointed_step != trainer.step:
        trainer.save_checkpoint(checkpoints, keep=keep)
