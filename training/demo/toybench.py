"""Toy benchmark of the embedded demo model : a generator on held-out synthetic talking faces.

    python -m training.demo.toybench [--quick] [--generator ground_truth|static] [--model PATH]
                                [--steps N] [--guidance G] [--motion-scale POSE FACE LIP] [--roundtrip]
                                [--clips N] [--size S] [--seed N] [--baseline DIR]

Generator interface (`Generator`): generate(portrait, audio, sample_rate, caption)
-> frames, with portrait uint8 [S, S, 3] (the identity's neutral still face, so
the emotion must come from the caption), audio float32 [N] mono, caption str,
and frames uint8 [T, S, S, 3] at 25 fps, T = frame_count(audio, sample_rate) =
ceil(N / sample_rate * 25).  Reference generators, for calibration:
`ground_truth` returns the synthetic renderer's own frames of that clip (a
lookup by audio, not a model); `static` repeats the portrait.  `--model FOLDER`
runs a demo model folder (`demo_model/` in the repo: the tiny EmoCAST with its
encoders, training/demo/generate.py) through the core pipeline, `--steps` DDIM
steps per clip, `--guidance` the CFG scale (default: the demo workflow's, 2),
`--motion-scale` the sampler's pose / face / lip weights (default 1 1 1);
with `--roundtrip` it scores the renderer's frames encoded and decoded by that
folder's autoencoder instead: the most its decoder lets any model show; with
`--baseline DIR` it scores a plain conditional UNet trained on that folder's build
cache (training/demo/baseline.py, the yardstick) through the same
autoencoder and encoders, sampled the same way.

Clips (`build_cases`): synthetic_faces.make_clip on held-out identities and
sentences, 1-1.6 s (cut inside the sentence), emotions balanced in blocks of
eight; blocks alternate between a caption in a training phrasing and one in a
held-out phrasing (synthetic_captions template split).  Nothing is written to disk.

Scores (measurements: training/demo/toy_metrics.py), means over clips:
  lip_r                     r(mouth opening in the generated frames, envelope of the given audio)
  lip_r_ground_truth        the same for the renderer's frames of the clip
  lip_r_mismatched          generated frames vs the envelope of another clip's audio (another
                            sentence), cut or padded with silence to length: the control
  emo_acc_train_phrasing    per-frame accuracy of the emotion classifier, averaged per class and
  emo_acc_heldout_phrasing  then over the classes (chance 0.125), by caption phrasing split
  identity_err              colour error of skin and background vs the portrait (0..1)
A still mouth has no defined r; it counts as 0.  The classifier is fitted on
ground-truth renders of training identities (head motion, speech, blinks),
augmented with blur, colour drift and noise, as a generator's frames are not
exact renders (a global tint costs nothing; a full 3x3 blur at 64 px still
costs the ground truth ~0.1 accuracy, so treat blurry generators' scores as
lower bounds).  It is cached as safetensors in $EMOCAST_CACHE/toybench (default
~/.cache/comfyui-emocast/toybench), keyed by CLASSIFIER_VERSION and its recipe.
The last stdout line is one JSON object with exactly the six keys above;
per-class accuracies and timings go to stderr.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import speech
from . import toy_metrics as tm
from .face_drawing import FrameParams, Identity, render
from .synthetic_captions import captions
from .synthetic_faces import EMOTIONS, FPS, IDENTITY_SEEDS, Clip, expression_params, make_clip, plan, \
    sample_identity, still_params

Generator = Callable[[np.ndarray, np.ndarray, int, str], np.ndarray]
KEYS = ("lip_r", "lip_r_ground_truth", "lip_r_mismatched", "emo_acc_train_phrasing", "emo_acc_heldout_phrasing",
        "identity_err")
QUICK = {"clips": 16, "size": 64, "seconds": (1.0, 1.6)}
# Clips end inside their sentence: espeak-ng's trailing silence (~0.7 s) would give any two
# 1.5-3 s clips' envelopes a common speech-then-silence shape (mismatched r ~0.5 instead of ~0.2).
FULL = {"clips": 64, "size": 64, "seconds": (1.0, 1.6)}
CLASSIFIER_VERSION = 1  # bump when the features or the recipe change
AUG = {"drift": 0.04, "noise": 0.02, "blurred": 0.5}  # colour drift and noise (0..1 units), share of blurred frames
# Training identities x 8 emotions x frames each; per-frame random speech, blinks and head pose.
CLASSIFIER = {"aug": AUG, "identities": 256, "frames": 3, "decay": 1e-2, "seed": 0, "feature_size": tm.FEATURE_SIZE}
_BLINK = (0.45, 0.05, 0.3, 0.75)  # the renderer's blink lid values


@dataclass
class Case:
    clip: Clip
    ident: Identity
    portrait: np.ndarray  # uint8 [S, S, 3]
    caption: str
    phrasing: str  # "train" or "heldout"


def frame_count(audio: np.ndarray, sample_rate: int) -> int:
    return math.ceil(len(audio) / sample_rate * FPS - 1e-9)


def portrait_of(ident: Identity, size: int) -> np.ndarray:
    return render(ident, still_params("neutral"), size)[0]


def build_cases(clips: int, seed: int = 0, size: int = 64, seconds=(1.5, 3.0)) -> list[Case]:
    if clips < 16:
        raise ValueError(f"clips must be at least 16 (both phrasings need every emotion), got {clips}")
    cases = []
    for i, (clip_seed, emotion, identity_seed) in enumerate(plan(clips, seed, "heldout", max(1, clips // 2))):
        clip = make_clip(clip_seed, emotion, identity_seed, "heldout", size, seconds)
        phrasing = "train" if (i // len(EMOTIONS)) % 2 == 0 else "heldout"
        table = captions(emotion, phrasing)
        caption = table[int(np.random.default_rng([0x7B, clip_seed]).integers(len(table)))]
        ident = sample_identity(identity_seed)
        cases.append(Case(clip, ident, portrait_of(ident, size), caption, phrasing))
    return cases


def _audio_key(audio: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(audio, np.float32).tobytes()).hexdigest()


def ground_truth_generator(cases: list[Case]) -> Generator:
    """The renderer's own frames of the clip whose audio is given (an upper bound, not a model)."""
    frames = {_audio_key(c.clip.audio): c.clip.frames for c in cases}

    def generate(portrait, audio, sample_rate, caption):
        key = _audio_key(audio)
        if key not in frames:
            raise ValueError("the ground_truth generator knows only the benchmark's own clips' audio")
        return frames[key]
    return generate


