"""`python -m training.demo.build` end to end at smoke size: the shipped layout, loadable and resumable."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from emocast_core.audio import load_wav2vec2
from emocast_core.text import load_clip_text
from emocast_core.weights import load_checkpoint
from training.demo import AUDIO_DIR, MODEL_FILE, TEXT_DIR
from training.demo import baseline, build
from training.demo.generate import DemoModel
from training.stages import in_full_weight_group as in_group
from training.demo.toybench import build_cases

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


def assert_resumes_as_a_no_op(root, argv, capsys):
    """Running a finished build again trains nothing and leaves its work record as it was."""
    before = (root / "work" / "record.json").read_text()
    capsys.readouterr()
    build.main(argv)
    assert "step" not in capsys.readouterr().out and (root / "work" / "record.json").read_text() == before


def test_a_finished_build_resumes_as_a_no_op(built, capsys):
    root, argv = built
    assert_resumes_as_a_no_op(root, argv, capsys)


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


@pytest.mark.parametrize("extra, message", [
    (["--device", "tpu"], "not a torch device"),
    (["--device", "mps"], "cpu or cuda only"),
    *([(["--device", "cuda"], "sees no CUDA GPU")] if not torch.cuda.is_available() else []),
    (["--stages", "emotion"], "a build from nothing trains every stage"),
    (["--lr-scale", "0"], "must be above 0"),
    (["--audio-proj-hidden", "0"], "at least 1"),
])
def test_a_device_or_plan_the_build_cannot_use_is_refused_before_anything_runs(tmp_path, extra, message):
    with pytest.raises(SystemExit, match=message):
        build.main(["--work", str(tmp_path / "work"), "--tokenizer", str(tmp_path)] + extra)
    assert not (tmp_path / "work" / "videos").exists()


def _continue(built, tmp_path_factory, name: str, *extra: str, share_cache: bool = False):
    """Build a continuation of the smoke build's model (--init-from, plus `extra`): (first root, root, argv).
    `share_cache` links the first build's videos and cache (the same videos, and latents of the same kept
    autoencoder) instead of redoing them."""
    first, argv = built
    root = tmp_path_factory.mktemp(name)
    tokenizer = argv[argv.index("--tokenizer") + 1]
    if share_cache:
        (root / "work").mkdir()
        for sub in ("videos", "cache"):
            (root / "work" / sub).symlink_to(first / "work" / sub, target_is_directory=True)
    cont = ["--work", str(root / "work"), "--out", str(root / "out"), "--clips", "12", "--steps-scale", "0.004",
            "--tokenizer", tokenizer, "--init-from", str(first / "out"), *extra]
    build.main(cont)
    return first, root, cont


@pytest.fixture(scope="module")
def continued(built, tmp_path_factory):
    """A second build that continues the first one's model (--init-from) instead of starting from nothing."""
    return _continue(built, tmp_path_factory, "demo-continued")


def test_a_continued_build_keeps_the_earlier_encoders_and_trains_the_stages_from_its_networks(continued):
    first, root, _ = continued
    earlier, earlier_vae = load_checkpoint(first / "out" / MODEL_FILE, dtype=torch.float32)
    net, vae = load_checkpoint(root / "out" / MODEL_FILE, dtype=torch.float32)
    assert net.config == earlier.config
    # the autoencoder and the encoders are the earlier model's, file for file: no autoencoder phase ran
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), earlier_vae.state_dict().values()))
    for sub in (TEXT_DIR, AUDIO_DIR):
        for f in (first / "out" / sub).iterdir():
            assert (root / "out" / sub / f.name).read_bytes() == f.read_bytes()
    record = json.loads((root / "out" / "build_record.json").read_text())
    assert "autoencoder" not in record and "text_encoder" not in record
    assert record["init_from"]["record"]["stages"] == json.loads((first / "out" / "build_record.json").read_text())["stages"]
    assert list(record["stages"]) == list(build.STAGE_PLAN)
    # the stages trained from the earlier weights: each group moved, but a little (not a fresh initialisation)
    before, after = earlier.state_dict(), net.state_dict()
    moved = [n for n in after if not torch.equal(after[n], before[n])]
    assert any(".motion_modules." in n for n in moved) and any(".audio_modules." in n for n in moved)
    assert any("reference_unet." in n for n in moved)
    drift = sum((after[n] - before[n]).norm() ** 2 for n in moved) ** 0.5
    assert 0 < drift < 0.2 * sum(before[n].norm() ** 2 for n in moved) ** 0.5


