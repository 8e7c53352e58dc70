"""Helper networks (wav2vec2) under ComfyUI's memory management.

Wrapped in a ModelPatcher and loaded with `load_models_gpu`, a helper network is
one of ComfyUI's loaded models: ComfyUI frees room for it, and offloads it when
another model needs the memory or the user asks to free it.
"""
import comfy.model_management as mm
import comfy.model_patcher
import torch

_ATTR = "_emocast_patcher"
_WAV2VEC2_BYTES_PER_SECOND = 25 * 2**20  # rough peak activations of wav2vec2-base per second of audio (fp32)
_WAV2VEC2_MAX_SECONDS = 70  # the chunked path never holds more than ~40 s; whole clips go up to 60 s


class _Holder(torch.nn.Module):
    """What the patcher moves: ModelPatcher sets attributes such as `device` on its
    model, which a transformers model keeps as a read-only property."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.held = model


def patcher_for(model: torch.nn.Module) -> comfy.model_patcher.ModelPatcher:
    """The one ModelPatcher of `model` (kept on the module, so it lives exactly as long)."""
    patcher = model.__dict__.get(_ATTR)
    if patcher is None:
        patcher = comfy.model_patcher.ModelPatcher(_Holder(model), load_device=mm.get_torch_device(),
                                                   offload_device=mm.unet_offload_device())
        model.__dict__[_ATTR] = patcher
    return patcher


def load_for_inference(model: torch.nn.Module, working_bytes: int = 0) -> torch.device:
    """Put `model` on ComfyUI's compute device, with `working_bytes` free beside it for activations."""
    patcher = patcher_for(model)
    mm.load_models_gpu([patcher], memory_required=working_bytes, force_full_load=True)
    return patcher.load_device


def load_wav2vec2_for_inference(model: torch.nn.Module, seconds: float) -> torch.device:
    """`load_for_inference` with room for one pass over `seconds` of audio."""
    scale = model.config.conv_dim[0] / 512  # activations follow the CNN width; 512 for base
    working = int(_WAV2VEC2_BYTES_PER_SECOND * scale * min(seconds, _WAV2VEC2_MAX_SECONDS))
    return load_for_inference(model, working)


def free_for(working_bytes: int, device: torch.device) -> None:
    """Ask ComfyUI to unload models until `working_bytes` are free on a GPU (e.g. for an ONNX session
    ComfyUI cannot move itself)."""
    if not mm.is_device_cpu(device):
        mm.free_memory(working_bytes, device)
