"""EmoCAST Audio Encode: ComfyUI AUDIO -> wav2vec2 features per video frame.

Output EMOCAST_AUDIO is an `emocast_core.audio.AudioFeatures` (hidden states
[T_padded, 12, 768] on the CPU, true frame count, fps, the original AUDIO for
muxing).  The wav2vec2 is one of ComfyUI's loaded models (nodes/memory.py):
it runs on the compute device and ComfyUI offloads it when memory is needed.
"""
import torch
from comfy_api.latest import io

import comfy.model_management as mm
import comfy.utils

from ..emocast_core.audio import SEPARATOR_FILE, MdxVocalSeparator, encode_audio, load_wav2vec2
from ..emocast_core.audio.waveform import check_sample_rate
from . import sockets
from .memory import free_for, load_wav2vec2_for_inference
from .model_folders import NO_MODEL, list_model_dirs, separator_path, wav2vec_folder

_BAR_STEPS = 1000
_SEPARATOR_BYTES = 2 * 2**30  # Kim_Vocal_2 under onnxruntime's CUDA provider: weights, arena and one chunk


class AudioEmotiveEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        models = list_model_dirs("wav2vec2") or [NO_MODEL]
        return io.Schema(
            node_id="AudioEmotiveEncode",
            display_name="EmoCAST Audio Encode",
            category="EmoCAST/conditioning",
            description="Speech -> wav2vec2 features per video frame, as official EmoCAST computes them "
                        "(optional vocal separation, 16 kHz mono, all 12 layers, padded to 16-frame clips).",
            inputs=[
                io.Audio.Input("audio", tooltip="The driving speech: batch item 0, mixed to mono and resampled to "
                                                "16 kHz. Audio over 60 s is encoded in overlapping 30 s chunks."),
                io.Combo.Input("wav2vec_model", options=models, default=models[0],
                               tooltip="A Hugging Face wav2vec2 folder in models/wav2vec2/ (config.json, "
                                       "model.safetensors or pytorch_model.bin, preprocessor_config.json). "
                                       "EmoCAST uses facebook/wav2vec2-base-960h."),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, step=0.01,
                               tooltip="Frame rate of the video to generate: one feature row per frame. "
                                       "EmoCAST was trained at 25 fps; other rates change the lip timing."),
                io.Boolean.Input("separate_vocals", default=False,
                                 tooltip=f"Isolate the voice first with the MDX-Net model {SEPARATOR_FILE} (helps "
                                         "with music or noise under the speech). Needs onnxruntime and "
                                         f"models/audio_separator/{SEPARATOR_FILE}."),
            ],
            outputs=[sockets.AudioFeatures.Output(display_name="audio_features")],
        )

    @classmethod
    def execute(cls, audio, wav2vec_model, fps, separate_vocals) -> io.NodeOutput:
        waveform, rate = _first_item(audio)
        bundle = load_wav2vec2(wav2vec_folder(wav2vec_model), device=mm.unet_offload_device(),
                               dtype=torch.float32)
        device = mm.get_torch_device()
        bar = comfy.utils.ProgressBar(_BAR_STEPS)
        separator = None
        if separate_vocals:
            # An onnxruntime session is not a torch module ComfyUI could move: free room for it
            # first; it is dropped (and its memory returned) when this run ends.
            free_for(_SEPARATOR_BYTES, device)
            separator = MdxVocalSeparator.from_onnx(separator_path(), use_cuda=device.type == "cuda",
                                                    progress=_progress(bar, 0, _BAR_STEPS // 2))
        encode_span = (_BAR_STEPS // 2, _BAR_STEPS) if separate_vocals else (0, _BAR_STEPS)
        source = {"waveform": audio["waveform"][:1], "sample_rate": rate}
        load_wav2vec2_for_inference(bundle.model, waveform.shape[-1] / rate)
        features = encode_audio(bundle, waveform, rate, fps=fps, source_audio=source,
                                separator=separator, progress=_progress(bar, *encode_span))
        bar.update_absolute(_BAR_STEPS)
        return io.NodeOutput(features)


def _first_item(audio) -> tuple[torch.Tensor, int]:
    """Batch item 0 of a ComfyUI AUDIO dict, with the dict itself checked."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise ValueError("audio: expected a ComfyUI AUDIO ({'waveform': [B,C,T], 'sample_rate': int}), "
                         f"got {type(audio).__name__}")
    waveform = audio["waveform"]
    if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3:
        shape = list(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise ValueError(f"audio: waveform must be a tensor [batch, channels, samples], got {shape}")
    if waveform.shape[0] == 0:
        raise ValueError("audio: the AUDIO batch is empty")
    return waveform[0], check_sample_rate(audio["sample_rate"], "audio")


def _progress(bar, start: int, stop: int):
    """A core progress callback: honour Cancel, and map (done, total) onto bar[start:stop]."""
    def report(done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(start + (stop - start) * done // max(total, 1))
    return report

