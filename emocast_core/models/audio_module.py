"""Audio modules: emotive audio attention (EAA) + hierarchical masked audio cross-attention.

Per frame: spatial self-attention; then the emotion text (77 tokens) queries
the 32 audio tokens (EAA) and the result *replaces* the audio tokens; three
cross-attentions to it, each masked to a region (background "pose", face
minus lips "expression", lips), go through zero-initialised 1x1 convs, are
scaled by the user's (pose, face, lip) weights and added; GEGLU feed-forward.

The EAA reads only the emotion text and the audio tokens, which stay the same at
every denoising step of a clip, and so do the keys and values the three region
attentions make of its result: given a per-clip `cache` dict, each block computes
them at the first step and reuses them at the others (the same tensors, so the same
numbers).
"""
from __future__ import annotations

import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

REGIONS = ("full", "face", "lip")


def _zero_conv(dim: int) -> nn.Conv2d:
    conv = nn.Conv2d(dim, dim, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _attend(attn: Attention, x, key, value):
    """`attn(x, context)` given the context's keys and values: the steps diffusers' AttnProcessor2_0 takes
    for a plain cross-attention (no mask, norms or residual, as here), in the same order."""
    batch, head_dim = x.shape[0], key.shape[-1] // attn.heads
    query = attn.to_q(x).view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
    return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


class EmotiveAudioBlock(nn.Module):
    def __init__(self, dim: int, heads: int, token_dim: int = 768, eaa_head_dim: int = 80):
        super().__init__()
        for region in REGIONS:
            setattr(self, f"zero_conv_{region}", _zero_conv(dim))
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=dim // heads)
        self.norm1 = nn.LayerNorm(dim)
        self.attn_audioemo = Attention(
            query_dim=token_dim, cross_attention_dim=token_dim, heads=heads, dim_head=eaa_head_dim
        )
        self.postnorm_audioemo = nn.LayerNorm(token_dim)
        for i in range(len(REGIONS)):
            setattr(self, f"attn2_{i}", Attention(query_dim=dim, cross_attention_dim=token_dim, heads=heads, dim_head=dim // heads))
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, audio_tokens, emotion_tokens, masks, motion_scale, cache: dict | None = None):
        """x [N, hw, dim]; audio [N, 32, 768]; emotion [N, 77, 768]; masks 3 x [N, hw]; `cache`: one clip's."""
        x = self.attn1(self.norm1(x)) + x
        y = self.norm2(x)
        out = x
        keys_values = cache.get(self) if cache is not None else None
        if keys_values is None:
            emotive_audio = self.postnorm_audioemo(self.attn_audioemo(emotion_tokens, audio_tokens))
            if cache is not None:
                keys_values = cache[self] = [(attn.to_k(emotive_audio), attn.to_v(emotive_audio))
                                             for attn in (self.attn2_0, self.attn2_1, self.attn2_2)]
        for i, region in enumerate(REGIONS):
            attn = getattr(self, f"attn2_{i}")
            attended = _attend(attn, y, *keys_values[i]) if keys_values is not None else attn(y, emotive_audio)
            branch = attended * masks[i][:, :, None].to(y.dtype)
            # A 1x1 conv acts per token, so the tokens need no square grid.
            branch = getattr(self, f"zero_conv_{region}")(branch.transpose(1, 2).unsqueeze(-1))
            out = out + motion_scale[i] * branch.squeeze(-1).transpose(1, 2)
        return self.ff(self.norm3(out)) + out


class AudioModule(nn.Module):
    """One `audio_modules.<i>` entry: GroupNorm, 1x1 conv in, the block, 1x1 conv out, residual."""

    def __init__(self, channels: int, inner: int, heads: int = 8, groups: int = 32, token_dim=768, eaa_head_dim=80):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([EmotiveAudioBlock(inner, heads, token_dim, eaa_head_dim)])
        self.proj_out = nn.Conv2d(inner, channels, kernel_size=1)

    def forward(self, x, audio_tokens, emotion_tokens, masks, motion_scale=(1.0, 1.0, 1.0), cache=None):
        """x [N, C, H, W] (frames flattened into N) -> same shape."""
        n, _, h, w = x.shape
        tokens = self.proj_in(self.norm(x))
        inner = tokens.shape[1]
        tokens = tokens.flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            tokens = block(tokens, audio_tokens, emotion_tokens, masks, motion_scale, cache)
        tokens = tokens.transpose(1, 2).reshape(n, inner, h, w)
        return self.proj_out(tokens) + x
