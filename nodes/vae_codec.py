"""ComfyUI's VAE object as EmoCAST's latent codec (posterior mean x 0.18215, frames in [0, 1])."""
from __future__ import annotations

import torch

from ..emocast_core.pipeline import SD_LATENT_SCALE


class ComfyVAECodec:
    def __init__(self, vae, scale: float = SD_LATENT_SCALE):
        if getattr(vae, "latent_channels", 4) != 4 or getattr(vae, "downscale_ratio", 8) != 8:
            raise ValueError("vae: EmoCAST needs an SD1.x VAE (4 latent channels, 8x downscale); load sd-vae-ft-mse "
                             "with Load VAE")
        self.vae, self.scale = vae, scale

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        # ComfyUI maps [0, 1] back to [-1, 1] and takes the posterior mean, as the official code does.
        images = ((pixels.float() + 1) / 2).movedim(1, -1)
        return self.vae.encode(images) * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.float() / self.scale).movedim(-1, 1)
