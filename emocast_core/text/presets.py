"""The eight MEAD emotions as ready-made prompts.

The sentences follow the paper's example, "A person is talking with happy
emotion.", so they stay close to the captions the model was trained on, and
add one short facial cue each.  They are pack choices, not official text.
"""

EMOTION_PRESETS: dict[str, str] = {
    "neutral": "A person is talking with neutral emotion, calm and composed.",
    "happy": "A person is talking with happy emotion, smiling warmly.",
    "sad": "A person is talking with sad emotion, looking down and sorrowful.",
    "surprised": "A person is talking with surprised emotion, eyes wide open and eyebrows raised.",
    "fearful": "A person is talking with fearful emotion, looking scared and tense.",
    "disgusted": "A person is talking with disgusted emotion, wrinkling the nose.",
    "angry": "A person is talking with angry emotion, frowning and glaring.",
    "contemptuous": "A person is talking with contemptuous emotion, with a scornful half-smile.",
}

PRESET_NAMES: tuple[str, ...] = tuple(EMOTION_PRESETS)

# MEAD's three-letter labels (as in the official stage-2 validation list).
_MEAD_CODES = {"neu": "neutral", "hap": "happy", "sad": "sad", "sur": "surprised",
               "fea": "fearful", "dis": "disgusted", "ang": "angry", "con": "contemptuous"}


def preset_name(text: str) -> str | None:
    """The preset a text names (full name or MEAD code, any case), else None."""
    key = text.strip().lower()
    if key in EMOTION_PRESETS:
        return key
    return _MEAD_CODES.get(key)


def expand_preset(text: str) -> str:
    """A preset's sentence when `text` names one, else `text` itself (stripped)."""
    name = preset_name(text)
    return EMOTION_PRESETS[name] if name else text.strip()
