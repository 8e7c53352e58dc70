"""EmoCASTSampler: the official sampling loop over the whole audio, clip after clip."""
from __future__ import annotations

import math

import comfy.model_management as mm
import comfy.utils
from comfy_api.latest import io

from ..emocast_core.pipeline import DiffusersVAECodec, TalkingHeadRequest, generate_talking_head
from . import sockets
from .vae_codec import ComfyVAECodec

MAX_SEED = 0xFFFFFFFFFFFFFFFF


def _check_compatible(model, portrait, audio, emotion) -> None:
    cfg = model.net.config
    layers, channels = audio.hidden_states.shape[1:]
    if (layers, channels) != (cfg.audio_layers, cfg.audio_channels):
        raise ValueError(
            f"EmoCAST Sampler: the audio features are {layers} layers x {channels} channels but the model expects "
            f"{cfg.audio_layers} x {cfg.audio_channels}; encode the audio with the wav2vec2 model that goes with it")
    if emotion.cond.shape[-1] != cfg.cross_attention_dim:
        raise ValueError(
            f"EmoCAST Sampler: the emotion text is {emotion.cond.shape[-1]}-wide but the model expects "
            f"{cfg.cross_attention_dim} (CLIP ViT-L/14 for the official weights)")
    if portrait.face_embedding.shape[-1] != cfg.face_embed_dim:
        raise ValueError(f"EmoCAST Sampler: face embedding of {portrait.face_embedding.shape[-1]} values, "
                         f"the model expects {cfg.face_embed_dim}")


def _codec(model, vae):
    """The connected ComfyUI VAE, else the autoencoder the checkpoint bundles."""
    if vae is not None:
        return ComfyVAECodec(vae)
    if model.vae is not None:
        return DiffusersVAECodec(model.vae, scale=model.vae.config.scaling_factor)
    raise ValueError("EmoCAST Sampler: connect a VAE (sd-vae-ft-mse through Load VAE); this checkpoint does not "
                     "bundle an autoencoder")


def trimmed_audio(audio, num_frames: int, fps: float) -> dict | None:
    """The original AUDIO cut to the video's length (what gets muxed)."""
    source = audio.source_audio
    if source is None:
        return None
    samples = math.ceil(num_frames / fps * source["sample_rate"])
    return {"waveform": source["waveform"][..., :samples], "sample_rate": source["sample_rate"]}


class EmoCASTSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoCASTSampler",
            display_name="EmoCAST Sampler",
            category="EmoCAST/sampling",
            description="Generates the talking-portrait frames: DDIM with classifier-free guidance, "
                        "16 frames per clip, each clip continuing from the last two frames of the previous one.",
            inputs=[
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
            ],
            outputs=[
                io.Image.Output(display_name="images"),
                io.Audio.Output(display_name="audio"),
                io.Float.Output(display_name="fps"),
            ],
        )

    @classmethod
    def execute(cls, model, portrait, audio_features, emotion, seed, steps, cfg, pose_weight, face_weight,
                lip_weight, paste_back, feather, vae=None) -> io.NodeOutput:
        _check_compatible(model, portrait, audio_features, emotion)
        codec = _codec(model, vae)
        audio = audio_features
        padded = audio.num_clips * audio.clip_length
        per_frame = None if emotion.is_constant else emotion.per_frame(padded, audio.fps)
        request = TalkingHeadRequest(
            reference=portrait.image,
            face_embedding=portrait.face_embedding,
            face_region=portrait.face_region,
            mask_levels=portrait.mask_levels_for(model.net.config.latent_factor),
            audio=audio,
            text_cond=emotion.cond[:1],
            text_uncond=emotion.uncond,
            emotion_per_frame=per_frame,
            steps=steps,
            guidance=cfg,
            seed=seed,
            motion_scale=(pose_weight, face_weight, lip_weight),
        )
        total = audio.num_clips * steps
        bar = comfy.utils.ProgressBar(total)

        def on_step(done: int, _total: int) -> None:
            mm.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)

        def before_clip(_clip: int) -> None:
            # The VAE may have pushed the networks off the GPU between clips.
            model.load_to_device()

        device = model.load_to_device()
        if model.vae is not None and vae is None:
            model.vae.to(device)
        frames = generate_talking_head(
            model.net, codec, request, device=device, dtype=model.dtype, on_step=on_step,
            before_clip=before_clip, after_clip=lambda _c: mm.soft_empty_cache(),
        )
        images = frames.float() / 255
        if paste_back:
            from ..emocast_core.face import paste_back as paste

            images = paste(portrait.source_image, images, portrait.crop, feather)
        return io.NodeOutput(images, trimmed_audio(audio, frames.shape[0], audio.fps), float(audio.fps))
