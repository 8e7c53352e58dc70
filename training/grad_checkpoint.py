"""Gradient checkpointing around the UNet blocks (non-reentrant torch.utils.checkpoint).

The blocks' attention processors carry per-call state: the denoiser's
reference readers are set before the blocks run and cleared right after the
forward, i.e. before backward recomputes anything, and the ReferenceNet's
writers record their inputs.  So each wrapped block snapshots its readers'
state at forward time, re-installs it while recomputing, and puts back what
the writers held, so recomputation sees exactly what the forward saw.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._core import ReferenceReadProcessor, ReferenceWriteProcessor


def _processors(block: nn.Module, kind: type) -> list:
    return [m.processor for m in block.modules() if isinstance(getattr(m, "processor", None), kind)]


def _wrap(block: nn.Module) -> None:
    original = block.forward
    readers = _processors(block, ReferenceReadProcessor)
    writers = _processors(block, ReferenceWriteProcessor)

    def forward(*args, **kwargs):
        if not torch.is_grad_enabled():
            return original(*args, **kwargs)
        snapshot = [(p.ref_rows, p.ref_tokens, p.plain_rows) for p in readers]
        calls = [0]

        def run(*a, **k):
            calls[0] += 1
            if calls[0] == 1:  # the forward itself
                return original(*a, **k)
            now = [(p.ref_rows, p.ref_tokens, p.plain_rows) for p in readers]
            recorded = [w.recorded for w in writers]
            for p, s in zip(readers, snapshot):
                p.ref_rows, p.ref_tokens, p.plain_rows = s
            try:
                return original(*a, **k)
            finally:
                for p, s in zip(readers, now):
                    p.ref_rows, p.ref_tokens, p.plain_rows = s
                for w, r in zip(writers, recorded):
                    w.recorded = r

        return checkpoint(run, *args, use_reentrant=False, **kwargs)

    block.forward = forward


def enable_block_checkpointing(net: nn.Module) -> Callable[[], None]:
    """Checkpoint every down/mid/up block of both UNets; returns the undo function."""
    blocks = []
    for unet in (net.reference_unet, net.denoising_unet):
        blocks += [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    for block in blocks:
        _wrap(block)

    def undo():
        for block in blocks:
            block.__dict__.pop("forward", None)

    return undo
