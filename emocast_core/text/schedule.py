"""Emotion keyframe schedules: `0s: calm and gentle | 2.5s: furious, shouting`.

docs/nodes.md (EmoCAST Emotion Prompt) defines the format for users;
`parse_schedule` and `EmotionConditioning.per_frame` implement it.
"""
import math
import re
from dataclasses import dataclass

from .presets import expand_preset

# A leading "2.5s:" / "2.5 s:" / "2.5:" (sign allowed so "-1s:" is an error, not text).
_TIME = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*s?\s*:(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Keyframe:
    time_s: float
    text: str    # as written (a preset name or free text)
    prompt: str  # what is tokenised: the preset sentence or the free text


def _segments(schedule: str) -> list[str]:
    """Split at `|`, and at line breaks whose next line starts with a TIME."""
    segments = []
    for piece in schedule.split("|"):
        current = None
        for line in piece.split("\n"):
            if current is None or _TIME.match(line):
                if current is not None:
                    segments.append(current)
                current = line
            else:
                current += "\n" + line
        segments.append(current)
    return segments


def parse_schedule(schedule: str) -> list[Keyframe]:
    """Keyframes of `schedule`, sorted by time; ValueError naming the bad segment."""
    if not schedule.strip():
        raise ValueError("emotion prompt is empty: write a description, a preset name or keyframes.")
    keyframes = []
    for i, segment in enumerate(_segments(schedule), start=1):
        match = _TIME.match(segment)
        if match:
            time_s, text = float(match.group(1)), match.group(2).strip()
            if not math.isfinite(time_s) or time_s < 0:
                raise ValueError(f"emotion schedule segment {i} {segment.strip()!r}: time must be >= 0 seconds.")
        elif i == 1:
            time_s, text = 0.0, segment.strip()
        else:
            raise ValueError(f"emotion schedule segment {i} {segment.strip()!r} has no time; "
                             f"write it as '<seconds>s: <text>', e.g. '2.5s: {segment.strip()}'.")
        if not text:
            raise ValueError(f"emotion schedule segment {i} {segment.strip()!r} has no text.")
        keyframes.append(Keyframe(time_s, text, expand_preset(text)))
    keyframes.sort(key=lambda k: k.time_s)
    for a, b in zip(keyframes, keyframes[1:]):
        if a.time_s == b.time_s:
            raise ValueError(f"emotion schedule has two keyframes at {a.time_s:g}s ({a.text!r}, {b.text!r}).")
    return keyframes
