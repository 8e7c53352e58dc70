"""Down, mid and up blocks of the denoising UNet.

Frames are folded into the batch ([B*F, C, H, W]) everywhere except inside
motion modules, so SD1.5's resnets, samplers and spatial transformers run
unchanged.  Each cross-attention layer is resnet -> spatial transformer
(reference attention + TEA) -> audio module -> motion module.

The motion modules always see the motion-frame features prepended (M + F
frames, the first M dropped after) and the audio modules always get the
(pose, face, lip) weights: this is the official inference's behaviour, which
it gets from running its UNet in train mode with gradient checkpointing.  We
make it an explicit path that does not depend on train/eval mode.  For the
same reason the motion modules of the two blocks without cross-attention
(DownBlock3D, UpBlock3D) exist, for strict loading, but never run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from torch import nn

from .audio_module import AudioModule
from .motion_module import MotionModule
from .reference_bank import ReferenceBank
from .spatial import spatial_transformer


@dataclass
class DenoiseContext:
    """Everything the blocks need besides the hidden states, per frame ([B*F, ...])."""

    batch: int
    frames: int
    temb: torch.Tensor  # [B*F, temb]
    text_face: torch.Tensor  # [B*F, 77 + 4, 768]
    audio: torch.Tensor  # [B*F, 32, 768]
    emotion: torch.Tensor  # [B*F, 77, 768]
    masks: list  # per level: (full, face, lip), each [B*F, hw]
    motion_scale: tuple
    bank: ReferenceBank | None
    clip_cache: dict | None = None  # what stays the same at every step of one clip (audio_module.py)

    def kept(self, key, make):
        """`make()`, computed once per clip when the caller keeps a clip cache."""
        if self.clip_cache is None:
            return make()
        if key not in self.clip_cache:
            self.clip_cache[key] = make()
        return self.clip_cache[key]


class _Layers(nn.Module):
    """Shared per-layer sequence of the blocks that have spatial transformers."""

    path: str = ""
    level: int = 0

    def _build(self, cfg, channels: int, inner_dims: list[int], layers: int):
        groups, heads = cfg.norm_num_groups, cfg.num_heads
        self.attentions = nn.ModuleList(
            spatial_transformer(channels, heads, cfg.cross_attention_dim, groups) for _ in range(layers)
        )
        self.audio_modules = nn.ModuleList(
            AudioModule(channels, inner, heads, groups, cfg.audio_token_dim, cfg.eaa_head_dim) for inner in inner_dims
        )
        self.motion_modules = _motion_modules(cfg, channels, layers)

    def _layer(self, j: int, h: torch.Tensor, ctx: DenoiseContext) -> torch.Tensor:
        h = self.attentions[j](h, encoder_hidden_states=ctx.text_face, return_dict=False)[0]
        h = self.audio_modules[j](h, ctx.audio, ctx.emotion, ctx.masks[self.level], ctx.motion_scale, ctx.clip_cache)
        motion = None
        if ctx.bank is not None:
            path = f"{self.path}.attentions.{j}.transformer_blocks.0"
            motion = ctx.kept(("motion", path), lambda: ctx.bank.motion_tokens(path))
        return _run_motion(self.motion_modules[j], h, motion, ctx.batch, ctx.frames)


def _motion_modules(cfg, channels: int, count: int) -> nn.ModuleList:
    return nn.ModuleList(
        MotionModule(channels, cfg.num_heads, cfg.motion_blocks, cfg.motion_max_len, cfg.norm_num_groups)
        for _ in range(count)
    )


def _run_motion(module: MotionModule, h: torch.Tensor, motion: torch.Tensor | None, batch: int, frames: int):
    """Temporal attention over [motion frames, clip frames]; only the clip frames are kept."""
    _, c, height, width = h.shape
    video = h.unflatten(0, (batch, frames)).transpose(1, 2)  # [B, C, F, H, W]
    m = 0
    if motion is not None:
        m = motion.shape[1]
        # [B, M, hw, C] -> [B, C, M, H, W]
        motion = motion.permute(0, 3, 1, 2).reshape(batch, c, m, height, width).to(video.dtype)
        video = torch.cat([motion, video], dim=2)
    video = module(video)[:, :, m:]
    return video.transpose(1, 2).flatten(0, 1)


def _resnet(cfg, c_in: int, c_out: int) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels=c_in, out_channels=c_out, temb_channels=cfg.time_embed_dim, eps=cfg.norm_eps, groups=cfg.norm_num_groups
    )


class CrossAttnDownBlock3D(_Layers):
    def __init__(self, cfg, c_in: int, c_out: int, add_downsample: bool):
        super().__init__()
        layers = cfg.layers_per_block
        self.resnets = nn.ModuleList(_resnet(cfg, c_in if i == 0 else c_out, c_out) for i in range(layers))
        # Audio-module width follows each layer's input width (Hallo's choice).
        self._build(cfg, c_out, [cfg.num_heads * ((c_in if i == 0 else c_out) // cfg.num_heads) for i in range(layers)], layers)
        self.downsamplers = (
            nn.ModuleList([Downsample2D(c_out, use_conv=True, out_channels=c_out, padding=cfg.downsample_padding, name="op")])
            if add_downsample
            else None
        )

    def forward(self, h, ctx: DenoiseContext):
        skips = ()
        for j, resnet in enumerate(self.resnets):
            h = self._layer(j, resnet(h, ctx.temb), ctx)
            skips += (h,)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips += (h,)
        return h, skips


class DownBlock3D(nn.Module):
    def __init__(self, cfg, c_in: int, c_out: int):
        super().__init__()
        self.resnets = nn.ModuleList(_resnet(cfg, c_in if i == 0 else c_out, c_out) for i in range(cfg.layers_per_block))
        self.motion_modules = _motion_modules(cfg, c_out, cfg.layers_per_block)  # stored, never run

    def forward(self, h, ctx: DenoiseContext):
        skips = ()
        for resnet in self.resnets:
            h = resnet(h, ctx.temb)
            skips += (h,)
        return h, skips


class UNetMidBlock3DCrossAttn(_Layers):
    def __init__(self, cfg, channels: int):
        super().__init__()
        self.resnets = nn.ModuleList(_resnet(cfg, channels, channels) for _ in range(2))
        self._build(cfg, channels, [cfg.num_heads * (channels // cfg.num_heads)], 1)

    def forward(self, h, ctx: DenoiseContext):
        h = self.resnets[0](h, ctx.temb)
        return self.resnets[1](self._layer(0, h, ctx), ctx.temb)


def _up_resnets(cfg, c_in: int, c_out: int, c_prev: int) -> nn.ModuleList:
    layers = cfg.layers_per_block + 1
    return nn.ModuleList(
        _resnet(cfg, (c_prev if i == 0 else c_out) + (c_in if i == layers - 1 else c_out), c_out) for i in range(layers)
    )


class UpBlock3D(nn.Module):
    def __init__(self, cfg, c_in: int, c_out: int, c_prev: int, add_upsample: bool):
        super().__init__()
        self.resnets = _up_resnets(cfg, c_in, c_out, c_prev)
        self.motion_modules = _motion_modules(cfg, c_out, len(self.resnets))  # stored, never run
        self.upsamplers = nn.ModuleList([Upsample2D(c_out, use_conv=True, out_channels=c_out)]) if add_upsample else None

    def forward(self, h, skips, ctx: DenoiseContext, upsample_size=None):
        for resnet in self.resnets:
            h, skips = torch.cat([h, skips[-1]], dim=1), skips[:-1]
            h = resnet(h, ctx.temb)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h, upsample_size)
        return h


class CrossAttnUpBlock3D(_Layers):
    def __init__(self, cfg, c_in: int, c_out: int, c_prev: int, add_upsample: bool):
        super().__init__()
        self.resnets = _up_resnets(cfg, c_in, c_out, c_prev)
        self._build(cfg, c_out, [cfg.num_heads * (c_in // cfg.num_heads)] * len(self.resnets), len(self.resnets))
        self.upsamplers = nn.ModuleList([Upsample2D(c_out, use_conv=True, out_channels=c_out)]) if add_upsample else None

    def forward(self, h, skips, ctx: DenoiseContext, upsample_size=None):
        for j, resnet in enumerate(self.resnets):
            h, skips = torch.cat([h, skips[-1]], dim=1), skips[:-1]
            h = self._layer(j, resnet(h, ctx.temb), ctx)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h, upsample_size)
        return h
