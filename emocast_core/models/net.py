"""The official `Net` container: the five prefixes of `net.pth`."""
from __future__ import annotations

from torch import nn

from ..config import EmoCASTConfig
from .denoising_unet import DenoisingUNet
from .face_locator import FaceLocator
from .projections import AudioProj, ImageProj
from .reference_net import ReferenceNet


class EmoCASTNet(nn.Module):
    def __init__(self, cfg: EmoCASTConfig):
        super().__init__()
        self.config = cfg
        self.reference_unet = ReferenceNet(cfg)
        self.denoising_unet = DenoisingUNet(cfg)
        self.face_locator = FaceLocator(cfg.block_out_channels[0], cfg.face_locator_in_channels, cfg.face_locator_channels)
        self.imageproj = ImageProj(cfg.face_embed_dim, cfg.cross_attention_dim, cfg.face_tokens)
        self.audioproj = AudioProj(
            cfg.audio_window, cfg.audio_layers, cfg.audio_channels, cfg.audio_proj_hidden, cfg.audio_tokens, cfg.audio_token_dim
        )
