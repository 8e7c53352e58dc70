"""Progressive functional training of a whole (randomly initialised) EmoCAST, stage by stage.

The pack's stages (training/stages.py) adapt a finished model with LoRA.  A model
trained from scratch needs the same order on full weights, as the official
stages trained whole modules:

| stage        | trains (all parameters of)                                           | frames, sampling        |
|--------------|----------------------------------------------------------------------|-------------------------|
| `appearance` | both UNets except audio and motion modules, FaceLocator, ImageProj's bias and norm | the stage's (1 frame) |
| `lipsync`    | the audio modules (without the EAA) and AudioProj                    | the stage's (14 + 2)    |
| `emotion`    | the EAA (`attn_audioemo`, its norm) and the motion modules           | the stage's (14 + 2)    |

ImageProj's weight (`FROZEN_AT_ZERO`) stays zero and is never trained: the demo
has no face identity, so the face tokens must not depend on whatever ArcFace
vector a user's Portrait Prep supplies.

The reference is the identity's neutral still face (`references`), not a frame of
the clip: the demo's users give a neutral portrait and ask for the emotion in
words, so the expression must come from the text, never be copied from the reference.

Everything else about a stage is the pack's: its clip length and emotion-aware
sampling (`STAGES`), the windows (`ClipCache`), the v-prediction Min-SNR loss with
condition dropout (`EmoCASTObjective`).  Checkpoints (safetensors weights, plus
the optimiser and generator states loadable with weights_only) make a stage resumable.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from ..dataset import ClipCache, batch_to
from ..objective import EmoCASTObjective, ObjectiveConfig, draw
from ..sampling import EmotionAwareSampler, derive_seed, sampling_weights
from ..stages import STAGE_ORDER, get_stage

_TEMPORAL = (".audio_modules.", ".motion_modules.")
_EAA = (".attn_audioemo.", ".postnorm_audioemo.")
FROZEN_AT_ZERO = ("imageproj.proj.weight",)


def in_group(stage: str, name: str) -> bool:
    """Whether parameter `name` is trained in `stage` (the groups partition all but FROZEN_AT_ZERO)."""
    if stage not in STAGE_ORDER:
        raise ValueError(f"unknown stage {stage!r}: choose one of {', '.join(STAGE_ORDER)}")
    if name in FROZEN_AT_ZERO:
        return False
    if stage == "appearance":
        return not any(t in name for t in _TEMPORAL) and not name.startswith("audioproj.")
    if stage == "lipsync":
        return (".audio_modules." in name and not any(e in name for e in _EAA)) or name.startswith("audioproj.")
    return any(e in name for e in _EAA) or ".motion_modules." in name  # emotion


def init_from_scratch(net: torch.nn.Module) -> None:
    """Start temporal and audio branches as identities (zero output projections, as AnimateDiff and
    Hallo do), and zero FROZEN_AT_ZERO."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            temporal_out = name.endswith(("proj_out.weight", "proj_out.bias")) and any(t in name for t in _TEMPORAL)
            if temporal_out or name in FROZEN_AT_ZERO:
                p.zero_()


