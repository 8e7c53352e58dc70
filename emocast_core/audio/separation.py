"""Optional vocal separation with the MDX-Net model Kim_Vocal_2 (ONNX).

The official pipeline first isolates the vocal stem with audio-separator
(MDX architecture, `Kim_Vocal_2.onnx`), so music or noise under the speech does
not drive the lips.  We run the same model in-process with onnxruntime, which
stays optional: it is imported only when separation is asked for.

How MDX-Net inference works (our own formulation of audio-separator's MDX path,
default settings: segment 256, overlap 0.25, no denoise):
- input: stereo 44.1 kHz (mono is duplicated), peak capped at 0.9;
- the signal gets `n_fft//2` zeros in front and zeros behind up to whole
  `gen = hop*(dim_t-1) - n_fft` blocks (plus n_fft/2);
- chunks of `hop*(dim_t-1)` samples every 75 % of a chunk; each chunk:
  STFT (Hann periodic, n_fft, hop, centred) -> channels (L.re, L.im, R.re,
  R.im) x the first `dim_f` bins x `dim_t` frames -> bins 0-2 zeroed ->
  model -> bins above dim_f zero-filled -> inverse STFT;
- chunks are blended with a symmetric Hann window of the chunk's length and
  divided by the summed windows; the padding is cut and the stem is scaled by
  the model's `compensate` factor (1.009 for Kim_Vocal_2).
Since the wav2vec2 input normalisation removes any global gain, the peak caps
and compensation only matter for the stem returned to callers.
"""
import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..tensor_files import onnx_session

SEPARATOR_FILE = "Kim_Vocal_2.onnx"
_SESSIONS: dict[tuple, object] = {}


@dataclass(frozen=True)
class MdxParams:
    n_fft: int = 7680
    hop: int = 1024
    dim_f: int = 3072
    dim_t: int = 256
    compensate: float = 1.009
    sample_rate: int = 44100
    overlap: float = 0.25
    max_peak: float = 0.9


KIM_VOCAL_2 = MdxParams()


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _cap_peak(x: np.ndarray, max_peak: float) -> np.ndarray:
    peak = float(np.abs(x).max())
    return x * (max_peak / peak) if peak > max_peak else x