def test_a_continued_build_refuses_a_mixed_up_resume(continued, tmp_path):
    first, root, cont = continued
    without = cont[:cont.index("--init-from")]
    with pytest.raises(SystemExit, match="pass --init-from"):
        build.main(without)
    with pytest.raises(SystemExit, match="was started from nothing"):  # the first build's work folder
        build.main(["--work", str(first / "work")] + without[2:] + ["--init-from", str(first / "out")])
    with pytest.raises(SystemExit, match="continues another model"):
        build.main(["--work", str(root / "work"), "--out", str(tmp_path / "o1")] + without[4:]
                   + ["--init-from", str(root / "out")])
    with pytest.raises(SystemExit, match="same folder as --out"):
        build.main(["--work", str(tmp_path / "w"), "--out", str(first / "out")] + without[4:]
                   + ["--init-from", str(first / "out")])
    with pytest.raises(SystemExit, match="not a demo model folder"):
        build.main(["--work", str(tmp_path / "w2"), "--out", str(tmp_path / "o2")] + without[4:]
                   + ["--init-from", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"not demo_config\(4\)"):
        build.main(["--work", str(tmp_path / "w3"), "--out", str(tmp_path / "o3")] + without[4:]
                   + ["--latent-factor", "4", "--init-from", str(first / "out")])


@pytest.fixture(scope="module")
def fine_tuned(built, tmp_path_factory):
    """A continuation that trains only the emotion stage, at a fifth of its learning rate."""
    return _continue(built, tmp_path_factory, "demo-fine-tuned", "--stages", "emotion", "--lr-scale", "0.2",
                     share_cache=True)


def test_a_continuation_of_some_stages_trains_only_those(fine_tuned):
    first, root, _ = fine_tuned
    earlier, _ = load_checkpoint(first / "out" / MODEL_FILE, dtype=torch.float32)
    net, _ = load_checkpoint(root / "out" / MODEL_FILE, dtype=torch.float32)
    record = json.loads((root / "out" / "build_record.json").read_text())
    assert list(record["stages"]) == ["emotion"]
    assert record["stages"]["emotion"]["lr"] == pytest.approx(0.2 * build.STAGE_PLAN["emotion"][2])
    assert record["plan"] == {"stages": ["emotion"], "lr_scale": 0.2, "block_out_channels": list(build.DEMO_WIDTHS),
                              "audio_proj_hidden": build.DEMO_AUDIO_PROJ_HIDDEN}
    before, after = earlier.state_dict(), net.state_dict()
    moved = {n for n in after if not torch.equal(after[n], before[n])}
    assert any(".motion_modules." in n for n in moved) and any(".attn_audioemo." in n for n in moved)
    # the appearance and lip-sync stages' weights are the earlier model's, bit for bit
    assert moved and all(in_group("emotion", n) for n in moved)


def test_a_continuation_resumes_only_with_the_plan_it_started_with(fine_tuned, capsys):
    _, root, cont = fine_tuned
    with pytest.raises(SystemExit, match="was started with --stages emotion --lr-scale 0.2"):
        build.main(cont[:cont.index("--stages")] + ["--lr-scale", "0.2"])
    lr = cont.index("--lr-scale") + 1
    with pytest.raises(SystemExit, match="was started with --stages emotion --lr-scale 0.2"):
        build.main(cont[:lr] + ["0.5"] + cont[lr + 1:])
    assert_resumes_as_a_no_op(root, cont, capsys)  # the same plan


@pytest.fixture(scope="module")
def audio_widened(built, tmp_path_factory):
    """A continuation whose AudioProj starts afresh, wider, while the other networks continue."""
    return _continue(built, tmp_path_factory, "demo-audio-widened", "--stages", "lipsync", "--audio-proj-hidden",
                     "48", share_cache=True)


def test_a_wider_audio_proj_starts_afresh_and_the_other_networks_continue(audio_widened, tmp_path):
    first, root, cont = audio_widened
    earlier, _ = load_checkpoint(first / "out" / MODEL_FILE, dtype=torch.float32)
    net, _ = load_checkpoint(root / "out" / MODEL_FILE, dtype=torch.float32)
    assert earlier.config.audio_proj_hidden == build.DEMO_AUDIO_PROJ_HIDDEN
    assert net.config == build.demo_config(8, build.DEMO_WIDTHS, 48)
    assert net.audioproj.proj1.out_features == net.audioproj.proj2.in_features == 48
    before, after = earlier.state_dict(), net.state_dict()
    # only the lipsync stage trained: every weight outside its group is the earlier model's, bit for bit
    assert all(torch.equal(after[n], before[n]) for n in after if not in_group("lipsync", n))
    assert any(".audio_modules." in n and not torch.equal(after[n], before[n]) for n in after)
    record = json.loads((root / "out" / "build_record.json").read_text())
    assert record["init_from"]["audio_proj_kept"] is False
    assert record["plan"]["audio_proj_hidden"] == 48
    with pytest.raises(SystemExit, match="was started with .*--audio-proj-hidden 48"):
        build.main(cont[:cont.index("--audio-proj-hidden")])  # without it: the earlier model's width
    with pytest.raises(SystemExit, match="add lipsync to --stages"):
        stages = cont.index("--stages")
        build.main(["--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")] + cont[4:stages]
                   + ["--stages", "emotion"] + cont[stages + 2:])


