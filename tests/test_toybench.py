"""The toy benchmark: calibrated by the ground-truth and static reference generators, one JSON line of six keys."""
import json
import shutil

import numpy as np
import pytest

from training.demo import toybench

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh classifier cache: fitted once for the module (a few seconds), then loaded."""
    path = tmp_path_factory.mktemp("emocast-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMOCAST_CACHE", str(path))
        yield path


def _run(capsys, *argv):
    scores = toybench.main(["--quick", *argv])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == scores and list(scores) == list(toybench.KEYS)
    return scores


def test_ground_truth_scores_high_and_the_mismatched_control_low(cache, capsys):
    s = _run(capsys, "--generator", "ground_truth")
    print(s)
    assert s["lip_r"] == s["lip_r_ground_truth"] >= 0.8
    assert s["lip_r_mismatched"] < s["lip_r"] - 0.5
    assert s["emo_acc_train_phrasing"] >= 0.9 and s["emo_acc_heldout_phrasing"] >= 0.9
    assert s["identity_err"] < 0.01
    assert list((cache / "toybench").glob("emotion-v*.safetensors"))


def test_static_portrait_has_no_lip_sync_and_only_the_neutral_class(cache, capsys):
    s = _run(capsys, "--generator", "static")
    print(s)
    assert abs(s["lip_r"]) < 0.2 and abs(s["lip_r_mismatched"]) < 0.2  # a still mouth counts as r = 0
    assert s["lip_r_ground_truth"] >= 0.8
    assert s["emo_acc_train_phrasing"] <= 0.25 and s["emo_acc_heldout_phrasing"] <= 0.25  # neutral only: 1/8
    assert s["identity_err"] < 0.01


def test_metrics_respond_to_wrong_timing_and_colour(cache):
    cases = toybench.build_cases(16, seed=3, size=64, seconds=(1.0, 1.4))
    clf = toybench.emotion_classifier()
    truth = toybench.ground_truth_generator(cases)

    def reversed_tinted(portrait, audio, sr, caption):  # right expression, wrong timing, skin and backdrop tinted
        frames = truth(portrait, audio, sr, caption)[::-1].astype(np.int16)
        return np.clip(frames + np.array([20, -20, 0]), 0, 255).astype(np.uint8)
    s, _ = toybench.evaluate(reversed_tinted, cases, clf)
    print(s)
    assert s["lip_r"] < 0.5 < s["lip_r_ground_truth"]
    assert s["emo_acc_train_phrasing"] >= 0.9  # the classifier ignores a tint (it removes the global colour drift)
    assert 0.03 < s["identity_err"] < 0.08  # (20 + 20 + 0) / 3 / 255 = 0.052


def test_generator_output_and_model_option_are_checked(cache, tmp_path):
    cases = toybench.build_cases(16, seed=1, size=32, seconds=(1.0, 1.2))
    with pytest.raises(ValueError, match="uint8 frames of shape"):
        toybench.evaluate(lambda p, a, sr, c: np.zeros((3, 32, 32, 3), np.uint8), cases, None, "short")
    with pytest.raises(SystemExit):
        toybench.main(["--quick", "--model", str(tmp_path / "missing.safetensors")])
    with pytest.raises(SystemExit):  # --roundtrip measures a model folder's autoencoder: it needs one
        toybench.main(["--quick", "--roundtrip"])
    with pytest.raises(SystemExit):  # the plain-UNet baseline samples through a model folder's autoencoder
        toybench.main(["--quick", "--baseline", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="is not a demo model folder"):
        toybench.load_model(str(tmp_path))
    with pytest.raises(ValueError, match="at least 16"):
        toybench.build_cases(8)
