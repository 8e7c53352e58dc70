"""Token projections: ArcFace identity -> face tokens, wav2vec windows -> audio tokens."""
from __future__ import annotations

import torch
from torch import nn


class ImageProj(nn.Module):
    """ArcFace embedding [B, 512] -> `tokens` face tokens [B, tokens, dim] (Linear, LayerNorm)."""

    def __init__(self, embed_dim: int = 512, dim: int = 768, tokens: int = 4):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj = nn.Linear(embed_dim, tokens * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, face_embedding: torch.Tensor) -> torch.Tensor:
        x = self.proj(face_embedding).reshape(-1, self.tokens, self.dim)
        return self.norm(x)


class AudioProj(nn.Module):
    """wav2vec windows [B, F, window, layers, channels] -> audio tokens [B, F, tokens, dim].

    Each frame's window is flattened in (window, layer, channel) order, then
    three Linear layers (ReLU between) and a LayerNorm per token.
    """

    def __init__(self, window=5, layers=12, channels=768, hidden=512, tokens=32, dim=768):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.proj1 = nn.Linear(window * layers * channels, hidden)
        self.proj2 = nn.Linear(hidden, hidden)
        self.proj3 = nn.Linear(hidden, tokens * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        batch, frames = windows.shape[:2]
        x = windows.reshape(batch * frames, -1)
        x = torch.relu(self.proj1(x))
        x = torch.relu(self.proj2(x))
        x = self.proj3(x).reshape(batch * frames, self.tokens, self.dim)
        return self.norm(x).reshape(batch, frames, self.tokens, self.dim)
