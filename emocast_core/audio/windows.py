"""Per-frame audio windows: frame i sees frames i-2..i+2, clamped at the edges.

`frame_windows(h, start, stop)` builds only the requested frames, so a sampler
can take one 16-frame clip without materialising [T,5,L,H] for a long clip
(10 min of wav2vec2-base would be 2.8 GB in fp32).
"""
import torch

WINDOW_RADIUS = 2  # 5 frames: the official ±2


def frame_windows(hidden: torch.Tensor, start: int = 0, stop: int | None = None,
                  radius: int = WINDOW_RADIUS) -> torch.Tensor:
    """hidden [T, L, H] -> windows [stop-start, 2r+1, L, H]; neighbours clamp to [0, T-1] of `hidden`."""
    total = hidden.shape[0]
    stop = total if stop is None else stop
    if not 0 <= start <= stop <= total:
        raise ValueError(f"frame range {start}:{stop} is outside 0:{total}")
    centres = torch.arange(start, stop)
    offsets = torch.arange(-radius, radius + 1)
    index = (centres[:, None] + offsets[None, :]).clamp(0, total - 1)
    return hidden[index]
