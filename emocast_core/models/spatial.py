"""The SD1.5 spatial transformer with EmoCAST's processors installed."""
from __future__ import annotations

from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from .attention_processors import ReferenceReadProcessor, ReferenceWriteProcessor, TextFaceAttnProcessor


def install_processors(module: nn.Module, self_attention: type, face_tokens: int) -> None:
    """Give every SD transformer block under `module` its reference (attn1) and TEA (attn2) processors."""
    for name, sub in module.named_modules():
        if name.endswith("transformer_blocks.0") and hasattr(sub, "attn2") and hasattr(sub, "norm1"):
            sub.attn1.set_processor(self_attention())
            sub.attn2.set_processor(
                TextFaceAttnProcessor(sub.attn2.inner_dim, sub.attn2.cross_attention_dim, face_tokens)
            )


def spatial_transformer(channels: int, heads: int, cross_attention_dim: int, groups: int) -> Transformer2DModel:
    """One `attentions.<j>` entry of an SD1.5 block (conv projections, one layer)."""
    return Transformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=channels // heads,
        in_channels=channels,
        num_layers=1,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=groups,
        use_linear_projection=False,
    )


__all__ = ["install_processors", "spatial_transformer", "ReferenceReadProcessor", "ReferenceWriteProcessor"]