def test_the_plain_unet_baseline_trains_resumes_exactly_and_generates_with_its_model(built, tmp_path):
    root, _ = built
    work, model, out = root / "work", root / "out", tmp_path / "baseline"
    assert baseline.train(work, model, out, steps=3, save_every=2)["steps"] == 3
    logs = []
    record = baseline.train(work, model, out, steps=5, save_every=2, log=logs.append)
    assert logs[0] == "resuming the baseline at step 3" and record["steps"] == 5 and record["clips"] == 12
    baseline.train(work, model, tmp_path / "straight", steps=5, save_every=2)
    resumed, straight = (load_file(str(p / baseline.WEIGHTS)) for p in (out, tmp_path / "straight"))
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)  # 3 + 2 steps are 5 steps
    case = build_cases(16, seed=2, size=64, seconds=(1.0, 1.2))[0]
    plain = baseline.Baseline(out, DemoModel.load(model, steps=2), model)
    frames = plain.generate(case.portrait, case.clip.audio, case.clip.sample_rate, case.caption)
    assert frames.dtype == np.uint8 and frames.shape == (case.clip.label["frames"], 64, 64, 3)


def test_the_baseline_refuses_another_models_cache_or_model(built, built_factor_4, tmp_path):
    (root, _), (other, _) = built, built_factor_4
    with pytest.raises(ValueError, match="another autoencoder's latents"):
        baseline.train(root / "work", other / "out", tmp_path / "b", steps=1)
    with pytest.raises(FileNotFoundError, match="no demo build work folder"):
        baseline.train(root / "out", root / "out", tmp_path / "b", steps=1)
    baseline.train(root / "work", root / "out", tmp_path / "b", steps=1)
    with pytest.raises(ValueError, match="trained on another demo model's"):
        baseline.Baseline(tmp_path / "b", DemoModel.load(other / "out"), other / "out")
