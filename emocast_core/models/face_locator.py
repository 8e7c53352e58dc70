"""FaceLocator: the hard face-region mask -> features added to the denoiser's conv_in output."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FaceLocator(nn.Module):
    """ControlNet-style conditioning embedding applied to every frame.

    conv_in -> [c, c] then [c -> next, stride 2] per level -> conv_out, SiLU
    between; conv_out is zero-initialised (official), so a fresh locator adds 0.
    """

    def __init__(self, out_channels: int = 320, in_channels: int = 3, channels=(16, 32, 64, 128)):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        blocks = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(channels[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """mask [B, C, F, H, W] -> features [B, out, F, H/f, W/f], f = 2 ** (len(channels) - 1) (8 officially)."""
        b, _, f = mask.shape[:3]
        x = mask.transpose(1, 2).flatten(0, 1)
        x = F.silu(self.conv_in(x))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.conv_out(x)
        return x.unflatten(0, (b, f)).transpose(1, 2)
