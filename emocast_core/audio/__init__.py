"""Audio conditioning: waveform -> wav2vec2 features per video frame, as official EmoCAST computes them.

Main entry points:
- `load_wav2vec2(folder, device, dtype) -> Wav2Vec2Bundle` (cached);
- `encode_audio(bundle, waveform, sample_rate, fps=25, ...) -> AudioFeatures`;
- `MdxVocalSeparator.from_onnx(path)` for the optional Kim_Vocal_2 separation.
"""
from .chunked import WHOLE_CLIP_MAX_SECONDS, chunked_hidden_states
from .features import CLIP_LENGTH, AudioFeatures, encode_audio, wav2vec_features
from .loader import Wav2Vec2Bundle, clear_wav2vec2_cache, load_wav2vec2
from .normalize import normalize_waveform
from .separation import KIM_VOCAL_2, SEPARATOR_FILE, MdxParams, MdxVocalSeparator, onnxruntime_available
from .waveform import TARGET_SAMPLE_RATE, prepare_waveform, validate_waveform
from .wav2vec import frame_count, pad_to_clips, wav2vec_hidden_states
from .windows import frame_windows

__all__ = [
    "AudioFeatures", "CLIP_LENGTH", "KIM_VOCAL_2", "MdxParams", "MdxVocalSeparator", "SEPARATOR_FILE",
    "TARGET_SAMPLE_RATE", "WHOLE_CLIP_MAX_SECONDS", "Wav2Vec2Bundle", "chunked_hidden_states",
    "clear_wav2vec2_cache", "encode_audio", "frame_count", "frame_windows", "load_wav2vec2",
    "normalize_waveform", "onnxruntime_available", "pad_to_clips", "prepare_waveform", "validate_waveform",
    "wav2vec_features", "wav2vec_hidden_states",
]
