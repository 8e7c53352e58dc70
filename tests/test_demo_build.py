"""`python -m training.demo.build` end to end at smoke size: the shipped layout, loadable and resumable."""
import json
import shutil

import numpy as np
import pytest
import torch

from emocast_core.audio import load_wav2vec2
from emocast_core.text import load_clip_text
from emocast_core.weights import load_checkpoint
from training.demo import AUDIO_DIR, MODEL_FILE, TEXT_DIR
from training.demo import build
from training.demo.generate import DemoModel
from training.toybench import build_cases

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                                   reason="espeak-ng is not installed (apt-get install espeak-ng)")]


@pytest.fixture(scope="module")
def built(comfy_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-build")
    argv = ["--work", str(root / "work"), "--out", str(root / "out"), "--clips", "12", "--steps-scale", "0.004",
            "--tokenizer", str(comfy_env.core / "comfy" / "sd1_tokenizer")]
    build.main(argv)
    return root, argv


def test_the_build_writes_a_models_folder_the_loaders_read(built):
    root, _ = built
    out = root / "out"
    net, vae = load_checkpoint(out / MODEL_FILE, dtype=torch.float32)
    assert net.config == build.DEMO_CONFIG and vae is not None
    assert vae.config.latent_channels == net.config.in_channels and len(vae.config.block_out_channels) == 4  # factor 8
    text = load_clip_text(str(out / TEXT_DIR), expected_hidden=None)
    assert text.hidden_size == net.config.cross_attention_dim
    audio = load_wav2vec2(str(out / AUDIO_DIR))
    assert audio.model.config.num_hidden_layers == net.config.audio_layers
    record = json.loads((out / "build_record.json").read_text())
    assert list(record["stages"]) == ["appearance", "lipsync", "emotion"]
    assert record["stages"]["lipsync"]["frames"] == 14 and record["cache"]["clips"] == 12
    assert record["autoencoder_detail"]["steps"] >= 1 and record["autoencoder_detail"]["edge_weight"] > 0


def test_a_finished_build_resumes_as_a_no_op(built, capsys):
    root, argv = built
    model = root / "out" / MODEL_FILE
    before = (model.stat().st_mtime_ns, json.loads((root / "work" / "record.json").read_text()))
    build.main(argv)
    out = capsys.readouterr().out
    assert "step" not in out  # nothing trained again
    assert json.loads((root / "work" / "record.json").read_text()) == before[1]


@pytest.fixture(scope="module")
def built_factor_4(comfy_env, tmp_path_factory):
    """The shipped model's recipe at smoke size: the appearance stage, then everything at twice the steps."""
    root = tmp_path_factory.mktemp("demo-build-f4")
    argv = ["--work", str(root / "work"), "--out", str(root / "out"), "--clips", "12",
            "--tokenizer", str(comfy_env.core / "comfy" / "sd1_tokenizer"), "--latent-factor", "4"]
    build.main(argv + ["--steps-scale", "0.004", "--stop-after", "appearance"])
    record = json.loads((root / "work" / "record.json").read_text())
    assert list(record["stages"]) == ["appearance"] and not (root / "out" / MODEL_FILE).exists()
    build.main(argv + ["--steps-scale", "0.008"])
    return root, argv


def test_a_factor_4_build_trains_on_16x16_latents_and_cannot_resume_as_factor_8(built_factor_4):
    root, argv = built_factor_4
    net, vae = load_checkpoint(root / "out" / MODEL_FILE, dtype=torch.float32)
    assert net.config == build.demo_config(4) and net.config.latent_factor == 4 and net.config.num_heads == 2
    assert len(vae.config.block_out_channels) == 3 and vae.config.latent_channels == net.config.in_channels == 4
    case = build_cases(16, seed=2, size=64, seconds=(1.0, 1.2))[0]
    frames = DemoModel.load(root / "out", steps=2).generate(case.portrait, case.clip.audio, case.clip.sample_rate,
                                                            case.caption)
    assert frames.shape == (case.clip.label["frames"], 64, 64, 3)
    record = json.loads((root / "work" / "record.json").read_text())
    assert record["latent_factor"] == 4
    assert record["stages"]["appearance"]["steps"] == round(2500 * 0.008)  # resumed into the longer stage
    assert record["stages"]["appearance"]["wall_seconds"] > 0 and list(record["stages"]) == list(build.STAGE_PLAN)
    with pytest.raises(SystemExit, match="started with 4; pass --latent-factor 4"):
        build.main(argv[:-1] + ["8"])


def test_the_built_model_generates_a_video_of_the_audio_length(built):
    root, _ = built
    case = build_cases(16, seed=2, size=64, seconds=(1.0, 1.2))[0]
    model = DemoModel.load(root / "out", steps=2)
    frames = model.generate(case.portrait, case.clip.audio, case.clip.sample_rate, case.caption)
    assert frames.dtype == np.uint8 and frames.shape == (case.clip.label["frames"], 64, 64, 3)


@pytest.mark.parametrize("name, message", [
    ("tpu", "not a torch device"),
    ("mps", "cpu or cuda only"),
    *([("cuda", "sees no CUDA GPU")] if not torch.cuda.is_available() else []),
])
def test_a_device_the_build_cannot_use_is_refused_before_anything_runs(tmp_path, name, message):
    with pytest.raises(SystemExit, match=message):
        build.main(["--work", str(tmp_path / "work"), "--tokenizer", str(tmp_path), "--device", name])
    assert not (tmp_path / "work" / "videos").exists()
