"""Progressive functional training of a whole (randomly initialised) EmoCAST, stage by stage.

A model trained from nothing runs the pack's stages on full weights (the groups are in
training/stages.py), through the same trainer, runner and checkpoints as a LoRA.  What
is the demo's own:

- the initialisation (`init_from_scratch`): temporal and audio branches start as
  identities, and ImageProj's weight stays zero (the demo has no face identity, so
  the face tokens must not depend on whatever ArcFace vector a user's Portrait Prep
  supplies);
- the reference is the identity's neutral still face (`references`), not a frame of
  the clip: the demo's users give a neutral portrait and ask for the emotion in
  words, so the expression must come from the text, never be copied from the reference;
- a warmup, then a cosine schedule down to a tenth of the learning rate.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from ..dataset import ClipCache
from ..objective import ObjectiveConfig
from ..runner import open_stage
from ..stages import FROZEN_AT_ZERO, get_stage
from ..train_config import TrainConfig
from ..trainer import EmoCASTTrainer, StepInfo

_TEMPORAL = (".audio_modules.", ".motion_modules.")


def init_from_scratch(net: torch.nn.Module) -> None:
    """Start temporal and audio branches as identities (zero output projections, as AnimateDiff and
    Hallo do), and zero FROZEN_AT_ZERO."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            temporal_out = name.endswith(("proj_out.weight", "proj_out.bias")) and any(t in name for t in _TEMPORAL)
            if temporal_out or name in FROZEN_AT_ZERO:
                p.zero_()


def open_full_stage(net, cache: str | Path, stage: str, checkpoints: str | Path, batch_size: int, lr: float,
                    seed: int = 0, warmup: int = 50, total_steps: int = 1000,
                    objective: ObjectiveConfig | None = None, references: dict[str, torch.Tensor] | None = None,
                    device: str | torch.device = "cpu") -> EmoCASTTrainer:
    """A full-weight trainer of `stage`, resumed from `checkpoints` when it holds one; a longer
    `total_steps` (with its warmup) continues the cosine warm from where it stands."""
    if (Path(checkpoints) / "state.pt").is_file():
        raise ValueError(f"{checkpoints} holds a stage checkpoint of an older demo build (state.pt); "
                         "use another --work folder")
    config = TrainConfig(stage=stage, adapter="full", batch_size=batch_size, lr=lr, seed=seed, warmup_steps=warmup,
                         lr_schedule="cosine", total_steps=total_steps, objective=objective or ObjectiveConfig())
    data = ClipCache(cache, get_stage(stage).frames, config.motion_frames, config.sample_margin,
                     net.config.audio_window, references=references)
    return open_stage(net, data, config, checkpoints, device=device, reschedule=True)


def progress_log(stage: str, steps: int, every: int, log: Callable[[str], None] = print):
    """An `on_step` that logs the mean loss and the time per step every `every` steps and at `steps`."""
    losses, clock = [], [time.perf_counter()]

    def on_step(info: StepInfo) -> None:
        losses.append(info.loss)
        if info.step % every == 0 or info.step == steps:
            elapsed = time.perf_counter() - clock[0]
            log(f"{stage} step {info.step}/{steps} loss {sum(losses) / len(losses):.4f} "
                f"({elapsed / len(losses):.2f} s/step)")
            losses.clear()
            clock[0] = time.perf_counter()
    return on_step
