"""ApplyEmoCASTLoRA: an EmoCAST LoRA on top of a loaded model, at a strength.

The LoRA becomes weight patches on a clone of the model's ModelPatcher, the way
ComfyUI applies LoRAs to its own models: the shared networks are patched only
while this model is loaded, and restored exactly afterwards.
"""
from __future__ import annotations

import dataclasses
import json

import folder_paths
from comfy_api.latest import io

from ..training.lora import group_lora, load_lora, lora_weight_deltas, stages_of
from . import sockets
from .model_folders import resolve_model_file
from .safe_paths import shown

NO_FILES = "(no LoRA files in models/loras)"


def _patch(model, state, strength: float, name: str, where: str):
    """`where` names the input the LoRA came from, for messages ("lora_name: 'x.safetensors'")."""
    group_lora(state)  # a malformed dict fails here, naming the key
    deltas = lora_weight_deltas(state, 1.0)
    patcher = model.patcher.clone()
    known = set(patcher.model_state_dict())
    unknown = [k for k in deltas if k not in known]
    if unknown:
        raise ValueError(f"{where} adapts {len(unknown)} layers this model lacks (first: {unknown[0]}); it was "
                         "trained for another model configuration: use a LoRA trained on this checkpoint")
    for key, delta in deltas.items():
        if tuple(delta.shape) != tuple(patcher.model.get_parameter(key).shape):
            raise ValueError(f"{where} entry {key} has shape {tuple(delta.shape)}, the model's layer "
                             f"{tuple(patcher.model.get_parameter(key).shape)}: it was trained for another model "
                             "configuration; use a LoRA trained on this checkpoint")
    # A one-tensor patch is ComfyUI's "diff" type: weight += strength * delta at load time.
    patcher.add_patches({k: (v,) for k, v in deltas.items()}, strength_patch=strength)
    applied = [*(model.lora or []), {"name": name, "strength": strength}]
    return dataclasses.replace(model, patcher=patcher, lora=applied)


class ApplyEmoCASTLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = [f for f in folder_paths.get_filename_list("loras") if f.endswith(".safetensors")] or [NO_FILES]
        return io.Schema(
            node_id="ApplyEmoCASTLoRA",
            display_name="Apply EmoCAST LoRA",
            category="EmoCAST/loaders",
            description="Applies a LoRA trained with the EmoCAST training nodes to a loaded EmoCAST model.",
            inputs=[
                sockets.EmoCASTModel.Input("model", tooltip="From Load EmoCAST (or another Apply EmoCAST LoRA)."),
                io.Combo.Input("lora_name", options=files, tooltip=(
                    "An EmoCAST LoRA in models/loras/ (what EmoCAST Save LoRA writes). Ignored when the "
                    "lora input is connected.")),
                io.Float.Input("strength", default=1.0, min=-2.0, max=2.0, step=0.05, tooltip=(
                    "How much of the LoRA to add: 0 gives exactly the base model, 1 the trained result.")),
                sockets.LoraModel.Input("lora", optional=True, tooltip=(
                    "A LoRA straight from an EmoCAST training node, instead of a file.")),
            ],
            outputs=[sockets.EmoCASTModel.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model, lora_name: str, strength: float, lora=None) -> io.NodeOutput:
        if lora is not None:
            state, name, where = lora, "the connected LoRA", "lora: the connected LoRA"
        else:
            if lora_name == NO_FILES:
                raise FileNotFoundError("lora_name: no LoRA file in models/loras/; train one with the EmoCAST "
                                        "training nodes and save it with EmoCAST Save LoRA, or connect the lora input")
            where = f"lora_name: {shown(lora_name)}"
            state, metadata = load_lora(resolve_model_file("loras", lora_name, "lora_name"))
            base = metadata.get("emocast.base_config")
            if base and json.loads(base).get("block_out_channels") != list(model.net.config.block_out_channels):
                raise ValueError(f"{where} was trained on a model with block widths "
                                 f"{json.loads(base).get('block_out_channels')}, this one has "
                                 f"{list(model.net.config.block_out_channels)}: use a LoRA trained on this "
                                 "checkpoint")
            name = f"{lora_name} ({', '.join(s.get('name', s.get('stage', '?')) for s in stages_of(metadata))})"
        return io.NodeOutput(_patch(model, state, strength, name, where))
