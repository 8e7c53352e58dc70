"""What the two sampler nodes share: their sampling inputs, the pipeline with ComfyUI's
model placement, progress and interrupt, and the audio to mux."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..emocast_core.pipeline import DiffusersVAECodec, EmoCASTPipeline
from . import sockets
from .vae_codec import ComfyVAECodec

MAX_SEED = 0xFFFFFFFFFFFFFFFF


def sampling_inputs() -> list:
    return [
        sockets.EmoCASTModel.Input("model", tooltip="From Load EmoCAST."),
        io.Vae.Input("vae", optional=True, tooltip=(
            "The SD1.5 VAE the model was trained with: sd-vae-ft-mse (Load VAE). Optional only for "
            "checkpoints that bundle their own autoencoder (small demo models).")),
        sockets.Portrait.Input("portrait", tooltip="From EmoCAST Portrait Prep."),
        sockets.AudioFeatures.Input("audio_features", tooltip="From EmoCAST Audio Encode; its length sets the video's."),
        sockets.Emotion.Input("emotion", tooltip="From EmoCAST Emotion Prompt; keyframes change the emotion over time."),
        io.Int.Input("seed", default=42, min=0, max=MAX_SEED, control_after_generate=True,
                     tooltip="Noise seed. 42 reproduces the official script."),
        io.Int.Input("steps", default=40, min=1, max=200, tooltip="DDIM steps per clip (official: 40)."),
        io.Float.Input("cfg", default=3.5, min=1.0, max=20.0, step=0.1,
                       tooltip="Classifier-free guidance scale (official: 3.5)."),
        io.Float.Input("pose_weight", default=1.0, min=0.0, max=3.0, step=0.05,
                       tooltip="Strength of the audio on head pose and background (official: 1.0)."),
        io.Float.Input("face_weight", default=1.0, min=0.0, max=3.0, step=0.05,
                       tooltip="Strength of the audio on facial expression (official: 1.0)."),
        io.Float.Input("lip_weight", default=1.0, min=0.0, max=3.0, step=0.05,
                       tooltip="Strength of the audio on the lips (official: 1.0)."),
        io.Boolean.Input("paste_back", default=False, tooltip=(
            "Composite the generated face crop back into the original, uncropped image with a "
            "feathered edge. Off: output the model's square frames.")),
        io.Int.Input("feather", default=24, min=0, max=256, tooltip="Width of the paste-back blend edge, in pixels of the original image."),
    ]


@dataclass
class Sampling:
    """One sampler node's run: the node's widget values, ready to generate."""

    model: object
    portrait: object
    audio: object  # AudioFeatures
    emotion: object
    seed: int
    steps: int
    cfg: float
    motion_scale: tuple
    paste_back: bool
    feather: int
    vae: object = None

    def clips(self) -> Iterator[torch.Tensor]:
        """The video clip by clip as IMAGE-like float frames (pasted back when asked), with ComfyUI's
        progress bar, interrupt, model placement and cache release around each clip."""
        model, audio = self.model, self.audio
        pipe = EmoCASTPipeline(model.net, _codec(model, self.vae), dtype=model.dtype)
        pipe.check_inputs(self.portrait, audio, self.emotion, self.steps, self.cfg)  # before the GPU is touched
        device = pipe.device = model.load_to_device()
        if model.vae is not None and self.vae is None:
            model.vae.to(device)
        total = audio.num_clips * self.steps
        bar = comfy.utils.ProgressBar(total)

        def on_step(done: int, _total: int) -> None:
            mm.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)

        def before_clip(_clip: int) -> None:
            model.load_to_device()  # the VAE may have pushed the networks off the GPU between clips

        clips = pipe.clips(self.portrait, audio, self.emotion, steps=self.steps, guidance=self.cfg, seed=self.seed,
                           motion_scale=self.motion_scale, on_step=on_step, before_clip=before_clip,
                           after_clip=lambda _c: mm.soft_empty_cache())
        for frames in clips:
            images = frames.float() / 255
            if self.paste_back:
                from ..emocast_core.face import paste_back as paste

                images = paste(self.portrait.source_image, images, self.portrait.crop, self.feather)
            yield images

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the frames `clips` yields."""
        if self.paste_back:
            height, width = self.portrait.source_image.shape[:2]
            return int(width), int(height)
        return self.portrait.size, self.portrait.size


def _codec(model, vae):
    """The connected ComfyUI VAE, else the autoencoder the checkpoint bundles."""
    if vae is not None:
        return ComfyVAECodec(vae)
    if model.vae is not None:
        return DiffusersVAECodec(model.vae, scale=model.vae.config.scaling_factor)
    raise ValueError("vae: connect a VAE (sd-vae-ft-mse through Load VAE); this checkpoint does not "
                     "bundle an autoencoder")


def trimmed_audio(audio, num_frames: int, fps: float) -> dict | None:
    """The original AUDIO cut to the video's length (what gets muxed)."""
    source = audio.source_audio
    if source is None:
        return None
    samples = math.ceil(num_frames / fps * source["sample_rate"])
    return {"waveform": source["waveform"][..., :samples], "sample_rate": source["sample_rate"]}
