"""The 3D denoising UNet: SD1.5 topology + motion modules + audio modules + reference reading."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EmoCASTConfig
from .attention_processors import ReferenceReadProcessor
from .reference_bank import ReferenceBank
from .spatial import install_processors
from .timestep import add_time_embedding, embed_timesteps
from .unet_3d_blocks import (
    CrossAttnDownBlock3D,
    CrossAttnUpBlock3D,
    DenoiseContext,
    DownBlock3D,
    UNetMidBlock3DCrossAttn,
    UpBlock3D,
)


class DenoisingUNet(nn.Module):
    def __init__(self, cfg: EmoCASTConfig):
        super().__init__()
        self.config = cfg
        ch = cfg.block_out_channels
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        add_time_embedding(self, cfg)

        self.down_blocks = nn.ModuleList(
            CrossAttnDownBlock3D(cfg, c_in, c_out, add_downsample=True) if i < 3 else DownBlock3D(cfg, c_in, c_out)
            for i, (c_in, c_out) in enumerate(cfg.down_block_channels())
        )
        self.mid_block = UNetMidBlock3DCrossAttn(cfg, ch[-1])
        self.up_blocks = nn.ModuleList(
            UpBlock3D(cfg, c_in, c_out, c_prev, add_upsample=True) if i == 0
            else CrossAttnUpBlock3D(cfg, c_in, c_out, c_prev, add_upsample=i < 3)
            for i, (c_in, c_out, c_prev) in enumerate(cfg.up_block_channels())
        )
        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, ch[0], eps=cfg.norm_eps)
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)

        # Paths name the bank entries and the audio-mask level of each block
        # (level l = the l-th resolution: down_blocks.l, mid = 3, up_blocks.j = 3 - j).
        for i, block in enumerate(self.down_blocks):
            block.path, block.level = f"down_blocks.{i}", i
        self.mid_block.path, self.mid_block.level = "mid_block", 3
        for j, block in enumerate(self.up_blocks):
            block.path, block.level = f"up_blocks.{j}", 3 - j
        install_processors(self, ReferenceReadProcessor, cfg.face_tokens)

    def _readers(self):
        for name, module in self.named_modules():
            if name.endswith("attn1") and isinstance(getattr(module, "processor", None), ReferenceReadProcessor):
                yield name[: -len(".attn1")], module.processor

    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        text_face_tokens: torch.Tensor,
        audio_tokens: torch.Tensor,
        emotion_tokens: torch.Tensor,
        masks,
        face_features: torch.Tensor | None = None,
        bank: ReferenceBank | None = None,
        motion_scale=(1.0, 1.0, 1.0),
        clip_cache: dict | None = None,
    ) -> torch.Tensor:
        """Predict v for latents `sample` [B, 4, F, h, w].

        text_face_tokens [B, 81, 768] or per frame [B, F, 81, 768]; audio_tokens [B, F, 32, 768];
        emotion_tokens [B, 77, 768] or per frame [B, F, 77, 768]; masks: per
        level (0..3), a (full, face, lip) triple of [B*F, hw] maps;
        face_features [B, C0, F, h, w] from the FaceLocator.  `clip_cache`: a dict the caller keeps
        for one clip's steps (the same tokens, masks and bank at each), so work that does not depend
        on the latents runs once; None computes everything.
        """
        batch, _, frames = sample.shape[:3]
        temb = embed_timesteps(self, timestep, batch, sample)
        if emotion_tokens.dim() == 3:
            emotion_tokens = emotion_tokens.unsqueeze(1).expand(-1, frames, -1, -1)
        ctx = DenoiseContext(
            batch=batch,
            frames=frames,
            temb=temb.repeat_interleave(frames, 0),
            text_face=(
                text_face_tokens.flatten(0, 1) if text_face_tokens.dim() == 4
                else text_face_tokens.repeat_interleave(frames, 0)
            ),
            audio=audio_tokens.flatten(0, 1),
            emotion=emotion_tokens.flatten(0, 1),
            masks=masks,
            motion_scale=tuple(motion_scale),
            bank=bank,
            clip_cache=clip_cache,
        )
        readers = []
        if bank is not None:
            readers = ctx.kept("readers", lambda: list(self._readers()))
        for path, processor in readers:
            tokens = ctx.kept(("reference", path), lambda p=path: bank.reference_tokens(p))
            processor.set(bank.ref_rows, tokens, bank.plain_rows)
        try:
            h = self.conv_in(sample.transpose(1, 2).flatten(0, 1))
            if face_features is not None:
                h = h + face_features.transpose(1, 2).flatten(0, 1).to(h.dtype)
            skips = (h,)
            for block in self.down_blocks:
                h, res = block(h, ctx)
                skips += res
            h = self.mid_block(h, ctx)
            for block in self.up_blocks:
                n = len(block.resnets)
                res, skips = skips[-n:], skips[:-n]
                h = block(h, res, ctx, upsample_size=skips[-1].shape[2:] if skips else None)
        finally:
            for _, processor in readers:
                processor.clear()
        h = self.conv_out(F.silu(self.conv_norm_out(h)))
        return h.unflatten(0, (batch, frames)).transpose(1, 2)