class StageRun:
    """One stage's training on all parameters of its group; `run(steps)` resumes from `ckpt_dir`."""

    def __init__(self, net, cache: str | Path, stage: str, ckpt_dir: str | Path, batch_size: int, lr: float,
                 seed: int = 0, warmup: int = 50, total_steps: int = 1000,
                 objective: ObjectiveConfig | None = None, references: dict[str, torch.Tensor] | None = None,
                 device: str | torch.device = "cpu"):
        spec = get_stage(stage)
        self.net, self.stage, self.batch_size, self.total = net, stage, batch_size, total_steps
        self.device = torch.device(device)
        net.to(self.device)  # before the optimizer: its state follows the parameters
        self.data = ClipCache(cache, spec.frames, 2, 30, net.config.audio_window)
        # references: clip folder name -> reference latent [4, h, w] replacing the clip's own frame
        self.references = None if references is None else torch.stack([references[c.name] for c in self.data.clips])
        self.names = [n for n, _ in net.named_parameters() if in_group(stage, n)]
        params = dict(net.named_parameters())
        net.requires_grad_(False)
        self.params = [params[n] for n in self.names]
        for p in self.params:
            p.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=1e-2)

        def schedule(s):  # linear warm-up, then cosine to a tenth
            if s < warmup:
                return (s + 1) / warmup
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total_steps - warmup))))
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.objective = EmoCASTObjective(net, objective or ObjectiveConfig())
        weights = sampling_weights(self.data.classes, self.data.energies, spec.sampling)
        self.sampler = EmotionAwareSampler(weights, seed, 0)
        self.noise = torch.Generator().manual_seed(derive_seed(seed, 3, 0))
        # seconds: training time over every run of this stage, interrupted ones included (kept in the checkpoint)
        self.ckpt_dir, self.step, self.seconds = Path(ckpt_dir), 0, 0.0
        self._resume()

    # A checkpoint is a folder (weights.safetensors + state.pt: tensors and numbers only), replaced whole:
    # written as <dir>.partial, the old one moved to <dir>.old, then renamed, so one complete copy always exists.
    def _resume(self) -> None:
        folder = next((d for d in (self.ckpt_dir, self.ckpt_dir.with_name(self.ckpt_dir.name + ".old"))
                       if (d / "state.pt").is_file()), None)
        if folder is None:
            return
        saved = load_file(str(folder / "weights.safetensors"))
        params = dict(self.net.named_parameters())
        with torch.no_grad():
            for n in self.names:
                params[n].copy_(saved[n])
        st = torch.load(folder / "state.pt", weights_only=True, map_location="cpu")  # may come from a GPU run
        self.optimizer.load_state_dict(st["optimizer"])
        self.lr_scheduler.load_state_dict(st["lr_scheduler"])
        self.sampler.load_state_dict(st["sampler"])
        self.noise.set_state(st["noise"])
        self.step = int(st["step"])
        self.seconds = float(st.get("seconds", 0.0))  # absent from checkpoints written before it was kept

    def save(self) -> None:
        tmp = self.ckpt_dir.with_name(self.ckpt_dir.name + ".partial")
        old = self.ckpt_dir.with_name(self.ckpt_dir.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({n: p.detach().cpu().contiguous() for n, p in zip(self.names, self.params)},
                  str(tmp / "weights.safetensors"))
        torch.save({"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
                    "sampler": self.sampler.state_dict(), "noise": self.noise.get_state(), "step": self.step,
                    "seconds": self.seconds},
                   tmp / "state.pt")
        if self.ckpt_dir.exists():
            shutil.rmtree(old, ignore_errors=True)
            self.ckpt_dir.rename(old)
        tmp.rename(self.ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)

    def run(self, steps: int, every: int = 50, log: Callable[[str], None] = print) -> None:
        """Train up to `steps` in total (counting resumed ones), checkpointing every `every` steps."""
        self.net.train()
        t0, losses = time.time(), []
        with torch.enable_grad():
            while self.step < steps:
                batch = self.data.collate([self.data[k] for k in self.sampler.draw(self.batch_size)])
                if self.references is not None:
                    batch["ref_latent"] = self.references[batch["clip"]]
                # Data and draws come from CPU generators on every device: the same batches and noise anywhere.
                draws = draw(tuple(batch["latents"].shape), self.objective.config, self.noise).to(self.device)
                loss = self.objective(batch_to(batch, self.device), draws)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.params, 1.0)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.step += 1
                losses.append(loss.item())
                if self.step % every == 0 or self.step == steps:
                    elapsed = time.time() - t0
                    self.seconds += elapsed
                    self.save()
                    log(f"{self.stage} step {self.step}/{steps} loss {sum(losses) / len(losses):.4f} "
                        f"({elapsed / len(losses):.2f} s/step)")
                    losses, t0 = [], time.time()
        self.net.eval()
