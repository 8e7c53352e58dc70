"""The VAE as EmoCAST uses it: encode with the posterior mean x 0.18215, decode frame chunks to [0, 1]."""
from __future__ import annotations

from typing import Protocol

import torch

SD_LATENT_SCALE = 0.18215

# diffusers AutoencoderKL arguments of sd-vae-ft-mse's architecture (the only VAE shape
# ComfyUI's loader builds for SD1.x): for stand-ins with random weights.
SD_VAE_ARCHITECTURE = dict(
    block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=256,
)


class LatentCodec(Protocol):
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> scaled latents [N, 4, H/8, W/8]."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [N, 4, h, w] -> images [N, 3, 8h, 8w] in [0, 1]."""


class DiffusersVAECodec:
    """A diffusers `AutoencoderKL` (sd-vae-ft-mse) as the official pipeline calls it."""

    def __init__(self, vae, scale: float = SD_LATENT_SCALE, decode_chunk: int = 8):
        self.vae, self.scale, self.decode_chunk = vae, scale, decode_chunk

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        param = next(self.vae.parameters())
        return self.vae.encode(pixels.to(param.device, param.dtype)).latent_dist.mean * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        param = next(self.vae.parameters())
        out = []
        for chunk in latents.split(self.decode_chunk):
            image = self.vae.decode(chunk.to(param.device, param.dtype) / self.scale).sample
            out.append((image / 2 + 0.5).clamp(0, 1))
        return torch.cat(out)
