"""Shared test set-up: single-threaded torch, offline hubs, the parity folder."""
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

# Two cores and several processes (the ComfyUI server among them): more than one
# torch thread per process oversubscribes the machine and slows tests 100x.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """Folder of the official-implementation fixtures (EMOCAST_PARITY_DIR)."""
    path = Path(os.environ.get("EMOCAST_PARITY_DIR", REPO.parent / "shared" / "parity"))
    if not (path / "expected.safetensors").is_file():
        pytest.fail(f"parity fixtures not found in {path}; set EMOCAST_PARITY_DIR")
    return path
