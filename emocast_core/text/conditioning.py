"""Emotion text conditioning: CLIP embeddings of keyframed prompts, per frame.

`EmotionConditioning` travels between nodes (ComfyUI type EMOCAST_EMOTION).
It holds one embedding per keyframe plus the unconditional embedding of "",
and expands to one [77,H] embedding per video frame, so a clip can move from
one emotion to another (the official code has one prompt per video).
"""
import math
from dataclasses import dataclass
from typing import Protocol

import torch

from .schedule import parse_schedule
from .tokens import MAX_TOKENS, token_ids

EASES = ("linear", "cosine")


class TextEncoder(Protocol):
    """What `encode_emotion` needs: a CLIP tokenizer and an id encoder."""

    tokenizer: object
    name: str

    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """[B,77] ids → [B,77,H] final-layer hidden states, fp32 on CPU."""
        ...


@dataclass(frozen=True)
class EmotionConditioning:
    prompts: list[str]        # K tokenised texts (preset names already expanded)
    times_s: list[float]      # K keyframe times, strictly increasing
    cond: torch.Tensor        # [K,77,H]
    uncond: torch.Tensor      # [1,77,H], the embedding of ""
    transition_s: float = 0.5
    ease: str = "linear"      # "cosine" = smooth start and end of each blend
    source: str = ""          # which encoder made it, for metadata

    def __post_init__(self):
        k = len(self.prompts)
        if k == 0 or len(self.times_s) != k or self.cond.shape[:2] != (k, MAX_TOKENS):
            raise ValueError(f"EmotionConditioning: {k} prompts, {len(self.times_s)} times, cond {tuple(self.cond.shape)}")
        if tuple(self.uncond.shape) != (1, MAX_TOKENS, self.cond.shape[2]):
            raise ValueError(f"EmotionConditioning: uncond {tuple(self.uncond.shape)} does not match cond")
        if any(b <= a for a, b in zip(self.times_s, self.times_s[1:])):
            raise ValueError(f"EmotionConditioning: keyframe times {self.times_s} are not increasing")
        if not (self.transition_s >= 0 and math.isfinite(self.transition_s)):
            raise ValueError(f"transition_seconds must be >= 0, got {self.transition_s}")
        if self.ease not in EASES:
            raise ValueError(f"ease must be one of {EASES}, got {self.ease!r}")

    @property
    def is_constant(self) -> bool:
        return len(self.prompts) == 1

    def weights(self, times_s: torch.Tensor) -> torch.Tensor:
        """[F] times → [F,K] blend weights (each row sums to 1).

        At time t, with k the last keyframe at or before t (k = 0 before the
        first), the weight is 1 on k, except inside the window
        [max(t_{k+1} - transition_s, t_k), t_{k+1}), where it moves from k to
        k+1 linearly (or with a cosine ease).  At t_{k+1} it is 1 on k+1.
        """
        t = times_s.to(torch.float64)
        keys = torch.tensor(self.times_s, dtype=torch.float64)
        k = (torch.searchsorted(keys, t, right=True) - 1).clamp(min=0)
        w = torch.zeros(len(t), len(keys), dtype=torch.float64)
        rows = torch.arange(len(t))
        alpha = torch.zeros(len(t), dtype=torch.float64)
        has_next = k + 1 < len(keys)
        if self.transition_s > 0 and has_next.any():
            nxt = keys[(k + 1).clamp(max=len(keys) - 1)]
            start = torch.maximum(nxt - self.transition_s, keys[k])
            # Rows without a next keyframe divide 0/0; `where` discards them.
            alpha = torch.where(has_next, ((t - start) / (nxt - start)).clamp(0, 1), 0.0)
            if self.ease == "cosine":
                alpha = (1 - torch.cos(math.pi * alpha)) / 2
        w[rows, k] = 1 - alpha
        w[rows[has_next], k[has_next] + 1] = alpha[has_next]
        return w

    def at_times(self, times_s: torch.Tensor) -> torch.Tensor:
        """[F] times in seconds → [F,77,H] blended embeddings."""
        w = self.weights(times_s).to(self.cond.dtype)
        return torch.einsum("fk,kth->fth", w, self.cond)

    def per_frame(self, num_frames: int, fps: float) -> torch.Tensor:
        """[num_frames,77,H] text embedding of each video frame; frame i is at i/fps s."""
        if num_frames < 0 or not fps > 0:
            raise ValueError(f"per_frame needs num_frames >= 0 and fps > 0, got {num_frames}, {fps}")
        return self.at_times(torch.arange(num_frames, dtype=torch.float64) / fps)


def encode_emotion(schedule: str, encoder: TextEncoder, transition_s: float = 0.5,
                   ease: str = "linear") -> EmotionConditioning:
    """Parse `schedule` (the format: docs/nodes.md), tokenise and encode each keyframe and ""."""
    keyframes = parse_schedule(schedule)
    # Tokenise everything first so an over-long prompt fails before any encoding.
    ids = {k.prompt: token_ids(encoder.tokenizer, k.prompt) for k in keyframes}
    empty = token_ids(encoder.tokenizer, "")
    # One prompt per forward, [1,77] as the official code runs it.
    embedded = {prompt: encoder.encode_ids(x) for prompt, x in ids.items()}
    return EmotionConditioning(
        prompts=[k.prompt for k in keyframes],
        times_s=[k.time_s for k in keyframes],
        cond=torch.cat([embedded[k.prompt] for k in keyframes]),
        uncond=encoder.encode_ids(empty),
        transition_s=float(transition_s),
        ease=ease,
        source=encoder.name,
    )
