"""What every benchmark mode shares: peak memory and device synchronisation."""
from __future__ import annotations

import resource

import torch


def peak_rss_gb() -> float:
    """The process's peak resident memory so far, in GiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so wall-clock timings hold."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