def to_stereo_44k(samples: np.ndarray, rate: int, params: MdxParams = KIM_VOCAL_2) -> np.ndarray:
    """[T] or [C,T] at `rate` -> float32 [2, T44]: mono duplicated, >2 channels mixed to mono first."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[None] if x.ndim == 1 else x
    if x.shape[0] != 2:
        x = np.repeat(x.mean(axis=0, keepdims=True), 2, axis=0)
    if rate != params.sample_rate:
        import soxr
        x = soxr.resample(x.T, rate, params.sample_rate, quality="HQ").T
    return np.ascontiguousarray(x, dtype=np.float32)


class MdxVocalSeparator:
    """`separator(samples [C,T], rate) -> (vocals float32 [2,T44], 44100)`.

    run_model maps a spectrogram batch [B, 4, dim_f, dim_t] float32 to the
    vocal spectrogram of the same shape (an onnxruntime session in practice;
    any callable in tests).  `progress(done, total)` is called per chunk.
    """

    def __init__(self, run_model: Callable[[np.ndarray], np.ndarray], params: MdxParams = KIM_VOCAL_2,
                 progress: Callable[[int, int], None] | None = None):
        self.run_model, self.params, self.progress = run_model, params, progress
        self.window = torch.hann_window(params.n_fft, periodic=True)

    @classmethod
    def from_onnx(cls, path: str, use_cuda: bool = False, params: MdxParams = KIM_VOCAL_2, progress=None):
        return cls(_onnx_runner(path, use_cuda), params, progress)

    def _spectrogram(self, chunk: torch.Tensor) -> torch.Tensor:
        p = self.params
        spec = torch.stft(chunk, p.n_fft, p.hop, window=self.window, center=True, return_complex=True)
        spec = torch.view_as_real(spec)[:, : p.dim_f]  # [2, F, T, re/im]
        spec = spec.permute(0, 3, 1, 2).reshape(1, 4, p.dim_f, -1).clone()  # L.re, L.im, R.re, R.im
        spec[:, :, :3] = 0  # drop DC and the two lowest bins, as the MDX recipe does
        return spec

    def _waveform(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        p = self.params
        full = torch.zeros(1, 4, p.n_fft // 2 + 1, spec.shape[-1])
        full[:, :, : p.dim_f] = spec
        full = full.reshape(2, 2, p.n_fft // 2 + 1, -1)
        complex_spec = torch.complex(full[:, 0], full[:, 1])
        return torch.istft(complex_spec, p.n_fft, p.hop, window=self.window, center=True, length=length)

    def separate_chunk(self, chunk: np.ndarray) -> np.ndarray:
        """One [2, hop*(dim_t-1)] chunk -> vocal estimate of the same shape."""
        spec = self._spectrogram(torch.from_numpy(chunk))
        out = self.run_model(spec.numpy())
        return self._waveform(torch.as_tensor(np.asarray(out, dtype=np.float32)), chunk.shape[-1]).numpy()

    def __call__(self, samples, rate: int) -> tuple[np.ndarray, int]:
        p = self.params
        mix = _cap_peak(to_stereo_44k(samples, rate, p), p.max_peak)
        n = mix.shape[-1]
        chunk = p.hop * (p.dim_t - 1)
        trim = p.n_fft // 2
        gen = chunk - 2 * trim
        pad = gen + trim - n % gen
        mixture = np.concatenate([np.zeros((2, trim), np.float32), mix, np.zeros((2, pad), np.float32)], axis=1)
        total = mixture.shape[-1]
        step = int((1 - p.overlap) * chunk)
        acc = np.zeros((2, total), np.float32)
        weight = np.zeros((2, total), np.float32)
        starts = range(0, total, step)
        for k, start in enumerate(starts):
            end = min(start + chunk, total)
            part = np.zeros((2, chunk), np.float32)
            part[:, : end - start] = mixture[:, start:end]
            window = np.hanning(end - start).astype(np.float32)  # symmetric, of the real length
            acc[:, start:end] += self.separate_chunk(part)[:, : end - start] * window
            weight[:, start:end] += window
            if self.progress is not None:
                self.progress(k + 1, len(starts))
        with np.errstate(invalid="ignore", divide="ignore"):
            vocals = acc[:, trim:total - trim] / weight[:, trim:total - trim]
        return np.ascontiguousarray(vocals[:, :n] * p.compensate, dtype=np.float32), p.sample_rate


def _onnx_runner(path: str, use_cuda: bool) -> Callable[[np.ndarray], np.ndarray]:
    if not onnxruntime_available():
        raise RuntimeError(
            "separate_vocals needs the optional package onnxruntime (or onnxruntime-gpu): install it into "
            "ComfyUI's Python (`python -m pip install onnxruntime`), or turn separate_vocals off"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocal separator model not found: {path}; download {SEPARATOR_FILE} "
                                "(UVR MDX-Net, MIT) into ComfyUI/models/audio_separator/")
    import onnxruntime as ort

    available = ort.get_available_providers()
    providers = [p for p in (["CUDAExecutionProvider"] if use_cuda else []) + ["CPUExecutionProvider"]
                 if p in available]
    key = (os.path.realpath(path), os.stat(path).st_mtime_ns, tuple(providers))
    if key not in _SESSIONS:
        _SESSIONS.clear()  # one separator at a time: it is ~70 MB
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # share the CPU budget torch was given
        _SESSIONS[key] = onnx_session(ort, path, "vocal separator", options, providers)
    session = _SESSIONS[key]
    name = session.get_inputs()[0].name
    return lambda spec: session.run(None, {name: spec})[0]
