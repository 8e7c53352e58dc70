"""The EMOCAST_MODEL value: the loaded networks under ComfyUI's memory management."""
from __future__ import annotations

from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..emocast_core.models import EmoCASTNet


@dataclass
class EmoCASTModel:
    net: EmoCASTNet
    dtype: torch.dtype
    patcher: comfy.model_patcher.ModelPatcher
    name: str
    lora: list | None = None  # LoRAs applied on top, for metadata
    vae: torch.nn.Module | None = None  # an autoencoder bundled in the checkpoint (small models)

    @classmethod
    def wrap(cls, net: EmoCASTNet, dtype: torch.dtype, name: str, vae=None) -> "EmoCASTModel":
        # A ModelPatcher lets ComfyUI move the networks to the GPU for sampling and
        # offload them when other models need the memory (or on "free memory").
        patcher = comfy.model_patcher.ModelPatcher(net, load_device=mm.get_torch_device(),
                                                   offload_device=mm.unet_offload_device())
        return cls(net=net, dtype=dtype, patcher=patcher, name=name, vae=vae)

    def load_to_device(self) -> torch.device:
        mm.load_models_gpu([self.patcher], force_full_load=True)
        return self.patcher.load_device
