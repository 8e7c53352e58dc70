"""Bounded-memory wav2vec2 for long audio.

The official pipeline runs the whole clip at once.  For 10 minutes of
wav2vec2-base that is a 3.9 GB first-conv activation and 15,000² attention
maps, so past `WHOLE_CLIP_MAX_SECONDS` we split the work, keeping as much of
the whole-clip numerics as possible:

1. CNN features in chunks aligned to the CNN's total stride, so every feature
   is computed from exactly the samples it would see at once.  The first conv
   layer of "group"-norm models (base) normalises each channel over the WHOLE
   clip; we gather those statistics in a first pass (float64 sums) and apply
   them in the second, so the CNN features match the whole-clip ones to float
   rounding.
2. The interpolation to video frames runs once over all features (cheap), so
   frame alignment is exactly upstream's.
3. Only the transformer is windowed: chunks of `chunk_frames` frames with
   `context_frames` extra frames each side, keeping the centre.  Global
   attention is the one thing that changes; context >= half the positional
   conv's width keeps the first layer's input exact.

Measured (wav2vec2-base shape, fp32, CPU): the whole-clip pass on 60 s and the
chunked pass on 60 s or 180 s all peak at about +1 GB over the loaded model;
only the [T, 12, 768] result grows with the length (55 MB per minute of audio).
"""
import math

import torch

from .wav2vec import encode_frames, to_frames

WHOLE_CLIP_MAX_SECONDS = 60.0
CHUNK_SECONDS = 30.0
CONTEXT_SECONDS = 5.0


def conv_geometry(model) -> tuple[int, int]:
    """(total stride, receptive field) of the CNN feature encoder, in samples."""
    stride, field = 1, 1
    for kernel, step in zip(model.config.conv_kernel, model.config.conv_stride):
        field += (kernel - 1) * stride
        stride *= step
    return stride, field


def _num_outputs(length: int, kernels, strides) -> int:
    for kernel, step in zip(kernels, strides):
        length = (length - kernel) // step + 1 if length >= kernel else 0
    return length


def _first_layer_stats(layer, x: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and 1/std of layer 0's conv output over the whole clip (GroupNorm per channel)."""
    conv = layer.conv
    kernel, step = conv.kernel_size[0], conv.stride[0]
    positions = (x.shape[-1] - kernel) // step + 1
    total = sq = None
    for p0 in range(0, positions, chunk):
        p1 = min(p0 + chunk, positions)
        h = conv(x[..., p0 * step:(p1 - 1) * step + kernel]).double()
        s, q = h.sum(dim=(0, 2)), (h * h).sum(dim=(0, 2))
        total, sq = (s, q) if total is None else (total + s, sq + q)
    mean = total / positions
    var = (sq / positions - mean * mean).clamp_min(0)
    return mean, torch.rsqrt(var + layer.layer_norm.eps)


def chunked_cnn_features(model, x: torch.Tensor, chunk_features: int, progress=None) -> torch.Tensor:
    """[N] normalised samples -> [1, C, F] CNN features, same values as one pass."""
    extractor = model.feature_extractor
    stride, field = conv_geometry(model)
    x = x.reshape(1, 1, -1)
    total = _num_outputs(x.shape[-1], model.config.conv_kernel, model.config.conv_stride)
    if total <= 0:
        raise ValueError(f"audio: {x.shape[-1]} samples are too few for the wav2vec2 CNN ({field} needed)")
    first = extractor.conv_layers[0]
    norm = getattr(first, "layer_norm", None)
    global_norm = isinstance(norm, torch.nn.GroupNorm)
    if global_norm:
        if norm.num_groups != norm.num_channels:
            raise ValueError("wav2vec2: unsupported CNN GroupNorm layout (expected one group per channel)")
        mean, inv_std = _first_layer_stats(first, x, chunk_features * stride // first.conv.stride[0])
        scale = (inv_std * norm.weight.double()).to(x.dtype)[:, None]
        shift = (norm.bias.double() - mean * inv_std * norm.weight.double()).to(x.dtype)[:, None]
    parts = []
    for j0 in range(0, total, chunk_features):
        j1 = min(j0 + chunk_features, total)
        h = x[..., j0 * stride:(j1 - 1) * stride + field]
        if global_norm:
            h = first.activation(first.conv(h) * scale + shift)
            for layer in extractor.conv_layers[1:]:
                h = layer(h)
        else:  # "layer" norm is per time step: plain chunking is exact
            h = extractor(h[:, 0])
        parts.append(h)
        if progress is not None:
            progress()
    return torch.cat(parts, dim=-1)


def chunked_hidden_states(model, input_values: torch.Tensor, num_frames: int, fps: float,
                          chunk_seconds: float = CHUNK_SECONDS, context_seconds: float = CONTEXT_SECONDS,
                          progress=None) -> torch.Tensor:
    """Long-audio forward: normalised [N] -> [T, L, H] float32 on the CPU.

    `progress(done, total)` is called after every chunk (the ComfyUI node uses
    it for its progress bar and to honour interrupts).
    """
    param = next(model.parameters())
    x = input_values.to(param.device, param.dtype)
    stride, _ = conv_geometry(model)
    chunk_features = max(1, int(chunk_seconds * 16000) // stride)
    chunk_frames = max(1, round(chunk_seconds * fps))
    context = max(math.ceil(model.config.num_conv_pos_embeddings / 2), round(context_seconds * fps))
    n_cnn = math.ceil(_num_outputs(x.numel(), model.config.conv_kernel, model.config.conv_stride) / chunk_features)
    n_enc = math.ceil(num_frames / chunk_frames)
    steps = [0]

    def tick():
        steps[0] += 1
        if progress is not None:
            progress(steps[0], n_cnn + n_enc)

    with torch.inference_mode():
        frames = to_frames(chunked_cnn_features(model, x, chunk_features, tick), num_frames)
        out = []
        for f0 in range(0, num_frames, chunk_frames):
            f1 = min(f0 + chunk_frames, num_frames)
            a, b = max(0, f0 - context), min(num_frames, f1 + context)
            hidden = encode_frames(model, frames[:, a:b])
            out.append(hidden[f0 - a:f1 - a].float().cpu())
            tick()
    return torch.cat(out, dim=0)
