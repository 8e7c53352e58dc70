"""EmoCAST Emotion Prompt: emotive text (or a keyframed schedule) → CLIP embeddings.

Output EMOCAST_EMOTION is an `emocast_core.text.EmotionConditioning`.
"""
from comfy_api.latest import io

from ..emocast_core.text import PRESET_NAMES, encode_emotion
from . import sockets
from .clip_text_source import USE_CLIP, text_encoder_for
from .model_folders import list_model_dirs



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
