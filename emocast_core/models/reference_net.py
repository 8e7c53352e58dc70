"""ReferenceNet: the SD1.5 2D UNet that writes the reference bank.

Built from diffusers' own SD1.5 blocks; it has no conv_norm_out/conv_out
(its output is never used) and stops after the last up block.
"""
from __future__ import annotations

import torch
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2DCrossAttn, get_down_block, get_up_block
from torch import nn

from ..config import SD15_UNET_CONFIG, EmoCASTConfig
from .attention_processors import ReferenceWriteProcessor
from .spatial import install_processors
from .timestep import add_time_embedding, embed_timesteps


class ReferenceNet(nn.Module):
    def __init__(self, cfg: EmoCASTConfig):
        super().__init__()
        self.config = cfg
        ch = cfg.block_out_channels
        common = dict(
            temb_channels=cfg.time_embed_dim,
            resnet_eps=cfg.norm_eps,
            resnet_act_fn="silu",
            resnet_groups=cfg.norm_num_groups,
            cross_attention_dim=cfg.cross_attention_dim,
            num_attention_heads=cfg.num_heads,
            # Unused by SD1.5's block types; passed as diffusers' own SD1.5 UNet does.
            attention_head_dim=cfg.num_heads,
            num_layers=cfg.layers_per_block,
        )
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        add_time_embedding(self, cfg)
        self.down_blocks = nn.ModuleList(
            get_down_block(kind, in_channels=c_in, out_channels=c_out, add_downsample=i < 3,
                           downsample_padding=cfg.downsample_padding, **common)
            for i, (kind, (c_in, c_out)) in enumerate(zip(SD15_UNET_CONFIG["down_block_types"],
                                                          cfg.down_block_channels()))
        )
        self.mid_block = UNetMidBlock2DCrossAttn(
            in_channels=ch[-1], temb_channels=cfg.time_embed_dim, resnet_eps=cfg.norm_eps,
            resnet_groups=cfg.norm_num_groups, cross_attention_dim=cfg.cross_attention_dim,
            num_attention_heads=cfg.num_heads,
        )
        common_up = {**common, "num_layers": cfg.layers_per_block + 1}
        self.up_blocks = nn.ModuleList(
            get_up_block(kind, in_channels=c_in, out_channels=c_out, prev_output_channel=c_prev,
                         add_upsample=i < 3, resolution_idx=i, **common_up)
            for i, (kind, (c_in, c_out, c_prev)) in enumerate(zip(SD15_UNET_CONFIG["up_block_types"],
                                                                  cfg.up_block_channels()))
        )
        install_processors(self, ReferenceWriteProcessor, cfg.face_tokens)

    def _writers(self):
        for name, module in self.named_modules():
            if name.endswith("attn1") and isinstance(getattr(module, "processor", None), ReferenceWriteProcessor):
                yield name[: -len(".attn1")], module.processor

    def forward(self, latents: torch.Tensor, timestep, text_face_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run on latents [R, 4, h, w] and return the bank: block path -> [R, hw, C]."""
        batch = latents.shape[0]
        temb = embed_timesteps(self, timestep, batch, latents)
        h = self.conv_in(latents)
        skips = (h,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = block(h, temb, encoder_hidden_states=text_face_tokens)
            else:
                h, res = block(h, temb)
            skips += res
        h = self.mid_block(h, temb, encoder_hidden_states=text_face_tokens)
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            size = skips[-1].shape[2:] if skips else None
            if getattr(block, "has_cross_attention", False):
                h = block(h, res, temb, encoder_hidden_states=text_face_tokens, upsample_size=size)
            else:
                h = block(h, res, temb, upsample_size=size)
        bank = {}
        for path, writer in self._writers():
            bank[path], writer.recorded = writer.recorded, None
        return bank
