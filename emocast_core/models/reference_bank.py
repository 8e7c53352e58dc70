"""The reference bank: what the ReferenceNet writes and how the denoiser reads it.

The ReferenceNet runs once per clip on groups of 3 latents (reference, motion
frame 1, motion frame 2) and each of its 16 spatial blocks records its
self-attention input [R, hw, C].  The denoiser block with the same module path
reads it in two ways:
- reference rows: chosen denoiser rows attend to their own tokens plus one
  bank row's tokens (`ref_rows` <- `ref_source`);
- motion frames: bank rows `motion_source` [B, M] are prepended along time
  before each motion module.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class ReferenceBank:
    features: dict[str, torch.Tensor]  # transformer-block path -> [R, hw, C]
    ref_rows: torch.Tensor  # long [K]: denoiser rows (sample * frames + frame) that read a reference
    ref_source: torch.Tensor  # long [K]: the bank row each of them reads
    plain_rows: torch.Tensor  # long: rows doing plain self-attention
    motion_source: torch.Tensor  # long [B, M]: bank rows of each sample's motion frames

    @classmethod
    def official_cfg(cls, features: dict[str, torch.Tensor], frames: int) -> "ReferenceBank":
        """The official CFG layout: bank rows (r_u, m1_u, m2_u, r_c, m1_c, m2_c).

        The unconditional half reads no reference.  Conditional frame f reads
        row 0 when f is even and row 3 when it is odd: the official reader
        tiles the two reference rows over the frames (verified on the official
        modules; the parity fixtures hold that case).  Each half gets its own motion rows.
        """
        f = torch.arange(frames)
        return cls(
            features=features,
            ref_rows=frames + f,
            ref_source=torch.where(f % 2 == 0, 0, 3),
            plain_rows=f,
            motion_source=torch.tensor([[1, 2], [4, 5]]),
        )

    @classmethod
    def per_sample(cls, features: dict[str, torch.Tensor], batch: int, frames: int) -> "ReferenceBank":
        """One group of 3 bank rows per sample, every frame reading its own reference (training)."""
        rows = torch.arange(batch * frames)
        first = torch.arange(batch) * 3
        return cls(
            features=features,
            ref_rows=rows,
            ref_source=(rows // frames) * 3,
            plain_rows=rows[:0],
            motion_source=torch.stack([first + 1, first + 2], dim=1),
        )

    def rounded_to(self, dtype: torch.dtype) -> "ReferenceBank":
        """Round the features through `dtype` (the official hand-over copies the bank as fp16)."""
        return replace(self, features={k: v.to(dtype).to(v.dtype) for k, v in self.features.items()})

    def indices_on(self, device: torch.device | str) -> "ReferenceBank":
        """The bank with its row indices on `device` (the features' device): gathering then copies nothing
        from the host, so a GPU step does not wait on one."""
        move = lambda t: t.to(device)  # noqa: E731
        return replace(self, ref_rows=move(self.ref_rows), ref_source=move(self.ref_source),
                       plain_rows=move(self.plain_rows), motion_source=move(self.motion_source))

    def reference_tokens(self, path: str) -> torch.Tensor:
        return self.features[path][self.ref_source.to(self.features[path].device)]

    def motion_tokens(self, path: str) -> torch.Tensor:
        """[B, M, hw, C] motion-frame tokens of each sample."""
        return self.features[path][self.motion_source.to(self.features[path].device)]
