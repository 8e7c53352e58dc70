"""EmoCASTSampler: the official sampling loop over the whole audio, every frame returned as an IMAGE.

For long videos use EmoCAST Sampler to Video (nodes/sampler_video.py): it keeps one clip in memory.
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from .sampling import Sampling, sampling_inputs, trimmed_audio


class EmoCASTSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoCASTSampler",
            display_name="EmoCAST Sampler",
            category="EmoCAST/sampling",
            description="Generates the talking-portrait frames: DDIM with classifier-free guidance, "
                        "16 frames per clip, each clip continuing from the last two frames of the previous one. "
                        "Every frame stays in memory: for long videos use EmoCAST Sampler to Video.",
            inputs=sampling_inputs(),
            outputs=[
                io.Image.Output(display_name="images"),
                io.Audio.Output(display_name="audio"),
                io.Float.Output(display_name="fps"),
            ],
        )

    @classmethod
    def execute(cls, model, portrait, audio_features, emotion, seed, steps, cfg, pose_weight, face_weight,
                lip_weight, paste_back, feather, vae=None) -> io.NodeOutput:
        run = Sampling(model, portrait, audio_features, emotion, seed, steps, cfg,
                       (pose_weight, face_weight, lip_weight), paste_back, feather, vae)
        width, height = run.frame_size
        # Filled clip by clip: one copy of the video, never a list plus its concatenation.
        images = torch.empty(audio_features.num_frames, height, width, 3)
        start = 0
        for clip in run.clips():
            images[start:start + len(clip)] = clip
            start += len(clip)
        audio = trimmed_audio(audio_features, len(images), audio_features.fps)
        return io.NodeOutput(images, audio, float(audio_features.fps))
