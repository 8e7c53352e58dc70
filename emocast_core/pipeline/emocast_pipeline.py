"""The one entry to generation: a prepared portrait, audio features and an emotion -> video frames.

Shaped like a diffusers pipeline: `check_inputs` says what does not fit the model
before anything runs, `__call__` builds the request and generates clip after clip
(`clips` hands the clips over one at a time instead: long videos in flat memory).
The sampler node, the demo model, the toy benchmark and `emocast_core.bench` all
come through here.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from ..models import EmoCASTNet
from .talking_head import ProgressFn, TalkingHeadRequest, generate_talking_head, iter_talking_head
from .vae import LatentCodec


class EmoCASTPipeline:
    def __init__(self, net: EmoCASTNet, codec: LatentCodec, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.net, self.codec, self.device, self.dtype = net, codec, torch.device(device), dtype

    def check_inputs(self, portrait, audio_features, emotion, steps: int, guidance: float) -> None:
        """Refuse inputs made for another model, naming the input and what to do."""
        cfg = self.net.config
        layers, channels = audio_features.hidden_states.shape[1:]
        if (layers, channels) != (cfg.audio_layers, cfg.audio_channels):
            raise ValueError(
                f"audio_features: the audio features are {layers} layers x {channels} channels but the model "
                f"expects {cfg.audio_layers} x {cfg.audio_channels}; encode the audio with the wav2vec2 model "
                "that goes with it")
        if emotion.cond.shape[-1] != cfg.cross_attention_dim:
            raise ValueError(
                f"emotion: the emotion text is {emotion.cond.shape[-1]}-wide but the model expects "
                f"{cfg.cross_attention_dim}; encode it with the text encoder that goes with the model "
                "(CLIP ViT-L/14 for the official weights)")
        if portrait.face_embedding.shape[-1] != cfg.face_embed_dim:
            raise ValueError(f"portrait: face embedding of {portrait.face_embedding.shape[-1]} values, "
                             f"the model expects {cfg.face_embed_dim}; prepare it with EmoCAST Portrait Prep")
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if not guidance > 0:
            raise ValueError(f"cfg must be above 0, got {guidance}")

    def request(self, portrait, audio_features, emotion, steps: int = 40, guidance: float = 3.5, seed: int = 42,
                motion_scale: tuple = (1.0, 1.0, 1.0)) -> TalkingHeadRequest:
        """The whole-video request: keyframed emotion becomes one text embedding per (padded) frame."""
        audio = audio_features
        padded = audio.num_clips * audio.clip_length
        per_frame = None if emotion.is_constant else emotion.per_frame(padded, audio.fps)
        return TalkingHeadRequest(
            reference=portrait.image, face_embedding=portrait.face_embedding, face_region=portrait.face_region,
            mask_levels=portrait.mask_levels_for(self.net.config.latent_factor), audio=audio,
            text_cond=emotion.cond[:1], text_uncond=emotion.uncond, emotion_per_frame=per_frame,
            steps=steps, guidance=guidance, seed=seed, motion_scale=tuple(motion_scale))

    @torch.no_grad()
    def __call__(self, portrait, audio_features, emotion, *, steps: int = 40, guidance: float = 3.5, seed: int = 42,
                 motion_scale: tuple = (1.0, 1.0, 1.0), on_step: ProgressFn | None = None,
                 before_clip: Callable[[int], None] | None = None,
                 after_clip: Callable[[int], None] | None = None) -> torch.Tensor:
        """uint8 frames [num_frames, S, S, 3] on the CPU, as many as the audio has at its fps.

        `portrait`: a Portrait (emocast_core.face); `audio_features`: AudioFeatures (emocast_core.audio);
        `emotion`: EmotionConditioning (emocast_core.text).  The defaults are the official sampler's.
        """
        self.check_inputs(portrait, audio_features, emotion, steps, guidance)
        req = self.request(portrait, audio_features, emotion, steps, guidance, seed, motion_scale)
        return generate_talking_head(self.net, self.codec, req, device=self.device, dtype=self.dtype,
                                     on_step=on_step, before_clip=before_clip, after_clip=after_clip)

    def clips(self, portrait, audio_features, emotion, *, steps: int = 40, guidance: float = 3.5, seed: int = 42,
              motion_scale: tuple = (1.0, 1.0, 1.0), on_step: ProgressFn | None = None,
              before_clip: Callable[[int], None] | None = None,
              after_clip: Callable[[int], None] | None = None) -> Iterator[torch.Tensor]:
        """The same frames as `__call__`, one clip at a time (uint8 [<= 16, S, S, 3] each, in order)."""
        self.check_inputs(portrait, audio_features, emotion, steps, guidance)
        req = self.request(portrait, audio_features, emotion, steps, guidance, seed, motion_scale)
        return iter_talking_head(self.net, self.codec, req, device=self.device, dtype=self.dtype,
                                 on_step=on_step, before_clip=before_clip, after_clip=after_clip)
