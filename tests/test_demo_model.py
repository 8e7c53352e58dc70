"""The shipped demo model (demo_model/): within budget, labelled a demo, and it talks on faces it never saw."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.demo import toybench

DEMO = Path(__file__).resolve().parents[1] / "demo_model"


def test_the_shipped_folder_fits_the_budget_and_is_labelled_a_demo():
    files = [p for p in DEMO.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20
    assert not any(p.suffix in (".pth", ".bin", ".pt", ".ckpt") for p in files)  # safetensors only
    card = (DEMO / "README.md").read_text()
    assert card.startswith("# EmoCAST demo model") and "not EmoCAST's weights" in card
    assert "⟨" not in card  # every number filled in
    # a continuation (--init-from --stages) records only the stages it trained; the chain of builds it
    # continued ends in one from nothing, which trained all three
    record = json.loads((DEMO / "build_record.json").read_text())
    while "init_from" in record:
        assert record["stages"] and set(record["stages"]) <= {"appearance", "lipsync", "emotion"}
        record = record["init_from"]["record"]
    assert list(record["stages"]) == ["appearance", "lipsync", "emotion"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_the_demo_model_lip_syncs_and_follows_the_caption_on_held_out_faces(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCAST_CACHE", str(tmp_path))
    scores = toybench.main(["--quick", "--model", str(DEMO), "--steps", "10"])
    # measured here: lip_r 0.91 (mismatched 0.26), emotion 0.92 / 0.96 at its CFG 2 (0.91 and 0.87 / 0.91 on
    # the full benchmark, see its card); the demo models before it measured 0.91 and 0.97 / 0.97, 0.91 and
    # 0.95 / 0.94, 0.90 and 0.90 / 0.92, 0.89 and 0.88 / 0.86, the factor-8 one 0.86 and 0.47 (mean).
    assert scores["lip_r"] > 0.8 and scores["lip_r"] > scores["lip_r_mismatched"] + 0.4
    assert (scores["emo_acc_train_phrasing"] + scores["emo_acc_heldout_phrasing"]) / 2 > 0.75  # chance 0.125
    assert scores["identity_err"] < 0.08


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_the_bundled_autoencoder_keeps_the_mouth_and_the_expression(tmp_path, monkeypatch):
    """Its round trip of ground-truth frames is the ceiling for any model decoded through it."""
    monkeypatch.setenv("EMOCAST_CACHE", str(tmp_path))
    scores = toybench.main(["--quick", "--model", str(DEMO), "--roundtrip"])
    assert scores["lip_r"] > 0.9 and scores["identity_err"] < 0.05
    # measured 0.95 here (0.86 / 0.91 on the full benchmark; ground truth 0.96); the factor-8 one: 0.79
    assert (scores["emo_acc_train_phrasing"] + scores["emo_acc_heldout_phrasing"]) / 2 > 0.8


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_the_benchmark_passes_the_region_weights_to_the_sampler():
    """toybench --motion-scale: the sampler's (pose, face, lip) weights reach the demo model's sampling."""
    case = toybench.build_cases(16, seed=2, size=64, seconds=(1.0, 1.0))[0]

    def frames(lip):
        model = toybench.load_model(str(DEMO), steps=2, motion_scale=(1.0, 1.0, lip))
        return model.generate(case.portrait, case.clip.audio, case.clip.sample_rate, case.caption)
    default = frames(1.0)
    assert np.array_equal(default, frames(1.0))  # seeded: only the weights may change the frames
    assert not np.array_equal(default, frames(0.0))
