"""Emotion text: presets, CLIP tokenisation and encoding, keyframed conditioning."""
from .clip_loader import CLIP_L_HIDDEN, ClipTextEncoder, clear_cache, load_clip_text, missing_files
from .conditioning import EASES, EmotionConditioning, TextEncoder, encode_emotion
from .presets import EMOTION_PRESETS, PRESET_NAMES, expand_preset, preset_name
from .schedule import Keyframe, parse_schedule
from .tokens import CLIP_VOCAB_SIZE, MAX_TOKENS, check_tokenizer, count_tokens, token_ids

__all__ = [
    "CLIP_L_HIDDEN", "CLIP_VOCAB_SIZE", "ClipTextEncoder", "EASES", "EMOTION_PRESETS", "EmotionConditioning",
    "Keyframe", "MAX_TOKENS", "PRESET_NAMES", "TextEncoder", "check_tokenizer", "clear_cache",
    "count_tokens", "encode_emotion", "expand_preset", "load_clip_text", "missing_files", "parse_schedule",
    "preset_name", "token_ids",
]
