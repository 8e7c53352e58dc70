"""EmoCAST LoRA training nodes: one stage per node, chained; and saving the LoRA.

Chain them like ComfyUI-FluxTrainer's segments: Prepare Training Data ->
Train LoRA (appearance) -> Train LoRA (lipsync, previous=...) -> Train LoRA
(emotion, previous=...) -> Save LoRA.  Each stage keeps resumable checkpoints
in `output/<run_name>/<stage>/checkpoints/`; with `resume` on, running the
node again continues from the newest one (after an interrupt, or with more
steps).  Outputs follow core's trainer: LORA_MODEL, LOSS_MAP, INT steps.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io, ui

from ..training.lora import save_lora
from ..training.runner import open_stage, run_stage
from ..training.stages import STAGE_ORDER
from ..training.train_config import TrainConfig
from . import sockets
from .safe_paths import check_filename_prefix, shown


@dataclass
class TrainingRun:
    """What a training node hands to the next one (EMOCAST_TRAINER): results, not the live trainer."""

    lora: dict  # this and earlier stages' LoRA (our key convention, CPU fp32)
    metadata: dict  # safetensors metadata for the LoRA file
    stages: list = field(default_factory=list)  # one record per stage trained
    steps: int = 0
    run_dir: str = ""


def dataset_path(dataset) -> str:
    """The training cache folder of an EMOCAST_DATASET (EmoCAST Prepare Training Data's dict)."""
    if not isinstance(dataset, dict) or not dataset.get("path"):
        raise ValueError("dataset: connect the dataset output of EmoCAST Prepare Training Data")
    return str(dataset["path"])


def run_folder(run_name: str, stage: str) -> Path:
    if not run_name or os.path.isabs(run_name) or ".." in Path(run_name).parts:
        raise ValueError(f"run_name must be a relative folder name under ComfyUI's output/ (e.g. 'emocast_lora/run'), "
                         f"got {shown(run_name)}")
    check_filename_prefix(run_name, "run_name")
    return Path(folder_paths.get_output_directory()) / run_name / stage


class EmoCASTTrainLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoCASTTrainLoRA",
            display_name="EmoCAST Train LoRA (stage)",
            category="EmoCAST/training",
            description="Trains one progressive stage of an EmoCAST LoRA (see the README's training section for "
                        "what each stage teaches). Chain stages through 'previous'.",
            is_experimental=True,
            not_idempotent=True,
            inputs=[
                sockets.EmoCASTModel.Input("model", tooltip="The base model (Load EmoCAST)."),
                sockets.Dataset.Input("dataset", tooltip="From EmoCAST Prepare Training Data."),
                io.Combo.Input("stage", options=list(STAGE_ORDER), default=STAGE_ORDER[0], tooltip=(
                    "appearance: identity and text-guided emotive attention on single frames; lipsync: the audio "
                    "modules on 14+2-frame clips; emotion: the emotive audio attention and motion modules.")),
                io.Int.Input("steps", default=200, min=1, max=1_000_000, tooltip=(
                    "Optimizer steps this stage should reach. A resumed run only does the missing ones, so "
                    "queueing again after an interrupt finishes the stage.")),
                io.Float.Input("learning_rate", default=1e-4, min=1e-7, max=1e-2, step=1e-6,
                               tooltip="AdamW learning rate (constant after a one-step warm-up)."),
                io.Int.Input("rank", default=16, min=1, max=256, tooltip="LoRA rank (size of the adapters)."),
                io.Float.Input("alpha", default=16.0, min=0.1, max=512.0, step=0.1,
                               tooltip="LoRA alpha: updates are scaled by alpha / rank."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Clips per step."),
                io.Int.Input("grad_accumulation", default=1, min=1, max=256,
                             tooltip="Batches averaged into one optimizer step."),
                io.Int.Input("frames", default=0, min=0, max=30, tooltip=(
                    "Frames per training clip (motion frames come on top). 0: the stage's default "
                    "(1 for appearance, 14 otherwise).")),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the data order, noise and dropout: equal seeds give equal runs."),
                io.Combo.Input("mixed_precision", options=["no", "bf16", "fp16"], default="no",
                               tooltip="Autocast on NVIDIA GPUs (bf16 where supported). Ignored on CPU."),
                io.Boolean.Input("gradient_checkpointing", default=False,
                                 tooltip="Recompute activations in the backward pass: less memory, ~30% slower."),
                io.Int.Input("save_every", default=50, min=0, max=100_000,
                             tooltip="Write a resumable checkpoint every N steps (0: only at the end)."),
                io.String.Input("run_name", default="emocast_lora/run", tooltip=(
                    "Folder under ComfyUI's output/ for this run's checkpoints (per stage).")),
                io.Boolean.Input("resume", default=True, tooltip=(
                    "Continue from the newest checkpoint of this run and stage if there is one; off starts over "
                    "(old checkpoints are kept).")),
                sockets.Trainer.Input("previous", optional=True, tooltip=(
                    "The result of the previous stage: its LoRA stays on (frozen) while this stage trains.")),
            ],
            outputs=[
                sockets.Trainer.Output(display_name="trainer"),
                sockets.LoraModel.Output(display_name="lora"),
                sockets.LossMap.Output(display_name="loss"),
                io.Int.Output(display_name="steps"),
            ],
        )

    @classmethod
    def execute(cls, model, dataset, stage, steps, learning_rate, rank, alpha, batch_size, grad_accumulation,
                frames, seed, mixed_precision, gradient_checkpointing, save_every, run_name, resume,
                previous: TrainingRun | None = None) -> io.NodeOutput:
        folder = run_folder(run_name, stage)
        checkpoints = folder / "checkpoints"
        config = TrainConfig(stage=stage, batch_size=batch_size, grad_accum=grad_accumulation, lr=learning_rate,
                             rank=rank, alpha=alpha, frames=frames or None, seed=seed,
                             mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing)
        device = model.load_to_device()
        bar = comfy.utils.ProgressBar(steps)

        def on_step(info) -> None:
            bar.update_absolute(info.step, steps)
            mm.throw_exception_if_processing_interrupted()

        trainer = None
        try:
            with torch.inference_mode(False):
                trainer = open_stage(model.net, dataset_path(dataset), config, checkpoints, resume=resume,
                                     prior_lora=previous.lora if previous else None,
                                     prior_stages=previous.stages if previous else None, device=device)
                bar.update_absolute(min(trainer.step, steps), steps)
                run_stage(trainer, steps, checkpoints, every=save_every, on_step=on_step)
                result = TrainingRun(lora=trainer.lora_state_dict(), metadata=trainer.lora_metadata(),
                                     stages=trainer.prior_stages + [trainer.stage_record()],
                                     steps=trainer.total_steps, run_dir=str(folder))
                history = list(trainer.loss_history)
        finally:
            if trainer is not None:
                trainer.close()
        summary = f"{stage}: {len(history)} steps"
        if history:
            summary += f", loss {history[0]:.4f} -> {history[-1]:.4f}"
        summary += f"; checkpoints in {checkpoints}"
        return io.NodeOutput(result, result.lora, {"loss": history}, result.steps, ui=ui.PreviewText(summary))


class EmoCASTSaveLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoCASTSaveLoRA",
            display_name="EmoCAST Save LoRA",
            category="EmoCAST/training",
            description="Writes the trained LoRA (all stages so far) into models/loras/, with its training record.",
            is_output_node=True,
            inputs=[
                sockets.Trainer.Input("trainer", tooltip="From the last EmoCAST Train LoRA stage."),
                io.String.Input("filename_prefix", default="emocast/emocast_lora", tooltip=(
                    "Path under models/loras/; '_<steps>_steps_<counter>_.safetensors' is appended.")),
            ],
            outputs=[io.String.Output(display_name="lora_name")],
        )

    @classmethod
    def execute(cls, trainer: TrainingRun, filename_prefix: str) -> io.NodeOutput:
        check_filename_prefix(filename_prefix)
        loras = folder_paths.get_folder_paths("loras")[0]
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            f"{filename_prefix}_{trainer.steps}_steps", loras)
        os.makedirs(folder, exist_ok=True)
        path = Path(folder) / f"{name}_{counter:05}_.safetensors"
        save_lora(path, trainer.lora, trainer.metadata)
        relative = os.path.relpath(path, loras)
        return io.NodeOutput(relative, ui=ui.PreviewText(f"saved {relative} in models/loras/"))
