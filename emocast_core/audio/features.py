"""Audio conditioning for the sampler: `encode_audio(...) -> AudioFeatures`.

Official flow: [vocal stem] -> mono 16 kHz -> feature-
extractor normalisation -> pad to whole 16-frame clips -> wav2vec2 with
features interpolated to 25 fps -> all layer outputs [T, L, H] -> ±2-frame
windows.  The true frame count is kept so the video can be trimmed at the end.
"""
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from .chunked import WHOLE_CLIP_MAX_SECONDS, chunked_hidden_states
from .normalize import normalize_waveform
from .waveform import TARGET_SAMPLE_RATE, prepare_waveform, validate_waveform
from .wav2vec import frame_count, pad_to_clips, wav2vec_hidden_states
from .windows import WINDOW_RADIUS, frame_windows

CLIP_LENGTH = 16


@dataclass
class AudioFeatures:
    """wav2vec2 features of one audio track, one row per video frame.

    hidden_states: [T_padded, L, H] float32 CPU (L = 12, H = 768 for wav2vec2-base);
        T_padded is `num_frames` rounded up to a multiple of `clip_length`, the
        tail coming from the zero-padded waveform exactly as upstream.
    num_frames: true frame count, ceil(seconds * fps): trim the video to it.
    Windows are built on demand (`clip_windows`) because [T,5,L,H] is 5x the size.
    """
    hidden_states: torch.Tensor
    num_frames: int
    fps: float
    clip_length: int = CLIP_LENGTH
    sample_rate: int = TARGET_SAMPLE_RATE
    waveform_16k: torch.Tensor | None = None  # mono 16 kHz input to the normalisation (after separation)
    source_audio: dict | None = None  # the original ComfyUI AUDIO, for muxing the final video
    vocals_separated: bool = False
    info: dict = field(default_factory=dict)  # how it was computed (model path, chunked, ...)

    @property
    def padded_frames(self) -> int:
        return self.hidden_states.shape[0]

    @property
    def num_clips(self) -> int:
        return math.ceil(self.padded_frames / self.clip_length)

    def clip_windows(self, clip: int) -> torch.Tensor:
        """Windows of clip `clip`: [clip_length, 5, L, H] (= windows[16c:16c+16] upstream)."""
        if not 0 <= clip < self.num_clips:
            raise IndexError(f"clip {clip} out of range: these features have {self.num_clips} clips")
        start = clip * self.clip_length
        return frame_windows(self.hidden_states, start, start + self.clip_length)

    @property
    def windows(self) -> torch.Tensor:
        """All windows [T_padded, 5, L, H]; materialises 5x `hidden_states`, prefer `clip_windows`."""
        return frame_windows(self.hidden_states)


def wav2vec_features(model, waveform_16k: torch.Tensor, fps: float = 25.0, clip_length: int = CLIP_LENGTH,
                     do_normalize: bool = True, whole_clip_max_seconds: float = WHOLE_CLIP_MAX_SECONDS,
                     progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, int, bool]:
    """Mono 16 kHz [N] -> (hidden [T_padded, L, H] float32 CPU, true T, chunked?).

    clip_length 0 skips the padding (upstream's `get_embedding`, used by tests).
    Audio longer than `whole_clip_max_seconds` goes through the chunked path.
    """
    x = normalize_waveform(waveform_16k) if do_normalize else waveform_16k.float()
    num_frames = frame_count(x.numel(), fps)
    chunked = x.numel() / TARGET_SAMPLE_RATE > whole_clip_max_seconds  # judged on the audio, not the padding
    x, padded = pad_to_clips(x, num_frames, fps, clip_length)
    if chunked:
        hidden = chunked_hidden_states(model, x, padded, fps, progress=progress)
    else:
        hidden = wav2vec_hidden_states(model, x, padded).float().cpu()
        if progress is not None:
            progress(1, 1)
    return hidden, num_frames, chunked


def encode_audio(bundle, waveform, sample_rate, fps: float = 25.0, clip_length: int = CLIP_LENGTH,
                 source_audio: dict | None = None, separator: Callable | None = None,
                 progress: Callable[[int, int], None] | None = None, name: str = "audio") -> AudioFeatures:
    """Waveform [C,T] or [T] at any rate -> AudioFeatures (see module doc).

    bundle: a `Wav2Vec2Bundle` from `load_wav2vec2`.
    separator: optional `f(samples [C,T] float, rate) -> (vocals [C',T'], rate')`,
        e.g. `MdxVocalSeparator`; it runs on the original audio before resampling.
    """
    if clip_length < 1:
        raise ValueError(f"clip_length must be >= 1, got {clip_length}")
    samples, rate = validate_waveform(waveform, sample_rate, fps, name)
    if separator is not None:
        samples, rate = separator(samples, rate)
        name = f"{name} (vocals after separation)"
    mono = prepare_waveform(samples, rate, fps, name)
    hidden, num_frames, chunked = wav2vec_features(bundle.model, mono, fps, clip_length, bundle.do_normalize,
                                                   progress=progress)
    return AudioFeatures(hidden_states=hidden, num_frames=num_frames, fps=float(fps), clip_length=clip_length,
                         waveform_16k=mono, source_audio=source_audio, vocals_separated=separator is not None,
                         info={"wav2vec2": bundle.path, "chunked": chunked, "window_radius": WINDOW_RADIUS})
