"""LoadEmoCAST: the official net.pth (or a converted .safetensors) from models/emocast/."""
from __future__ import annotations

import folder_paths
import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..emocast_core.weights import DTYPES, load_checkpoint
from . import sockets
from .model_folders import resolve_model_file
from .model_handle import EmoCASTModel
from .safe_paths import shown

NO_FILES = "(no files in models/emocast)"


def resolve_dtype(choice: str, device: torch.device) -> torch.dtype:
    if choice != "auto":
        if choice not in DTYPES:
            raise ValueError(f"dtype: {shown(choice)} is not one of auto, {', '.join(DTYPES)}; choose one from the list")
        return DTYPES[choice]
    if device.type == "cuda":
        return torch.bfloat16 if mm.should_use_bf16(device) and not mm.should_use_fp16(device) else torch.float16
    return torch.float32  # half precision is slow or unsupported for several CPU kernels


class LoadEmoCAST(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = folder_paths.get_filename_list("emocast") or [NO_FILES]
        return io.Schema(
            node_id="LoadEmoCAST",
            display_name="Load EmoCAST",
            category="EmoCAST/loaders",
            description="Loads EmoCAST's networks (ReferenceNet, denoising UNet, FaceLocator, projections).",
            inputs=[
                io.Combo.Input("checkpoint", options=files, tooltip=(
                    "The official net.pth from Hugging Face Jmaomao/EmoCAST, or a .safetensors made with "
                    "`python -m emocast_core.convert`, placed in ComfyUI/models/emocast/.")),
                io.Combo.Input("dtype", options=["auto", "fp16", "bf16", "fp32"], default="auto", tooltip=(
                    "Precision of the weights. auto: fp16 on NVIDIA GPUs (the official setting), fp32 on CPU.")),
            ],
            outputs=[sockets.EmoCASTModel.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, checkpoint: str, dtype: str) -> io.NodeOutput:
        if checkpoint == NO_FILES:
            raise FileNotFoundError(
                "checkpoint: no file in models/emocast/. Download net.pth from Hugging Face "
                "Jmaomao/EmoCAST and put it in ComfyUI/models/emocast/ (see README 'Model files').")
        path = resolve_model_file("emocast", checkpoint, "checkpoint")
        torch_dtype = resolve_dtype(dtype, mm.get_torch_device())
        net, vae = load_checkpoint(path, dtype=torch_dtype, device=mm.unet_offload_device())
        return io.NodeOutput(EmoCASTModel.wrap(net, torch_dtype, checkpoint, vae=vae))
