"""SD1.5's timestep embedding, shared by both UNets."""
from __future__ import annotations

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


def add_time_embedding(module: nn.Module, cfg) -> None:
    """`time_proj` + `time_embedding` on the UNet itself (the official key names)."""
    module.time_proj = Timesteps(cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift)
    module.time_embedding = TimestepEmbedding(cfg.block_out_channels[0], cfg.time_embed_dim)


def embed_timesteps(module: nn.Module, timestep, batch: int, like: torch.Tensor) -> torch.Tensor:
    """[batch, temb] from a scalar or per-sample timestep, in `like`'s dtype and device."""
    t = torch.as_tensor(timestep, device=like.device)
    t = t.reshape(-1).expand(batch) if t.numel() == 1 else t
    return module.time_embedding(module.time_proj(t).to(like.dtype))