def static_generator(portrait: np.ndarray, audio: np.ndarray, sample_rate: int, caption: str) -> np.ndarray:
    """The portrait, unchanged, for every frame (lip_r 0, emotion = the portrait's: neutral)."""
    return np.repeat(portrait[None], frame_count(audio, sample_rate), axis=0)


def load_model(path: str, steps: int = 25, guidance: float | None = None, motion_scale=(1.0, 1.0, 1.0)):
    """A demo model folder (training/demo) as a `DemoModel`: `.generate` is a generator."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"--model {path}: no such folder (a demo model folder, e.g. demo_model/)")
    from .generate import DEMO_GUIDANCE, DemoModel

    return DemoModel.load(path, steps=steps, guidance=DEMO_GUIDANCE if guidance is None else guidance,
                          motion_scale=tuple(motion_scale))


def roundtrip_generator(model, cases: list[Case]) -> Generator:
    """The ground-truth frames of `cases` encoded and decoded by `model`'s autoencoder."""
    truth = ground_truth_generator(cases)
    return lambda portrait, audio, rate, caption: model.roundtrip(truth(portrait, audio, rate, caption))


GENERATORS: dict[str, Callable[[list[Case]], Generator]] = {
    "ground_truth": ground_truth_generator,
    "static": lambda cases: static_generator,
}


def _cache_dir() -> Path:
    return Path(os.environ.get("EMOCAST_CACHE", Path.home() / ".cache" / "comfyui-emocast")) / "toybench"


