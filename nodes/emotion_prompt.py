"""EmoCAST Emotion Prompt: emotive text (or a keyframed schedule) → CLIP embeddings.

Output EMOCAST_EMOTION is an `emocast_core.text.EmotionConditioning`.
"""
import torch
from comfy_api.latest import io

import comfy.model_management as mm

from ..emocast_core.text import PRESET_NAMES, encode_emotion, load_clip_text
from . import sockets
from .clip_text_source import ComfyClipTextEncoder
from .model_folders import list_model_dirs, resolve_model_dir

USE_CLIP = "(use clip input)"
CLIP_L_HIDDEN = 768  # what the EmoCAST UNet cross-attends to; tests shrink it


class EmotionPromptEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EmotionPromptEncode",
            display_name="EmoCAST Emotion Prompt",
            category="EmoCAST/conditioning",
            description="Encodes the emotion text with CLIP-L exactly as official EmoCAST does (final layer, "
                        "no prompt weighting, 77-token limit); keyframes let the emotion change over time.",
            inputs=[
                io.Combo.Input("preset", options=["custom", *PRESET_NAMES], default="custom",
                               tooltip="A MEAD emotion as a ready-made sentence, or 'custom' to use the prompt."),
                io.String.Input("prompt", multiline=True, dynamic_prompts=False,  # `|` is our separator
                                default="A person is talking with happy emotion.",
                                tooltip="Used when preset is 'custom': one emotion, or keyframes such as "
                                        "'0s: calm and gentle | 2.5s: furious, shouting'. No (word:1.2) "
                                        "weighting; at most 77 CLIP tokens per emotion."),
                io.Float.Input("transition_seconds", default=0.5, min=0.0, max=30.0, step=0.05,
                               tooltip="Length of the blend into each keyframe's emotion, ending at its time "
                                       "(0: a hard cut). Unused with a single emotion."),
                io.Clip.Input("clip", optional=True,
                              tooltip="The CLIP of an SD1.5 checkpoint (its CLIP-L is the official text encoder). "
                                      "Used when text_encoder is '(use clip input)'; CLIPSetLastLayer is ignored."),
                io.Combo.Input("text_encoder", options=[USE_CLIP, *list_model_dirs("text_encoders")],
                               default=USE_CLIP,
                               tooltip="A Hugging Face CLIP text folder in models/text_encoders/ "
                                       "(clip-vit-large-patch14 for the official weights, or a demo model's own "
                                       "small encoder; safetensors), or the clip input (CLIP-L)."),
            ],
            outputs=[sockets.Emotion.Output(display_name="emotion")],
        )

    @classmethod
    def execute(cls, preset, prompt, transition_seconds, text_encoder, clip=None) -> io.NodeOutput:
        schedule = prompt if preset == "custom" else preset
        encoder = text_encoder_for(text_encoder, clip)
        emotion = encode_emotion(schedule, encoder, transition_seconds)
        return io.NodeOutput(emotion)


def text_encoder_for(text_encoder: str, clip):
    """The text source a node chose: a models/text_encoders folder, else the connected ComfyUI CLIP."""
    if text_encoder != USE_CLIP:
        path = resolve_model_dir("text_encoders", text_encoder, input_name="text_encoder")
        # Any width: small demo models bring their own encoder; the sampler checks it against the model.
        return load_clip_text(path, device=mm.text_encoder_device(), dtype=torch.float32, expected_hidden=None)
    if clip is None:
        raise ValueError(f"clip: not connected, and text_encoder is {USE_CLIP!r}. Connect a CLIP (e.g. from "
                         "Load Checkpoint with SD1.5) or choose a folder of models/text_encoders/ in text_encoder.")
    return ComfyClipTextEncoder(clip, expected_hidden=CLIP_L_HIDDEN)
