"""`--mode pipeline`: a whole video for some seconds of audio (VAE, clip chaining and mp4 writing included).

The inputs are random, shaped as the nodes make them: a picture with its face and
lip boxes given as masks (no face models needed), audio features, a source
recording to mux and an emotion text.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from ..audio.features import AudioFeatures
from ..config import EmoCASTConfig
from ..face import masks_only_models, prepare_portrait
from ..models import EmoCASTNet
from ..pipeline import SD_VAE_ARCHITECTURE, DiffusersVAECodec, EmoCASTPipeline
from ..text import EmotionConditioning
from ..video import Mp4Stream
from ..weights import DTYPES, load_checkpoint
from .common import peak_rss_gb, synchronize

FPS = 25.0
SAMPLE_RATE = 16000


def random_inputs(cfg: EmoCASTConfig, size: int, seconds: float, source: tuple[int, int] | None = None):
    """(portrait, audio features, emotion) for `seconds` of audio; `source` (width, height): the picture the
    portrait is cropped from (for paste-back), else a `size`² picture used whole."""
    g = torch.Generator().manual_seed(0)
    frames = max(1, round(seconds * FPS))
    padded = -(-frames // cfg.clip_length) * cfg.clip_length
    wave = torch.randn(1, 1, round(seconds * SAMPLE_RATE), generator=g) * 0.1
    audio = AudioFeatures(torch.randn(padded, cfg.audio_layers, cfg.audio_channels, generator=g), frames, FPS,
                          source_audio={"waveform": wave, "sample_rate": SAMPLE_RATE})
    width, height = source or (size, size)
    side = min(width, height) // 3 if source else size
    x0, y0 = (width - side) // 2, (height - side) // 2
    face, lip = torch.zeros(height, width), torch.zeros(height, width)
    face[y0 + side // 8: y0 + side - side // 8, x0 + side // 6: x0 + side - side // 6] = 1
    lip[y0 + side * 5 // 8: y0 + side * 3 // 4, x0 + side * 3 // 8: x0 + side - side * 3 // 8] = 1
    portrait = prepare_portrait(torch.rand(height, width, 3, generator=g), masks_only_models(), allow_no_face=True,
                                crop_scale=2.0 if source else 0, face_mask=face, lip_mask=lip, size=size)
    portrait = replace(portrait, face_embedding=torch.randn(1, cfg.face_embed_dim, generator=g))
    text = torch.randn(2, cfg.text_tokens, cfg.cross_attention_dim, generator=g)
    emotion = EmotionConditioning(prompts=["random"], times_s=[0.0], cond=text[:1], uncond=text[1:])
    return portrait, audio, emotion


def load_pipeline(config: str, checkpoint: str | None, device, dtype) -> tuple[EmoCASTPipeline, EmoCASTConfig]:
    """A checkpoint that bundles its autoencoder (the demo model), else random weights of `config`
    with a random SD1.5-architecture VAE."""
    from diffusers import AutoencoderKL

    if checkpoint:
        net, vae = load_checkpoint(checkpoint, dtype=dtype, device=device)
        if vae is None:
            raise SystemExit(f"--checkpoint {checkpoint}: bundles no autoencoder; benchmark it without")
        codec = DiffusersVAECodec(vae.eval(), scale=vae.config.scaling_factor)
    else:
        net = EmoCASTNet(getattr(EmoCASTConfig, config)()).to(device, dtype)
        codec = DiffusersVAECodec(AutoencoderKL(**SD_VAE_ARCHITECTURE).to(device, dtype).eval())
    net = net.eval().requires_grad_(False)
    return EmoCASTPipeline(net, codec, device=device, dtype=dtype), net.config


class _PartTimer:
    """Seconds per part of each clip: hooks on the networks, wrappers on the codec (this pipe only)."""

    PARTS = ("reference", "denoise_steps", "decode", "encode", "write")

    def __init__(self, pipe: EmoCASTPipeline, device: torch.device):
        self.device, self.clip = device, {}
        self.steps: list[float] = []
        self._start: dict[str, float] = {}
        for name, module in (("reference", pipe.net.reference_unet), ("denoise_steps", pipe.net.denoising_unet)):
            module.register_forward_pre_hook(lambda *_, n=name: self.begin(n))
            module.register_forward_hook(lambda *_, n=name: self.end(n))
        for name in ("encode", "decode"):
            original = getattr(pipe.codec, name)

            def timed(x, n=name, f=original):
                self.begin(n)
                try:
                    return f(x)
                finally:
                    self.end(n)
            setattr(pipe.codec, name, timed)

    def begin(self, name: str) -> None:
        synchronize(self.device)
        self._start[name] = time.perf_counter()

    def end(self, name: str) -> None:
        synchronize(self.device)
        seconds = time.perf_counter() - self._start.pop(name)
        self.clip[name] = self.clip.get(name, 0.0) + seconds
        if name == "denoise_steps":
            self.steps.append(seconds)

    def take(self) -> dict:
        clip, steps = self.clip, self.steps
        self.clip, self.steps = {}, []
        out = {part: round(clip.get(part, 0.0), 4) for part in self.PARTS}
        out["median_step_s"] = round(statistics.median(steps), 4) if steps else 0.0
        return out


def run_pipeline(config: str, device: str, dtype: str, size: int, seconds: float, steps: int,
                 checkpoint: str | None = None) -> dict:
    """A whole video streamed into an mp4, timed part by part and clip by clip: the first (cold) clip
    apart from the steady ones, and the time per generated frame apart from per delivered frame
    (whole clips are generated; the last one's padding is thrown away)."""
    device, torch_dtype = torch.device(device), DTYPES[dtype]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    pipe, cfg = load_pipeline(config, checkpoint, device, torch_dtype)
    portrait, audio, emotion = random_inputs(cfg, size, seconds)
    timer = _PartTimer(pipe, device)
    clips = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        with Mp4Stream(os.path.join(folder, "bench.mp4"), audio.fps, size, size, total_frames=audio.num_frames,
                       audio=audio.source_audio["waveform"][0], sample_rate=SAMPLE_RATE) as video:
            start = time.perf_counter()
            for frames in pipe.clips(portrait, audio, emotion, steps=steps):
                timer.begin("write")
                video.write(frames)
                timer.end("write")
                clips.append({"total_s": round(time.perf_counter() - start, 4), **timer.take()})
                start = time.perf_counter()
    elapsed = time.perf_counter() - t0
    for clip in clips:  # text/audio/face conditioning, noise, scheduler: what no part above covers
        clip["other_s"] = round(clip["total_s"] - sum(clip[p] for p in _PartTimer.PARTS), 4)
    generated = audio.num_clips * audio.clip_length
    steady = clips[1:] or clips
    result = {
        "mode": "pipeline", "config": checkpoint or config,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": dtype, "size": size, "seconds_audio": seconds, "frames": audio.num_frames,
        "generated_frames": generated, "padding_frames": generated - audio.num_frames, "steps": steps,
        "total_s": round(elapsed, 2), "s_per_frame": round(elapsed / audio.num_frames, 4),
        "s_per_generated_frame": round(elapsed / generated, 4),
        "cold_clip": clips[0],
        "steady_clip": {key: round(statistics.median(c[key] for c in steady), 4) for key in clips[0]},
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "versions": {"torch": torch.__version__, "diffusers": _version("diffusers"), "av": _version("av")},
    }
    if device.type == "cuda":
        result["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
