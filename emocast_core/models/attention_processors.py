"""Attention processors that give EmoCAST's spatial blocks their behaviour.

EmoCAST keeps the SD1.5 transformer blocks (diffusers' `Transformer2DModel`)
and changes only what their attentions attend to, which is exactly what
diffusers' processors are for:

- `TextFaceAttnProcessor` (attn2, both UNets): the text-guided emotive
  attention (TEA).  Text tokens go through `to_k`/`to_v`, the 4 face-identity
  tokens through the processor's own `to_k_ip`/`to_v_ip`; the two softmax
  attentions share the query and are summed at scale 1.0.
- `ReferenceWriteProcessor` (attn1, ReferenceNet): records its input, the
  block's `norm1` output, into the reference bank.
- `ReferenceReadProcessor` (attn1, denoiser): rows that read the reference
  attend to their own tokens concatenated with the reference frame's tokens;
  the other rows (the unconditional CFG half) do plain self-attention.

Never call `set_attn_processor()` on these models: it would drop them.
"""
from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0, IPAdapterAttnProcessor2_0


class TextFaceAttnProcessor(IPAdapterAttnProcessor2_0):
    """Decoupled text / face-identity cross-attention on `[text..., face x N]` tokens."""

    def __init__(self, hidden_size: int, cross_attention_dim: int, face_tokens: int = 4):
        super().__init__(hidden_size, cross_attention_dim, num_tokens=(face_tokens,), scale=1.0)

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        n = self.num_tokens[0]
        text, face = encoder_hidden_states[:, :-n], encoder_hidden_states[:, -n:]
        # diffusers' tuple form: (text tokens, [tokens of each image adapter]).
        return super().__call__(attn, hidden_states, (text, [face]), attention_mask, temb)


class ReferenceWriteProcessor(AttnProcessor2_0):
    """Plain self-attention that keeps its input for the denoiser to read."""

    def __init__(self):
        super().__init__()
        self.recorded: torch.Tensor | None = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        self.recorded = hidden_states
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceReadProcessor(AttnProcessor2_0):
    """Self-attention extended with reference tokens for selected rows.

    `ref_rows` [R] are the rows (frames of the batch) that read a reference and
    `ref_tokens` [R, hw, C] the reference tokens for each; `plain_rows` are the
    rest.  With nothing set it is ordinary self-attention.
    """

    def __init__(self):
        super().__init__()
        self.clear()

    def set(self, ref_rows: torch.Tensor, ref_tokens: torch.Tensor, plain_rows: torch.Tensor):
        self.ref_rows, self.ref_tokens, self.plain_rows = ref_rows, ref_tokens, plain_rows

    def clear(self):
        self.ref_rows = self.ref_tokens = self.plain_rows = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        if self.ref_rows is None or self.ref_rows.numel() == 0:
            return super().__call__(attn, hidden_states, None, attention_mask, temb)
        if self.plain_rows.numel() == 0:
            own = hidden_states
            return super().__call__(attn, own, torch.cat([own, self.ref_tokens.to(own.dtype)], dim=1))
        out = torch.empty_like(hidden_states)
        own = hidden_states[self.ref_rows]
        out[self.ref_rows] = super().__call__(attn, own, torch.cat([own, self.ref_tokens.to(own.dtype)], dim=1))
        out[self.plain_rows] = super().__call__(attn, hidden_states[self.plain_rows])
        return out
