"""wav2vec2 forward as the official pipeline runs it (Hallo's `Wav2VecModel`).

The one change to a plain `Wav2Vec2Model` forward: the CNN features (50 Hz)
are linearly interpolated (align_corners=True) to the *video* frame count
before `feature_projection` and the transformer encoder, so every encoder
token is one video frame.  We call transformers' own sub-modules
(`feature_extractor`, `feature_projection`, `encoder.*`) and only re-wire them.

Output: the outputs of every transformer layer (`hidden_states[1:]` upstream;
index 0, the encoder input, is dropped) stacked as [T, L, H] float32.
"""
import math

import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000


def frame_count(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Video frames covering the audio: ceil(samples / rate * fps), in upstream's float order."""
    return math.ceil(num_samples / sample_rate * fps)


def pad_to_clips(normalized: torch.Tensor, num_frames: int, fps: float, clip_length: int = 16,
                 sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, int]:
    """Right-pad the *normalised* waveform with zeros to a whole number of clips.

    Upstream adds (clip_length - T mod clip_length) frames of `sample_rate // fps`
    samples each and rounds T up; the true T is kept by the caller for trimming.
    """
    if clip_length <= 0 or num_frames % clip_length == 0:
        return normalized, num_frames
    missing = clip_length - num_frames % clip_length
    pad = missing * int(sample_rate // fps)
    return F.pad(normalized, (0, pad)), num_frames + missing


def cnn_features(model, input_values: torch.Tensor) -> torch.Tensor:
    """[N] normalised samples -> CNN features [1, C, F] (50 Hz for 16 kHz input)."""
    return model.feature_extractor(input_values.reshape(1, -1))


def to_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[1, C, F] -> [1, T, C]: linear, align_corners=True (first and last features stay put)."""
    return F.interpolate(features, size=num_frames, mode="linear", align_corners=True).transpose(1, 2)


def encode_frames(model, frames: torch.Tensor) -> torch.Tensor:
    """Frame-rate CNN features [1, T, C] -> per-layer outputs [T, L, H]."""
    hidden, _ = model.feature_projection(frames)  # (projected, layer-normed CNN features)
    encoder = model.encoder
    hidden = hidden + encoder.pos_conv_embed(hidden)
    stable = bool(getattr(model.config, "do_stable_layer_norm", False))
    if not stable:  # post-LN models (base) normalise the encoder input; pre-LN ones normalise the last output
        hidden = encoder.layer_norm(hidden)
    hidden = encoder.dropout(hidden)
    outputs = []
    for layer in encoder.layers:
        out = layer(hidden, attention_mask=None)
        hidden = out[0] if isinstance(out, tuple) else out  # transformers 4 returns a tuple, 5 a tensor
        outputs.append(hidden)
    if stable:
        outputs[-1] = encoder.layer_norm(outputs[-1])
    return torch.stack(outputs, dim=2)[0]


@torch.inference_mode()
def wav2vec_hidden_states(model, input_values: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Whole-clip forward: normalised [N] -> [T, L, H] on the model's device/dtype."""
    param = next(model.parameters())
    x = input_values.to(param.device, param.dtype)
    return encode_frames(model, to_frames(cnn_features(model, x), num_frames))
