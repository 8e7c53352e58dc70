"""The synthetic talking-face set: determinism, visible expressions, lip sync with the speech, splits, files."""
import json
import math
import shutil

import numpy as np
import pytest

from emocast_core.video import read_mp4
from training.demo import speech
from training.demo.face_drawing import HEAD_Y, ZOOM, mouth_darkness, render
from training.sampling import classify_caption
from training.demo.synthetic_captions import TEMPLATES, captions, template_split
from training.demo.synthetic_faces import (EMOTIONS, IDENTITY_SEEDS, make_clip, make_dataset, sample_identity,
                                      still_params)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _gray(frames):
    return frames.astype(np.float32) @ _LUMA / 255.0


@needs_espeak
def test_same_seed_same_clip_other_seed_other_clip():
    a, b = make_clip(11, "happy", 5), make_clip(11, "happy", 5)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    assert a.label == b.label
    c = make_clip(12, "happy", 5)
    assert not np.array_equal(a.frames[:1], c.frames[:1]) or a.audio.shape != c.audio.shape


def test_mouth_corners_rise_for_happy_and_fall_for_sad():
    ident, size = sample_identity(7), 128
    my = round((HEAD_Y + ident.mouth_y) * ZOOM * size / 2 + size / 2)
    rows = np.arange(my - 10, my + 10)[:, None]

    def corner_minus_centre(emotion):
        # Mean row of the closed mouth's dark line in corner columns minus the centre columns.
        line = _gray(render(ident, still_params(emotion), size))[0, my - 10:my + 10] < 0.3

        def mean_row(c0, c1):
            sub = line[:, c0:c1]
            assert sub.sum() > 0
            return float((rows * sub).sum() / sub.sum())
        corner = int(size / 2 + 0.8 * ident.mouth_w * ZOOM * size / 2)
        return mean_row(corner - 2, corner + 1) - mean_row(size // 2 - 2, size // 2 + 2)
    assert abs(corner_minus_centre("neutral")) < 1
    assert corner_minus_centre("happy") < -2  # corners above the centre (rows grow downwards)
    assert corner_minus_centre("sad") > 2


def _features(frames, ident, size=64):
    """Aligned brow/eye and mouth crops of (frame - the identity's neutral face), L2-normalised; neutral -> 0."""
    diff = _gray(frames) - _gray(render(ident, still_params("neutral"), size))

    def row(v):
        return round((HEAD_Y + v) * ZOOM * size / 2 + size / 2)
    ey, my = row(ident.eye_y - 0.07), row(ident.mouth_y)
    f = np.concatenate([diff[:, ey - 8:ey + 6, 12:52].reshape(len(diff), -1),
                        diff[:, my - 6:my + 7, 20:44].reshape(len(diff), -1)], 1)
    return f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-6)


def test_nearest_centroid_separates_the_eight_expressions_on_heldout_identities():
    rng = np.random.default_rng(0)

    def data(first):
        feats, labels = [], []
        for i in range(first, first + 20):
            ident = sample_identity(i)
            frames = np.concatenate([render(ident, still_params(e, intensity=rng.uniform(0.8, 1.15)), 64)
                                     for e in EMOTIONS])
            feats.append(_features(frames, ident))
            labels.extend(range(len(EMOTIONS)))
        return np.concatenate(feats), np.array(labels)
    train_x, train_y = data(IDENTITY_SEEDS["train"][0])
    test_x, test_y = data(IDENTITY_SEEDS["heldout"][0])
    centroids = np.stack([train_x[train_y == k].mean(0) for k in range(len(EMOTIONS))])
    pred = np.argmin(((test_x[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = float((pred == test_y).mean())
    print(f"nearest-centroid accuracy on held-out identities: {accuracy:.3f}")
    assert accuracy >= 0.9


@needs_espeak
@pytest.mark.parametrize("emotion,seed", [("neutral", 1), ("surprised", 2), ("angry", 3)])
def test_mouth_opening_follows_the_speech_envelope(emotion, seed):
    clip = make_clip(seed, emotion, IDENTITY_SEEDS["heldout"][0] + seed, split="heldout")
    dark = mouth_darkness(clip.frames, sample_identity(clip.label["identity_seed"]))
    env = speech.mouth_envelope(clip.audio, len(clip.frames))
    assert np.allclose(env, clip.label["envelope"], atol=1e-4)
    r = float(np.corrcoef(dark, env)[0, 1])
    print(f"{emotion}: r(mouth dark pixels, envelope) = {r:.3f}")
    assert r > 0.8


def test_envelope_mapping_gates_silence_and_saturates_speech():
    sr = speech.SAMPLE_RATE
    t = np.arange(sr) / sr
    wav = np.where((t > 0.4) & (t < 0.8), 0.3 * np.sin(2 * np.pi * 220 * t), 0.0).astype(np.float32)
    env = speech.mouth_envelope(wav, 25)
    assert env[:9].max() == 0 and env[-4:].max() == 0  # silence keeps the mouth shut
    assert env[11:19].min() > 0.95
    assert speech.mouth_envelope(np.zeros(sr, np.float32), 25).max() == 0


def test_missing_espeak_names_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng"):
        speech.synthesize("hello")


def test_caption_and_sentence_splits_do_not_overlap():
    assert {template_split(i) for i in range(len(TEMPLATES))} == {"train", "heldout"}
    seen = {}
    for emotion in EMOTIONS:
        train, held = captions(emotion, "train"), captions(emotion, "heldout")
        assert len(train) >= 30 and len(held) >= 10
        assert not {c.lower() for c in train} & {c.lower() for c in held}
        for c in train + held:
            assert c not in seen, f"{c!r} is in both {seen.get(c)} and {emotion}"
            seen[c] = emotion
            assert classify_caption(c) in (emotion, None), c  # never names another class
    train_s, held_s = speech.sentence_ids("train"), speech.sentence_ids("heldout")
    assert held_s and not set(train_s) & set(held_s)
    assert IDENTITY_SEEDS["train"][1] <= IDENTITY_SEEDS["heldout"][0]


@needs_espeak
def test_make_dataset_writes_decodable_videos_sidecars_and_labels(tmp_path):
    labels = make_dataset(tmp_path, clips=3, seed=4, size=64, seconds=(1.0, 1.6), split="heldout")
    assert [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()] == labels
    for lab in labels:
        stem = lab["file"][:-4]
        first, caption = (tmp_path / f"{stem}.txt").read_text().strip().split("\n")
        assert first == f"emotion: {lab['emotion']}" and caption == lab["caption"]
        assert template_split(lab["caption_template"]) == "heldout"
        assert speech.sentence_split(lab["sentence_id"]) == "heldout"
        lo, hi = IDENTITY_SEEDS["heldout"]
        assert lo <= lab["identity_seed"] < hi
        video = read_mp4(tmp_path / lab["file"])
        assert video.frame_count == lab["frames"] == math.ceil(lab["seconds"] * 25 - 1e-9)
        assert 1.0 <= lab["seconds"] <= 1.6 and (video.width, video.height) == (64, 64)
        assert abs(video.audio_duration - lab["frames"] / 25) <= 1 / 25
        assert len(lab["mouth_open"]) == len(lab["envelope"]) == len(lab["head"]) == lab["frames"]
