"""ComfyUI-EmoCAST: emotion-controllable talking portraits (arXiv 2508.20615).

ComfyUI imports this folder as a package; everything lives in `nodes/` (thin V3
adapters) on top of `emocast_core/` (plain PyTorch).
"""
from .nodes import comfy_entrypoint

__all__ = ["comfy_entrypoint"]