def _training_frames(rng, ident: Identity, n: int, size: int) -> np.ndarray:
    """n random talking frames per emotion (EMOTIONS order) in one render; head poses a bit past the set's."""
    env = np.where(rng.random(8 * n) < 0.3, 0.0, rng.uniform(0.08, 1.0, 8 * n) ** 0.7).astype(np.float32)
    parts = [expression_params(e, env[k * n:(k + 1) * n], float(rng.uniform(0.8, 1.15)))
             for k, e in enumerate(EMOTIONS)]
    p = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    p["eye_open"] = p["eye_open"] * np.where(rng.random(8 * n) < 0.12, rng.choice(_BLINK, 8 * n), 1.0)
    p = {key: v.astype(np.float32) for key, v in p.items()}

    def u(lo, hi):
        return rng.uniform(lo, hi, 8 * n).astype(np.float32)
    frames = render(ident, FrameParams(**p, tx=u(-0.04, 0.04), ty=u(-0.02, 0.04), roll=u(-0.045, 0.045)), size)
    # A generator's frames are not exact renders: blur, colour drift and noise, which the classifier learns to ignore.
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    soft = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = torch.from_numpy(rng.uniform(0, 1, (8 * n, 1, 1, 1)) * (rng.random((8 * n, 1, 1, 1)) < AUG["blurred"]))
    x = (x + mix.float() * (soft - x)).permute(0, 2, 3, 1).numpy()
    drift = rng.uniform(-AUG["drift"], AUG["drift"], (8 * n, 1, 1, 3)) + rng.normal(0, AUG["noise"], frames.shape)
    return np.clip(x + 255.0 * drift, 0, 255).round().astype(np.uint8)


def fit_classifier() -> tm.EmotionClassifier:
    cfg = CLASSIFIER
    rng = np.random.default_rng([0xC1, cfg["seed"]])
    seeds = rng.choice(IDENTITY_SEEDS["train"][1] - IDENTITY_SEEDS["train"][0], cfg["identities"], replace=False)
    xs = []
    for s in seeds + IDENTITY_SEEDS["train"][0]:
        ident = sample_identity(int(s))
        size = cfg["feature_size"]
        xs.append(tm.emotion_features(_training_frames(rng, ident, cfg["frames"], size), portrait_of(ident, size),
                                      ident))
    y = np.tile(np.repeat(np.arange(len(EMOTIONS)), cfg["frames"]), len(seeds))
    return tm.EmotionClassifier.fit(np.concatenate(xs), y, len(EMOTIONS), decay=cfg["decay"], seed=cfg["seed"])


def emotion_classifier(cache_dir: Path | None = None) -> tm.EmotionClassifier:
    """The cached classifier, fitted (a few seconds) and saved when missing."""
    from safetensors.torch import load_file, save_file
    recipe = json.dumps(CLASSIFIER, sort_keys=True)
    tag = hashlib.sha1(recipe.encode()).hexdigest()[:10]
    path = Path(cache_dir or _cache_dir()) / f"emotion-v{CLASSIFIER_VERSION}-{tag}.safetensors"
    if path.is_file():
        return tm.EmotionClassifier.from_state_dict(load_file(str(path)))
    clf = fit_classifier()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")  # concurrent runs: last rename wins
    save_file({k: v.contiguous() for k, v in clf.state_dict().items()}, str(tmp), metadata={"recipe": recipe})
    tmp.replace(path)
    return clf


def _check(frames, case: Case, name: str) -> np.ndarray:
    want = (case.clip.label["frames"], *case.portrait.shape)
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.shape != want:
        got = (getattr(frames, "dtype", type(frames).__name__), getattr(frames, "shape", None))
        raise ValueError(f"generator {name!r} must return uint8 frames of shape {want}, got {got}")
    return frames


def _other(cases: list[Case], i: int) -> Case:
    """The next clip (cyclically) with another sentence: its audio is the mismatched control."""
    n = len(cases)
    for j in range(1, n):
        other = cases[(i + j) % n]
        if other.clip.label["sentence_id"] != cases[i].clip.label["sentence_id"]:
            return other
    return cases[(i + 1) % n]


