"""Waveform preparation: any [C,T] or [T] float signal -> validated mono 16 kHz fp32.

Checks, in order, each a `ValueError` naming the input:
- sample rate not a number in [1 kHz, 384 kHz] (catches Hz/kHz mix-ups);
- fps not a positive finite number;
- wrong rank (anything but [T] or [C,T]) or no samples / no channels;
- NaN or inf anywhere (a broken decoder or upstream node);
- shorter than one video frame (1/fps s): it would give zero frames;
- silent: peak of the mono mix below `SILENCE_PEAK` (1e-4, about -80 dBFS),
  which would make the feature normalisation divide noise by ~0.
"""
import math

import numpy as np
import torch

TARGET_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
SILENCE_PEAK = 1e-4


def _as_numpy(waveform, name: str) -> np.ndarray:
    # float32 like the official loader (librosa); float64 copies of 10 min stereo cost 400 MB
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().to("cpu", torch.float32).numpy()
    try:
        return np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a float tensor or array of samples, got {type(waveform).__name__}") from exc


def check_sample_rate(sample_rate, name: str = "audio") -> int:
    """Validated integer sample rate."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(sample_rate) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"{name}: sample rate {sample_rate!r} Hz is not plausible; expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
            "(was a rate in kHz passed?)"
        )
    return int(round(sample_rate))


def check_fps(fps, name: str = "fps") -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{name}: video frame rate must be a positive number, got {fps!r}")
    return float(fps)


def to_mono(samples: np.ndarray, name: str = "audio") -> np.ndarray:
    """[T] or [C,T] -> [T], mean over channels (the official loader's downmix)."""
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        return samples.mean(axis=0)
    raise ValueError(
        f"{name}: expected a waveform of shape [T] or [channels, T], got {list(samples.shape)}; "
        "pick one batch item of a ComfyUI AUDIO first"
    )


def resample(mono: np.ndarray, sample_rate: int, target: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with soxr 'HQ', what librosa.load(sr=16000) uses by default."""
    if sample_rate == target:
        return mono
    import soxr  # imported lazily: only needed off 16 kHz

    return soxr.resample(mono, sample_rate, target, quality="HQ")


def validate_waveform(waveform, sample_rate, fps: float = 25.0, name: str = "audio") -> tuple[np.ndarray, int]:
    """Run every check above; return the samples as float32 numpy [T] or [C,T] and the rate."""
    sample_rate = check_sample_rate(sample_rate, name)
    fps = check_fps(fps)
    samples = _as_numpy(waveform, name)
    if samples.ndim not in (1, 2):
        to_mono(samples, name)  # raises the shape error
    if samples.size == 0:
        raise ValueError(f"{name}: the waveform is empty (shape {list(samples.shape)}); connect audio with sound in it")
    if not np.isfinite(samples).all():  # float64 overflow to inf in the cast is caught here too
        bad = int((~np.isfinite(samples)).sum())
        raise ValueError(f"{name}: the waveform has {bad} non-finite samples (NaN or inf); re-decode or clean the audio")
    num_samples = samples.shape[-1]
    if num_samples / sample_rate < 1.0 / fps:
        raise ValueError(
            f"{name}: {num_samples} samples at {sample_rate} Hz ({num_samples / sample_rate * 1000:.1f} ms) is shorter "
            f"than one video frame at {fps:g} fps ({1000 / fps:.1f} ms); use longer audio"
        )
    peak = float(np.abs(to_mono(samples, name)).max())
    if peak < SILENCE_PEAK:
        raise ValueError(
            f"{name}: the audio is silent (peak {peak:.2e} < {SILENCE_PEAK:g} after mixing to mono); "
            "check the file, the volume, or channels that cancel out"
        )
    return samples, sample_rate


def prepare_waveform(waveform, sample_rate, fps: float = 25.0, name: str = "audio") -> torch.Tensor:
    """Validate, mix to mono and resample: a mono 16 kHz float32 tensor [T16]."""
    samples, sample_rate = validate_waveform(waveform, sample_rate, fps, name)
    mono = resample(to_mono(samples, name), sample_rate)
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
