"""Natural-language captions for the synthetic talking-face set, with a train / held-out split.

Each caption is one of `TEMPLATES` filled with one class's words (`WORDS`:
adjectives, adverbs, nouns, facial cues) and a subject.  The split is by
template: template i is **held out** when i % 4 == 3, so held-out captions
are phrasings (sentence structures) never seen in training, built from the
same vocabulary.  `captions(emotion, split)` lists them in a fixed order
(48 per class: 36 training, 12 held out).

Every caption names its class by words that `training.sampling.classify_caption`
maps to that class or to none, never to another class (a test checks it).
"""
from __future__ import annotations

import itertools

SUBJECTS = ("A person", "A man", "A woman", "Someone", "The speaker", "A young man",
            "An older woman", "The presenter")
VERBS = ("is talking", "speaks", "talks", "is speaking", "says a sentence", "reads a line")

# adjectives, adverbs, nouns, cues (participial phrases)
WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "neutral": (("neutral", "calm", "composed", "expressionless"),
                ("calmly", "evenly", "plainly", "matter-of-factly"),
                ("a neutral expression", "a calm face", "composure", "an impassive look"),
                ("keeping a straight face", "showing no feeling", "with a relaxed face", "staying calm")),
    "happy": (("happy", "cheerful", "joyful", "delighted"),
              ("happily", "cheerfully", "joyfully", "gladly"),
              ("happiness", "joy", "delight", "a cheerful mood"),
              ("smiling", "grinning broadly", "beaming with joy", "with a big smile")),
    "sad": (("sad", "sorrowful", "gloomy", "unhappy"),
            ("sadly", "sorrowfully", "gloomily", "mournfully"),
            ("sadness", "sorrow", "grief", "a heavy heart"),
            ("close to tears", "with drooping lips", "looking sad and down", "with a sorrowful face")),
    "surprised": (("surprised", "astonished", "amazed", "shocked"),
                  ("in surprise", "in astonishment", "in amazement", "with a shocked gasp"),
                  ("surprise", "astonishment", "amazement", "shock"),
                  ("eyes wide open", "eyebrows shooting up", "with a surprised gasp", "jaw dropped in amazement")),
    "fearful": (("fearful", "scared", "afraid", "terrified"),
                ("fearfully", "nervously", "anxiously", "in a frightened way"),
                ("fear", "anxiety", "terror", "panic"),
                ("eyes wide with fear", "brows pulled up in fear", "looking scared", "trembling with anxiety")),
    "disgusted": (("disgusted", "repulsed", "revolted", "grossed out"),
                  ("in disgust", "with revulsion", "disgustedly", "with a disgusted grimace"),
                  ("disgust", "revulsion", "repulsion", "nausea"),
                  ("wrinkling the nose in disgust", "upper lip curled in disgust", "looking repulsed",
                   "grimacing with revulsion")),
    "angry": (("angry", "furious", "enraged", "irritated"),
              ("angrily", "furiously", "in a rage", "irritably"),
              ("anger", "fury", "rage", "irritation"),
              ("frowning hard in anger", "glaring furiously", "brows drawn down in anger", "jaw tight with rage")),
    "contemptuous": (("contemptuous", "scornful", "disdainful", "smug"),
                     ("contemptuously", "scornfully", "disdainfully", "smugly"),
                     ("contempt", "scorn", "disdain", "smugness"),
                     ("with a one-sided smirk", "sneering", "with a scornful smirk", "raising one lip corner in disdain")),
}

# {s} subject, {v} verb, {a} adjective ({aa}: with its article), {d} adverb, {n} noun, {c} cue
TEMPLATES = (
    "{s} {v} with {a} emotion.",
    "{s} {v} {d}.",
    "{s} {v} {d}, {c}.",
    "{S}, {s_l} {v}.",  # held out
    "{s} {v} in a {a} voice, {c}.",
    "{s} {v} with {n}.",
    "{s} looks {a} while talking.",
    "Talking head of {aa} speaker, {c}.",  # held out
    "{s} {v} and seems {a}.",
    "{s}, {c}, {v} {d}.",
    "{AA} face talking to the camera.",
    "With {n} in the voice, {s_l} {v}.",  # held out
)


def template_split(index: int) -> str:
    return "heldout" if index % 4 == 3 else "train"


def _fill(template: str, emotion: str, k: int) -> str:
    adj, adv, noun, cue = WORDS[emotion]
    subject = SUBJECTS[k % len(SUBJECTS)]
    cue_k = cue[k % len(cue)]
    a = adj[k % 4]
    aa = ("an " if a[0] in "aeiou" else "a ") + a
    return template.format(s=subject, s_l=subject[0].lower() + subject[1:], v=VERBS[k % len(VERBS)], a=a, aa=aa,
                           AA=aa.capitalize(), d=adv[(k + 1) % 4], n=noun[(k + 2) % 4], c=cue_k,
                           S=cue_k[0].upper() + cue_k[1:])


def caption_table(emotion: str) -> list[tuple[int, str]]:
    """(template index, caption) pairs of a class, 4 fills per template, duplicates removed."""
    if emotion not in WORDS:
        raise ValueError(f"emotion must be one of {', '.join(WORDS)}, got {emotion!r}")
    seen, table = set(), []
    for t, k in itertools.product(range(len(TEMPLATES)), range(4)):
        text = _fill(TEMPLATES[t], emotion, k + 3 * t)
        if text.lower() not in seen:
            seen.add(text.lower())
            table.append((t, text))
    return table


def captions(emotion: str, split: str = "train") -> list[str]:
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return [text for t, text in caption_table(emotion) if template_split(t) == split]