def evaluate(generator: Generator, cases: list[Case], classifier: tm.EmotionClassifier,
             name: str = "generator") -> tuple[dict, dict]:
    """(scores with exactly KEYS, per-phrasing per-class accuracies) of `generator` on `cases`."""
    rows = {k: [] for k in ("lip_r", "lip_r_ground_truth", "lip_r_mismatched", "identity_err")}
    per_class = {"train": {}, "heldout": {}}
    for i, case in enumerate(cases):
        clip = case.clip
        frames = _check(generator(case.portrait.copy(), clip.audio.copy(), clip.sample_rate, case.caption), case, name)
        t = len(frames)
        env = speech.mouth_envelope(clip.audio, t, clip.sample_rate)
        other = np.zeros_like(clip.audio)
        n = min(len(other), len(_other(cases, i).clip.audio))
        other[:n] = _other(cases, i).clip.audio[:n]
        rows["lip_r"].append(tm.lip_r(frames, case.ident, env))
        rows["lip_r_ground_truth"].append(tm.lip_r(clip.frames, case.ident, env))
        rows["lip_r_mismatched"].append(tm.lip_r(frames, case.ident, speech.mouth_envelope(other, t, clip.sample_rate)))
        rows["identity_err"].append(tm.identity_error(frames, case.portrait, case.ident))
        pred = classifier.predict(tm.emotion_features(frames, case.portrait, case.ident))
        emotion = clip.label["emotion"]
        per_class[case.phrasing].setdefault(emotion, []).append(float((pred == EMOTIONS.index(emotion)).mean()))
    scores = {k: float(np.mean(v)) for k, v in rows.items()}
    acc = {p: {e: float(np.mean(v)) for e, v in d.items()} for p, d in per_class.items()}
    scores["emo_acc_train_phrasing"] = float(np.mean(list(acc["train"].values())))
    scores["emo_acc_heldout_phrasing"] = float(np.mean(list(acc["heldout"].values())))
    return {k: round(scores[k], 4) for k in KEYS}, acc


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.demo.toybench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"small run a test can afford ({QUICK})")
    ap.add_argument("--generator", choices=sorted(GENERATORS), default="ground_truth")
    ap.add_argument("--model", help="a demo model folder (demo_model/): benchmark it instead of --generator")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps per clip for --model")
    ap.add_argument("--guidance", type=float,
                    help="classifier-free guidance scale for --model (default: the demo workflow's, 2)")
    ap.add_argument("--motion-scale", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("POSE", "FACE", "LIP"),
                    help="the sampler's audio weights per region for --model (default 1 1 1)")
    ap.add_argument("--roundtrip", action="store_true",
                    help="with --model: score the ground-truth frames through its autoencoder (the decoder's ceiling)")
    ap.add_argument("--baseline", help="with --model: score this plain-UNet baseline (training/demo/baseline.py) "
                    "with the model's autoencoder and encoders instead of the model")
    ap.add_argument("--clips", type=int, help=f"held-out clips (default {FULL['clips']}, quick {QUICK['clips']})")
    ap.add_argument("--size", type=int, help="frame size in pixels (default 64)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else FULL
    try:
        if args.roundtrip and not args.model:
            raise ValueError("--roundtrip needs --model (a demo model folder whose autoencoder to measure)")
        if args.baseline and (not args.model or args.roundtrip):
            raise ValueError("--baseline needs --model (whose autoencoder and encoders it was trained on) and "
                             "no --roundtrip")
        # A bad model path fails first.
        model = load_model(args.model, args.steps, args.guidance, args.motion_scale) if args.model else None
        if args.baseline:
            from .demo.baseline import Baseline
            baseline = Baseline(args.baseline, model, args.model)
        t0 = time.perf_counter()
        cases = build_cases(args.clips or preset["clips"], args.seed, args.size or preset["size"], preset["seconds"])
    except (ValueError, FileNotFoundError) as e:
        ap.error(str(e))
    classifier = emotion_classifier()
    t1 = time.perf_counter()
    if model is None:
        name, generator = args.generator, GENERATORS[args.generator](cases)
    elif args.roundtrip:
        name, generator = "roundtrip", roundtrip_generator(model, cases)
    elif args.baseline:
        name, generator = "baseline", baseline.generate
    else:
        name, generator = "model", model.generate
    scores, acc = evaluate(generator, cases, classifier, name)
    for phrasing, table in acc.items():
        print(f"{name} {phrasing} phrasing: " + ", ".join(f"{e} {table[e]:.2f}" for e in EMOTIONS if e in table),
              file=sys.stderr)
    print(f"{len(cases)} clips, setup {t1 - t0:.1f} s, evaluation {time.perf_counter() - t1:.1f} s", file=sys.stderr)
    print(json.dumps(scores), flush=True)
    return scores


if __name__ == "__main__":
    torch.set_num_threads(min(4, torch.get_num_threads()))  # small tensors: more threads only contend
    main()
