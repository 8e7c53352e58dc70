"""The stage trainer: one stage of progressive training, run N steps at a time.

It trains a LoRA on the stage's layers (`adapter="lora"`, what users run), or all
weights of the stage's group (`adapter="full"`, a model trained from nothing:
the demo model).  training/runner.py runs a stage to a number of steps.

    trainer = EmoCASTTrainer(net, cache_dir, TrainConfig(stage="appearance"))
    losses = trainer.run(100, on_step=callback)      # callback may raise to interrupt
    trainer.save_checkpoint(out / "checkpoints")      # resumable, atomic
    trainer.save_lora(out / "lora.safetensors")       # this + earlier stages' LoRA
    trainer.close()                                   # the net is plain again

Everything is created and run under `torch.inference_mode(False)` (ComfyUI
executes nodes in inference mode), and parameters the caller made in inference
mode are replaced by normal clones first.  All randomness comes from the
trainer's own streams (data sampler, noise/dropout draws, and a private copy
of the global torch/CUDA/python/numpy RNGs swapped in only while it runs), so
a run depends on the seed alone and resumes from a checkpoint bit-exactly on the
CPU (on CUDA, up to the order in which its backward kernels add: tests/test_cuda.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import state as ckpt
from .dataset import ClipCache, batch_to
from .grad_checkpoint import enable_block_checkpointing
from .lora import (ADAPTER, apply_lora, group_lora, inject_lora, load_peft_factors, peft_factors, peft_layers,
                   remove_peft, save_lora, to_state)
from .objective import EmoCASTObjective, draw
from .sampling import EmotionAwareSampler, derive_seed, sampling_weights
from .stages import DEFINITIONS_VERSION, in_full_weight_group, stage_target_modules
from .train_config import MIXED_PRECISION, TrainConfig, settings_that_differ


@dataclass
class StepInfo:
    step: int  # optimizer steps done in this stage
    run_step: int  # steps done in this `run` call
    run_steps: int  # steps asked of this `run` call
    loss: float
    lr: float


def ensure_normal_tensors(module: nn.Module) -> None:
    """Replace parameters/buffers made under inference mode by normal clones (autograd refuses them)."""
    with torch.inference_mode(False):
        for m in module.modules():
            for name, p in list(m._parameters.items()):
                if p is not None and p.is_inference():
                    m._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
            for name, b in list(m._buffers.items()):
                if b is not None and b.is_inference():
                    m._buffers[name] = b.clone()


def _no_dropout(cfg: TrainConfig) -> TrainConfig:
    dropout = replace(cfg.objective.dropout, image=0.0, audio=0.0, text=0.0, motion=0.0)
    return replace(cfg, objective=replace(cfg.objective, dropout=dropout))


class EmoCASTTrainer:
    def __init__(self, net: nn.Module, data: ClipCache | str | os.PathLike, config: TrainConfig | None = None,
                 prior_lora: dict[str, torch.Tensor] | None = None, prior_stages: list[dict] | None = None,
                 device: str | torch.device | None = None, accelerator=None):
        self.net, self.closed = net, False
        self._prior_handle = self._undo_ckpt = None
        try:
            with torch.inference_mode(False):
                self._setup(net, data, (config or TrainConfig()).resolved(), prior_lora, prior_stages, device,
                            accelerator)
        except BaseException:
            self._release()  # never hand a half-patched net back to the caller
            raise

    # ------------------------------------------------------------------ set-up
    def _setup(self, net, data, cfg: TrainConfig, prior_lora, prior_stages, device, accelerator):
        self.config, self.accelerator = cfg, accelerator
        self.rank = accelerator.process_index if accelerator else 0
        self.world = accelerator.num_processes if accelerator else 1
        self.device = torch.device(accelerator.device if accelerator else device or next(net.parameters()).device)
        if cfg.frames + cfg.motion_frames > net.config.motion_max_len:
            raise ValueError(f"frames + motion frames ({cfg.frames + cfg.motion_frames}) exceed the motion modules' "
                             f"{net.config.motion_max_len} positions")
        self.data = data if isinstance(data, ClipCache) else ClipCache(data, cfg.frames, cfg.motion_frames,
                                                                       cfg.sample_margin, net.config.audio_window)
        if (self.data.frames, self.data.motion_frames) != (cfg.frames, cfg.motion_frames):
            raise ValueError(f"the dataset reads {self.data.frames}+{self.data.motion_frames} frames, the stage "
                             f"needs {cfg.frames}+{cfg.motion_frames}: build the ClipCache with the stage's frames")
        self.data.check_model(net.config)
        # Autocast: as asked on CUDA; otherwise only when the frozen weights are half precision
        # (a ComfyUI-loaded fp16/bf16 model), which cannot take the fp32 batch directly.
        self.amp = MIXED_PRECISION[cfg.mixed_precision] if self.device.type == "cuda" else None
        weight_dtype = next(net.parameters()).dtype
        if self.amp is None and weight_dtype != torch.float32:
            self.amp = weight_dtype

        self._was_training = net.training
        ensure_normal_tensors(net)
        net.requires_grad_(False).to(self.device)
        self.lora = cfg.adapter == "lora"
        self.targets = stage_target_modules(net, cfg.stage) if self.lora else [
            name for name, _ in net.named_parameters() if in_full_weight_group(cfg.stage, name)]
        self.prior = group_lora(prior_lora) if prior_lora else {}
        self.prior_stages = list(prior_stages or [])
        if self.prior and not self.lora:
            raise ValueError("a full-weight stage trains the weights themselves: start it without an earlier LoRA")
        overlap = sorted(set(self.prior) & set(self.targets))
        if overlap:
            raise ValueError(f"the earlier LoRA already adapts this stage's modules (first: {overlap[0]}): "
                             f"stage {cfg.stage!r} was trained already?")
        self._prior_handle = apply_lora(net, to_state(self.prior), 1.0, mode="hook") if self.prior else None
        if self.lora:
            with torch.random.fork_rng(devices=[]):  # same init on every rank, global RNG untouched
                torch.manual_seed(derive_seed(cfg.seed, 2))
                inject_lora(net, self.targets, cfg.rank, cfg.alpha, cfg.lora_dropout)
        self._undo_ckpt = enable_block_checkpointing(net) if cfg.gradient_checkpointing else None

        self.objective = EmoCASTObjective(net, cfg.objective)
        self.module = accelerator.prepare_model(self.objective, device_placement=False) if accelerator else self.objective
        self.param_keys, params = [], []
        if self.lora:
            layers = peft_layers(net)
            for path in sorted(layers):
                for suffix, part in ((".lora_down.weight", layers[path].lora_A),
                                     (".lora_up.weight", layers[path].lora_B)):
                    self.param_keys.append(path + suffix)
                    params.append(part[ADAPTER].weight)
        else:
            named = dict(net.named_parameters())
            self.param_keys, params = list(self.targets), [named[n].requires_grad_(True) for n in self.targets]
        self.params = params
        self.optimizer = self._optimizer(params)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: cfg.lr_factor(s))
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp is torch.float16 else None

        weights = sampling_weights(self.data.classes, self.data.energies, cfg.sampling)
        self.sampler = EmotionAwareSampler(weights, cfg.seed, self.rank)
        self.noise_generator = torch.Generator().manual_seed(derive_seed(cfg.seed, 3, self.rank))
        self._rng = ckpt.seeded_global_rng(derive_seed(cfg.seed, 4, self.rank), self.device)
        self._rng_active = False
        self.step = 0
        self.checkpointed_step: int | None = None  # the step of the newest checkpoint written or loaded
        self.loss_history: list[float] = []
        self._seconds, self._clock = 0.0, None
        self.closed = False

    def _optimizer(self, params):
        cfg = self.config
        kw = dict(lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw8bit":
            try:
                import bitsandbytes as bnb
            except ImportError:
                raise ValueError("optimizer 'adamw8bit' needs bitsandbytes (pip install bitsandbytes, CUDA only); "
                                 "or choose 'adamw'") from None
            return bnb.optim.AdamW8bit(params, **kw)
        return torch.optim.AdamW(params, **kw)

    @contextlib.contextmanager
    def _own_rng(self):
        """Swap the trainer's global-RNG streams in (LoRA dropout uses them) and back out."""
        outer = ckpt.capture_global_rng(self.device)
        ckpt.restore_global_rng(self._rng, self.device)
        self._rng_active = True
        try:
            yield
        finally:
            self._rng = ckpt.capture_global_rng(self.device)
            self._rng_active = False
            ckpt.restore_global_rng(outer, self.device)

    # ------------------------------------------------------------------ training
    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"sampler": self.sampler.generator, "noise": self.noise_generator}

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @property
    def wall_seconds(self) -> float:
        """Training time of this stage over every run, interrupted and resumed ones included."""
        return self._seconds + (time.perf_counter() - self._clock if self._clock is not None else 0.0)

    @property
    def total_steps(self) -> int:
        """Steps of every stage in the LoRA so far (ComfyUI's `INT steps` convention)."""
        return sum(int(s.get("steps", 0)) for s in self.prior_stages) + self.step

    def run(self, steps: int, on_step: Callable[[StepInfo], None] | None = None,
            checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 0,
            keep_checkpoints: int = 0) -> list[float]:
        """Train `steps` optimizer steps; returns their losses.

        After each step: a checkpoint when `checkpoint_every` divides the step
        (keeping the newest `keep_checkpoints`, 0 = all), then `on_step(StepInfo)`.
        An exception from `on_step` (an interrupt) stops the run after a complete
        step; the trainer stays usable and the checkpoints on disk are intact.
        """
        self._check_open()
        losses = []
        with torch.inference_mode(False), torch.enable_grad(), self._own_rng():
            self.net.train()
            self._clock = time.perf_counter()
            try:
                for i in range(steps):
                    loss = self._step()
                    self.step += 1
                    self.loss_history.append(loss)
                    losses.append(loss)
                    if checkpoint_dir is not None and checkpoint_every and self.step % checkpoint_every == 0:
                        self.save_checkpoint(checkpoint_dir, keep=keep_checkpoints)
                    if on_step is not None:
                        on_step(StepInfo(self.step, i + 1, steps, loss, self.lr))
            finally:
                self._seconds, self._clock = self.wall_seconds, None
                self.net.train(self._was_training)
        return losses

    def _batch(self, sampler: EmotionAwareSampler | None = None) -> dict:
        keys = (sampler or self.sampler).draw(self.config.batch_size)
        return batch_to(self.data.collate([self.data[k] for k in keys]), self.device)

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _step(self) -> float:
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum):
            batch = self._batch()
            draws = draw(tuple(batch["latents"].shape), cfg.objective, self.noise_generator).to(self.device)
            last = micro == cfg.grad_accum - 1
            sync = contextlib.nullcontext() if last or self.module is self.objective else self.module.no_sync()
            with sync:
                with self._autocast():
                    loss = self.module(batch, draws)
                scaled = loss / cfg.grad_accum
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += loss.detach().float()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        total /= cfg.grad_accum
        if self.world > 1:  # for logging only: the mean over ranks
            total = self.accelerator.reduce(total, reduction="mean")
        return float(total)

    def evaluate(self, batches: int = 4, seed: int = 0) -> float:
        """Mean loss on a fixed set of windows, timesteps and noise (no dropout; trainer streams untouched)."""
        self._check_open()
        cfg = _no_dropout(self.config)
        sampler = EmotionAwareSampler(self.sampler.weights, seed, 1000)
        gen = torch.Generator().manual_seed(derive_seed(seed, 5))
        total = 0.0
        with torch.inference_mode(False), torch.no_grad():
            self.net.eval()
            try:
                for _ in range(batches):
                    batch = self._batch(sampler)
                    draws = draw(tuple(batch["latents"].shape), cfg.objective, gen).to(self.device)
                    with self._autocast():
                        total += float(self.objective(batch, draws))
            finally:
                self.net.train(self._was_training)
        return total / batches

    # ------------------------------------------------------------------ LoRA out
    def stage_record(self) -> dict:
        cfg = self.config
        return {"stage": cfg.stage, "steps": self.step, "rank": cfg.rank, "alpha": cfg.alpha,
                "lora_dropout": cfg.lora_dropout, "lr": cfg.lr, "batch_size": cfg.batch_size, "processes": self.world,
                "grad_accum": cfg.grad_accum, "frames": cfg.frames, "modules": len(self.targets),
                "sampling": asdict(cfg.sampling), "objective": cfg.objective.to_dict(), "seed": cfg.seed}

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """This stage's and the earlier stages' LoRA, in our key convention (CPU fp32)."""
        if not self.lora:
            raise ValueError("a full-weight stage has no LoRA: its training is in the network's weights")
        return to_state({**self.prior, **peft_factors(self.net)})

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What this stage trains, on the CPU: its LoRA factors, or its group's weights."""
        if self.lora:
            return to_state(peft_factors(self.net))
        return {k: p.detach().cpu().clone() for k, p in zip(self.param_keys, self.params)}

    def lora_metadata(self) -> dict[str, str]:
        return {
            "emocast.stages": json.dumps(self.prior_stages + [self.stage_record()]),
            "emocast.steps": str(self.total_steps),
            "emocast.base_config": json.dumps(self.net.config.to_dict()),
            "emocast.definitions_version": DEFINITIONS_VERSION,
        }

    def save_lora(self, path: str | os.PathLike) -> Path:
        return save_lora(path, self.lora_state_dict(), self.lora_metadata())

    # ------------------------------------------------------------------ checkpoints
    def _global_rng(self) -> dict:
        return ckpt.capture_global_rng(self.device) if self._rng_active else self._rng

    def save_checkpoint(self, directory: str | os.PathLike, keep: int = 0) -> Path:
        """Write `checkpoint_<step>.safetensors` atomically (see training.state); returns its path."""
        self._check_open()
        directory = Path(directory)
        rng_tensors, rng_doc = ckpt.rng_to_file(self._global_rng(), self.generators)
        main = ckpt.checkpoint_path(directory, self.step)
        trained = self.trained_state()
        # Every rank records a fingerprint of what it trained, so a DDP run's files show the ranks stayed identical.
        fingerprint = ckpt.fingerprint(trained)
        if self.rank > 0:
            ckpt.atomic_save(rng_tensors, {"rng": rng_doc, "step": self.step, "rank": self.rank,
                                           "trained_sha256": fingerprint},
                             ckpt.checkpoint_path(directory, self.step, self.rank))
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()  # rank files first: a main file means a complete set
        if self.rank == 0:
            optim_tensors, optim_doc = ckpt.optimizer_to_file(self.optimizer, self.param_keys)
            tensors = {**rng_tensors, **optim_tensors, **{ckpt.trained_prefix(self.lora) + k: v
                                                          for k, v in trained.items()}}
            tensors.update({f"prior/{k}": v for k, v in to_state(self.prior).items()})
            doc = {
                "format": ckpt.CHECKPOINT_FORMAT, "version": ckpt.CHECKPOINT_VERSION, "step": self.step,
                "config": self.config.to_dict(), "base_config": self.net.config.to_dict(),
                "prior_stages": self.prior_stages, **optim_doc, "lr_scheduler": self.lr_scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "rng": rng_doc, "loss_history": self.loss_history, "world_size": self.world,
                "definitions_version": DEFINITIONS_VERSION, "trained_sha256": fingerprint,
                "wall_seconds": self.wall_seconds,
            }
            ckpt.atomic_save(tensors, doc, main)
            ckpt.prune(directory, keep)
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
        self.checkpointed_step = self.step
        return main

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint of the same stage, rank and alpha (file, or folder = its latest)."""
        self._check_open()
        path = ckpt.resolve_checkpoint(path)
        tensors, doc = ckpt.read(path)
        saved = TrainConfig.from_dict(doc["config"])
        for name in ("stage", "adapter", "rank", "alpha"):
            if getattr(saved, name) != getattr(self.config, name):
                raise ValueError(f"{path.name} was trained with {name}={getattr(saved, name)!r}, this trainer has "
                                 f"{getattr(self.config, name)!r}: resume with the checkpoint's settings")
        prior = group_lora({k[6:]: v for k, v in tensors.items() if k.startswith("prior/")}) if any(
            k.startswith("prior/") for k in tensors) else {}
        if set(prior) != set(self.prior):
            raise ValueError(f"{path.name} was trained on top of a different earlier-stage LoRA")
        prefix = ckpt.trained_prefix(self.lora)
        trained = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        with torch.inference_mode(False):
            if self.lora:
                load_peft_factors(self.net, trained)
            else:
                if set(trained) != set(self.param_keys):
                    raise ValueError(f"{path.name} holds other weights than this stage's group")
                with torch.no_grad():
                    for key, p in zip(self.param_keys, self.params):
                        p.copy_(trained[key])
            ckpt.optimizer_from_file(self.optimizer, self.param_keys, tensors, doc, path.name)
            self.lr_scheduler.load_state_dict(doc["lr_scheduler"])
            if self.scaler and doc.get("scaler"):
                self.scaler.load_state_dict(doc["scaler"])
            rng_tensors, rng_doc = tensors, doc["rng"]
            if self.rank > 0:
                rank_file = ckpt.checkpoint_path(path.parent, doc["step"], self.rank)
                if rank_file.is_file():
                    rng_tensors, rank_doc = ckpt.read(rank_file)
                    rng_doc = rank_doc["rng"]
                else:  # resumed on more processes than saved: fresh streams for this rank
                    rng_tensors = None
            if rng_tensors is not None:
                self._rng = ckpt.rng_from_file(rng_tensors, rng_doc, self.generators)
            self.step = self.checkpointed_step = int(doc["step"])
            self.loss_history = list(doc["loss_history"])
            self._seconds = float(doc.get("wall_seconds", 0.0))

    @classmethod
    def resume(cls, net: nn.Module, data, checkpoint: str | os.PathLike, device=None, accelerator=None,
               expected: TrainConfig | None = None, **overrides) -> "EmoCASTTrainer":
        """A trainer rebuilt from a checkpoint's own settings (non-structural `overrides` allowed).

        `expected`: the settings the caller asked for; any that differ from the saved ones
        are refused (continuing would silently keep the saved ones).
        """
        path = ckpt.resolve_checkpoint(checkpoint)
        tensors, doc = ckpt.read(path)
        config = replace(TrainConfig.from_dict(doc["config"]), **overrides)
        if expected is not None:
            differ = settings_that_differ(config.resolved(), expected.resolved())
            if differ:
                raise ValueError(f"the checkpoints in {path.parent} were trained with other settings "
                                 f"({'; '.join(differ)}). To continue that run, use its settings; to start "
                                 "again with these, turn resume off or choose a new run name")
        prior = {k[6:]: v for k, v in tensors.items() if k.startswith("prior/")}
        trainer = cls(net, data, config, prior_lora=prior or None, prior_stages=doc["prior_stages"], device=device,
                      accelerator=accelerator)
        trainer.load_checkpoint(path)
        return trainer

    # ------------------------------------------------------------------ end
    def close(self) -> None:
        """Give the net back plain: adapters, hooks and checkpoint wrappers removed."""
        if not self.closed:
            self._release()

    def _release(self) -> None:
        if self._undo_ckpt:
            self._undo_ckpt()
        if self._prior_handle:
            self._prior_handle.remove()
        remove_peft(self.net)
        for p in getattr(self, "params", None) or []:
            p.requires_grad_(False)  # a full-weight stage's group: trained, frozen again like the rest
        if hasattr(self, "_was_training"):
            self.net.train(self._was_training)
        self.optimizer = self.params = self.module = self.objective = None
        self.closed = True

    def _check_open(self):
        if self.closed:
            raise ValueError("this trainer was closed (its LoRA was handed back); start a new one")


__all__ = ["EmoCASTTrainer", "StepInfo", "TrainConfig", "ensure_normal_tensors"]

