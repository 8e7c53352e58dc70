"""The parity fixtures' deterministic weight rule (tests/fixtures/parity/README.md).

Every parameter is drawn from a generator seeded with the CRC32 of its full
official key, so the values do not depend on construction order.  Buffers
(the motion modules' position encodings) keep their constructed values.  Used
by the parity tests, the benchmark and the demo's placeholder weights.
"""
from __future__ import annotations

import math
import zlib

import torch
from torch import nn


def rule_tensor(key: str, shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    shape = tuple(shape)
    if len(shape) >= 2:
        return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    if key.endswith("weight"):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    return 0.1 * torch.randn(shape, generator=g)


@torch.no_grad()
def fill_deterministic(module: nn.Module, prefix: str = "") -> nn.Module:
    """Overwrite every parameter of `module` (keys prefixed with `prefix`) with the rule."""
    for name, param in module.named_parameters():
        param.copy_(rule_tensor(prefix + name, param.shape))
    return module
