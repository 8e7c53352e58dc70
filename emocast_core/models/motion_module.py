"""AnimateDiff v2 "Vanilla" temporal module (the key layout of `mm_sd_v15_v2.ckpt`).

Each spatial location is a sequence over frames: per-frame GroupNorm, Linear
in, two temporal self-attentions with sinusoidal positions added to their
input, a GEGLU feed-forward, Linear out (zero-initialised), residual.
"""
from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn


class PositionalEncoding(nn.Module):
    """Sinusoidal frame positions, stored as the `pe` buffer [1, max_len, dim] of the checkpoint."""

    def __init__(self, dim: int, max_len: int = 32):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div)
        pe[0, :, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"{x.shape[1]} frames exceed the motion module's {self.pe.shape[1]} positions")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalSelfAttention(Attention):
    """Self-attention across frames, with the position encoding added first."""

    def __init__(self, dim: int, heads: int, max_len: int):
        super().__init__(query_dim=dim, heads=heads, dim_head=dim // heads)
        self.pos_encoder = PositionalEncoding(dim, max_len)

    def forward(self, hidden_states: torch.Tensor, frames: int) -> torch.Tensor:
        tokens = hidden_states.shape[1]
        # [(b f), hw, c] -> [(b hw), f, c]: attend along time at each location.
        x = hidden_states.unflatten(0, (-1, frames)).transpose(1, 2).flatten(0, 1)
        x = super().forward(self.pos_encoder(x))
        return x.unflatten(0, (-1, tokens)).transpose(1, 2).flatten(0, 1)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, num_attentions: int, max_len: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalSelfAttention(dim, heads, max_len) for _ in range(num_attentions)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_attentions))
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int = 8, num_attentions: int = 2, max_len: int = 32, groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(channels, heads, num_attentions, max_len)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, F, H, W] -> same shape."""
        b, c, f, h, w = x.shape
        residual = x.transpose(1, 2).flatten(0, 1)  # [(b f), c, h, w]
        tokens = self.norm(residual).flatten(2).transpose(1, 2)  # [(b f), hw, c]
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, f)
        tokens = self.proj_out(tokens)
        out = tokens.transpose(1, 2).reshape(b * f, c, h, w) + residual
        return out.unflatten(0, (b, f)).transpose(1, 2)


class MotionModule(nn.Module):
    """One `motion_modules.<i>` entry; `proj_out` starts at zero as in AnimateDiff."""

    def __init__(self, channels: int, heads: int = 8, num_attentions: int = 2, max_len: int = 32, groups: int = 32):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, heads, num_attentions, max_len, groups)
        nn.init.zeros_(self.temporal_transformer.proj_out.weight)
        nn.init.zeros_(self.temporal_transformer.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal_transformer(x)
