"""Emotion-aware sampling: caption classes, weights, and the frequencies of 20k seeded draws."""
from collections import Counter

import pytest
import torch

from emocast_core.text.presets import EMOTION_PRESETS
from training.sampling import (EMOTIONS, UNKNOWN, EmotionAwareSampler, SamplingConfig, classify_caption,
                               emotion_class, sampling_weights)

DRAWS = 20_000


def chi_square(observed: list[int], expected_p: list[float]) -> float:
    n = sum(observed)
    return sum((o - n * p) ** 2 / (n * p) for o, p in zip(observed, expected_p))


# chi-square critical values at p = 0.001
CRITICAL = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 7: 24.32}


def test_presets_and_keywords_classify():
    for name, sentence in EMOTION_PRESETS.items():
        assert classify_caption(sentence) == name
    assert classify_caption("She looks unhappy and is crying.") == "sad"  # 'unhappy' is not 'happy'
    assert classify_caption("A man is FURIOUS, shouting.") == "angry"
    assert classify_caption("He made a speech.") is None  # 'made' is not 'mad'
    assert classify_caption("I wear a scarf.") is None
    # Most mentions win; ties go to the earliest mention.
    assert classify_caption("Watching a scary film, then smiling.") == "fearful"
    assert classify_caption("smiling, laughing, a bit scared") == "happy"
    assert classify_caption("A person talks.") is None


def test_labels_win_over_captions_and_bad_labels_are_named():
    assert emotion_class("hap", "angry caption") == "happy"
    assert emotion_class("Contemptuous") == "contemptuous"
    assert emotion_class(None, "no emotion words") == UNKNOWN
    with pytest.raises(ValueError, match="'joyous' is not one of"):
        emotion_class("joyous")


def test_weights_formulas():
    classes = ["happy"] * 6 + ["sad"] * 3 + ["angry"]
    flat = [0.0] * 10
    w = sampling_weights(classes, flat, SamplingConfig(class_balance=1.0))
    expected = torch.tensor([1 / (3 * 6)] * 6 + [1 / (3 * 3)] * 3 + [1 / 3], dtype=torch.float64)
    assert torch.allclose(w, expected)
    assert torch.allclose(sampling_weights(classes, flat, SamplingConfig(class_balance=0.0)),
                          torch.full((10,), 0.1, dtype=torch.float64))
    energies = [0.0, 1.0, 2.0, 0, 0, 0, 0, 0, 0, 0]
    w = sampling_weights(classes, energies, SamplingConfig(class_balance=1.0, energy_alpha=1.0, energy_eps=0.1))
    assert torch.isclose(w[:6].sum(), torch.tensor(1 / 3, dtype=torch.float64))  # class mass kept
    assert torch.isclose(w[2] / w[1], torch.tensor(2.1 / 1.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="finite and >= 0"):
        sampling_weights(classes, [-1.0] + flat[1:], SamplingConfig())


def test_balanced_draw_frequencies():
    # 5 classes with counts 10, 5, 3, 1, 1: natural frequencies differ wildly from uniform.
    classes = ["happy"] * 10 + ["sad"] * 5 + ["angry"] * 3 + ["neutral"] + [UNKNOWN]
    sampler = EmotionAwareSampler(sampling_weights(classes, [0.0] * 20, SamplingConfig(class_balance=1.0)), seed=7)
    keys = sampler.draw(DRAWS)
    by_class = Counter(classes[k.clip] for k in keys)
    order = ["happy", "sad", "angry", "neutral", UNKNOWN]
    observed = [by_class[c] for c in order]
    assert chi_square(observed, [0.2] * 5) < CRITICAL[4]
    assert chi_square(observed, [10 / 20, 5 / 20, 3 / 20, 1 / 20, 1 / 20]) > 1000  # clearly not natural
    # Inside a class, uniform (energy ignored): the 10 happy clips.
    happy = Counter(k.clip for k in keys if classes[k.clip] == "happy")
    assert chi_square([happy[i] for i in range(10)], [0.1] * 10) < 27.88  # df 9


def test_energy_weighted_frequencies():
    classes = ["happy"] * 4 + ["sad"] * 4
    energies = [0.0, 0.4, 0.9, 1.9, 0.0, 0.0, 0.0, 0.0]
    cfg = SamplingConfig(class_balance=1.0, energy_alpha=1.0, energy_eps=0.1)
    sampler = EmotionAwareSampler(sampling_weights(classes, energies, cfg), seed=3)
    counts = Counter(k.clip for k in sampler.draw(DRAWS))
    within = [0.1, 0.5, 1.0, 2.0]
    p = [0.5 * x / sum(within) for x in within] + [0.125] * 4
    assert chi_square([counts[i] for i in range(8)], p) < CRITICAL[7]


def test_sampler_is_deterministic_and_resumable():
    w = sampling_weights(list(EMOTIONS), [0.5] * 8, SamplingConfig())
    a = EmotionAwareSampler(w, seed=1)
    b = EmotionAwareSampler(w, seed=1)
    assert a.draw(50) == b.draw(50)
    state = a.state_dict()
    first = a.draw(10)
    a.load_state_dict(state)
    assert a.draw(10) == first
    assert EmotionAwareSampler(w, seed=1, rank=1).draw(50) != b.draw(50)  # ranks draw differently
    assert next(iter(a)).clip in range(8)
