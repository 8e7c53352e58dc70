"""Headless progressive training: `python -m training.train --config stages.yaml [--cpu]`.

Single process, or several through any torch launcher (`accelerate launch`,
`torchrun --nproc_per_node N -m training.train ...`): `accelerate` sets up DDP,
each rank draws its own samples and the LoRA stays identical on every rank.

    model:
      path: models/emocast/net.pth   # official net.pth or a converted .safetensors
      dtype: fp16                    # frozen base weights: fp32 | fp16 | bf16
    data: datasets/my_cache          # a training cache (training/dataset.py)
    output_dir: runs/my_lora
    seed: 0
    mixed_precision: bf16            # no | bf16 | fp16 (CUDA only)
    init_lora: null                  # an EmoCAST LoRA whose stages come before these
    checkpoint_every: 500
    keep_checkpoints: 2
    log_every: 10
    stages:
      - {stage: appearance, steps: 2000, batch_size: 2, lr: 1.0e-4, rank: 16}
      - {stage: lipsync, steps: 4000}
      - {stage: emotion, steps: 4000, gradient_checkpointing: true}

Per stage: `<output_dir>/<n>_<stage>/checkpoints/` (resumed from automatically;
the last step is always saved) and `<n>_<stage>/lora.safetensors` (this and the
earlier stages' LoRA; a stage that has the steps asked is skipped, one asked
for more continues).  The last one is copied to
`<output_dir>/emocast_lora.safetensors`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch
import yaml

from ._core import EmoCASTNet, load_net
from .lora import load_lora, stages_of
from .runner import open_stage, run_stage
from .train_config import TrainConfig

TOP_KEYS = {"model", "data", "output_dir", "seed", "mixed_precision", "init_lora", "checkpoint_every",
            "keep_checkpoints", "log_every", "stages", "find_unused_parameters"}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_config(path: str | Path) -> dict:
    spec = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(spec) - TOP_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
    for key in ("model", "data", "output_dir", "stages"):
        if key not in spec:
            raise ValueError(f"{path}: '{key}' is required")
    if not spec["stages"] or any("stage" not in s or "steps" not in s for s in spec["stages"]):
        raise ValueError(f"{path}: every entry of 'stages' needs 'stage' and 'steps'")
    return spec


def build_model(model: dict, device) -> EmoCASTNet:
    if "path" not in model:
        raise ValueError("model: give 'path' (net.pth or .safetensors)")
    dtype = model.get("dtype", "fp32")
    if dtype not in DTYPES:
        raise ValueError(f"model: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return load_net(model["path"], dtype=DTYPES[dtype], device=device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="stages yaml (see the module docstring)")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU (gloo between processes)")
    args = parser.parse_args(argv)
    spec = load_config(args.config)

    from accelerate import Accelerator, DistributedDataParallelKwargs

    ddp = DistributedDataParallelKwargs(find_unused_parameters=bool(spec.get("find_unused_parameters", False)))
    accelerator = Accelerator(cpu=args.cpu, kwargs_handlers=[ddp])
    main_rank = accelerator.is_main_process
    say = (lambda msg: print(msg, flush=True)) if main_rank else (lambda msg: None)

    net = build_model(spec["model"], accelerator.device)
    out = Path(spec["output_dir"])
    prior, prior_stages = None, []
    if spec.get("init_lora"):
        prior, meta = load_lora(spec["init_lora"])
        prior_stages = stages_of(meta)
    final = None
    log_every = int(spec.get("log_every", 10))
    for n, entry in enumerate(spec["stages"], 1):
        entry = dict(entry)
        steps = int(entry.pop("steps"))
        entry.setdefault("seed", spec.get("seed", 0))
        entry.setdefault("mixed_precision", spec.get("mixed_precision", "no"))
        config = TrainConfig.from_dict(entry)
        stage_dir = out / f"{n}_{config.stage}"
        final = stage_dir / "lora.safetensors"
        checkpoints = stage_dir / "checkpoints"
        if final.is_file():
            state, meta = load_lora(final)
            done = stages_of(meta)[-1]["steps"]
            if done >= steps:
                say(f"[{config.stage}] {final} has {done} steps (>= {steps}): stage done, skipped")
                prior, prior_stages = state, stages_of(meta)
                continue
        trainer = open_stage(net, spec["data"], config, checkpoints, prior_lora=prior, prior_stages=prior_stages,
                             accelerator=accelerator)
        if trainer.step:
            say(f"[{config.stage}] resumed at step {trainer.step} from {checkpoints}")
        say(f"[{config.stage}] {len(trainer.targets)} LoRA modules, rank {trainer.config.rank}, "
            f"{len(trainer.data)} clips, {trainer.world} process(es)")

        def log(info, stage=config.stage):
            if info.step % log_every == 0 or info.run_step == info.run_steps:
                say(f"[{stage}] step {info.step}/{steps} loss {info.loss:.4f} lr {info.lr:.2e}")

        run_stage(trainer, steps, checkpoints, every=int(spec.get("checkpoint_every", 0)),
                  keep=int(spec.get("keep_checkpoints", 2)), on_step=log)
        if main_rank:
            trainer.save_lora(final)
        prior, prior_stages = trainer.lora_state_dict(), trainer.prior_stages + [trainer.stage_record()]
        trainer.close()
        accelerator.wait_for_everyone()
    if main_rank and final is not None:
        tmp = out / ".emocast_lora.safetensors.partial"
        shutil.copyfile(final, tmp)
        os.replace(tmp, out / "emocast_lora.safetensors")
        say(f"done: {out / 'emocast_lora.safetensors'}")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
