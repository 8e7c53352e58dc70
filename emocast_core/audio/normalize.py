"""The wav2vec2 feature extractor's input normalisation, bit for bit.

The official pipeline calls `Wav2Vec2FeatureExtractor(do_normalize=True)` on the
whole clip: zero mean, unit (population) variance, eps 1e-7, all in float32
numpy.  We redo that arithmetic with the same numpy float32 reductions rather
than in torch, because numpy's pairwise float32 sum is what the official
numbers carry (torch's reduction order differs in the last bits).
"""
import numpy as np
import torch

NORMALIZE_EPS = 1e-7


def normalize_waveform(waveform) -> torch.Tensor:
    """[T] float -> [T] float32, (x - mean) / sqrt(var + 1e-7) over the whole clip."""
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"normalize_waveform: expected a mono [T] waveform, got shape {list(x.shape)}")
    # x.var() is a float32 scalar; adding a Python float keeps float32 (as upstream).
    out = (x - x.mean()) / np.sqrt(x.var() + NORMALIZE_EPS)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
