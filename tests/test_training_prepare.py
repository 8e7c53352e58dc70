"""Dataset preparation from real video files: a tiny folder of mp4/mov clips -> the training cache.

Models: the placeholder wav2vec2 (12 x 768), CLIP text (768) and SCRFD/ArcFace
stand-ins (red squares are faces), and a slim diffusers VAE, at resolution 64.
"""
import json
import math
import shutil
import subprocess
import wave
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from emocast_core.audio import load_wav2vec2
from emocast_core.face import load_face_models
from emocast_core.pipeline import DiffusersVAECodec
from emocast_core.text import EMOTION_PRESETS, load_clip_text
from emocast_core.video import write_mp4
from scripts.runner.placeholder_models import build, default_cache
from training.dataset import ClipCache
from training.prepare import REPORT_FILE, PrepareConfig, PrepareModels, _segments, prepare_dataset
from training.prepare_sources import frames_at, scan_folder
from training.sampling import WindowKey

pytest.importorskip("onnxruntime")
SIZE = 64


def speech(seconds: float, voice: str, text: str) -> tuple[np.ndarray, int]:
    """espeak-ng speech when installed (`voice` = "espeak"), else a voiced, syllable-modulated tone."""
    if voice == "espeak":
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed (.ci/run installs it)")
        raw = subprocess.run(["espeak-ng", "--stdout", "-s", "220", text], check=True, capture_output=True).stdout
        import io
        with wave.open(io.BytesIO(raw)) as w:
            rate, data = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
        return (data.astype(np.float32) / 32768)[None], rate
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 120 * h * t) / h for h in range(1, 8))
    return (0.3 * voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2).astype(np.float32)[None], rate


def frames(seconds: float, face=True, fps=30) -> np.ndarray:
    n = round(seconds * fps)
    video = np.full((n, 128, 128, 3), 0.5, np.float32)
    if not face:
        video[..., :2] = 0.1  # blue: no red square, no face
        return video
    for i in range(n):
        x = 56 + round(3 * np.sin(i / 4))  # the 13-px "face" (64 px in SCRFD's 640 letterbox) moves a little
        video[i, 52:65, x:x + 13] = (1.0, 0.0, 0.0)
    return video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    a = speech(1.6, "synthetic", "")
    write_mp4(folder / "a.mp4", frames(1.6), 30, audio=a[0], sample_rate=a[1])
    (folder / "a.txt").write_text("emotion: ang\nA man talks, frowning and glaring.\n")
    b = speech(1.2, "synthetic", "")
    write_mp4(folder / "b.mov", frames(1.2), 30, audio=b[0], sample_rate=b[1])
    write_mp4(folder / "c_mute.mp4", frames(1.0), 30)  # no audio track
    write_mp4(folder / "d_faceless.mp4", frames(1.0, face=False), 30, audio=a[0], sample_rate=a[1])
    (folder / "e_broken.mp4").write_bytes(b"not a video at all")
    (folder / "notes.pdf").write_bytes(b"%PDF")
    (folder / "b.txt").write_text("ignored: metadata.jsonl describes b.mov")
    lines = [{"file": "b.mov", "caption": "happy"}, {"file": "c_mute.mp4", "caption": "quiet"},
             {"file": "d_faceless.mp4", "caption": "x", "emotion": "neu"},
             {"file": "e_broken.mp4", "caption": "x"}]
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    return folder


class CountingVAE:
    def __init__(self, codec):
        self.codec, self.frames = codec, 0

    def encode(self, pixels):
        assert pixels.shape[1:] == (3, SIZE, SIZE) and -1 <= pixels.min() and pixels.max() <= 1
        self.frames += len(pixels)
        return self.codec.encode(pixels)


@pytest.fixture(scope="module")
def models(comfy_env):
    placeholders = build(default_cache(), comfy_env.core)
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(32,) * 4, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4).eval()
    return PrepareModels(
        vae=CountingVAE(DiffusersVAECodec(vae)),
        wav2vec=load_wav2vec2(placeholders / "wav2vec2" / "wav2vec2-base-960h"),
        text=load_clip_text(str(placeholders / "text_encoders" / "clip-vit-large-patch14")),
        face=load_face_models(str(placeholders / "insightface" / "models" / "antelopev2")))


@pytest.fixture(scope="module")
def prepared(videos, models, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache") / "ds"
    calls = []
    report = prepare_dataset(videos, root, models, PrepareConfig(resolution=SIZE),
                             progress=lambda done, total: calls.append((done, total)))
    return root, report, calls


def test_good_clips_have_the_cache_shapes(prepared):
    root, report, calls = prepared
    assert sorted(report.prepared) == ["a", "b"] and report.existing == []
    for clip, seconds in (("a", 1.6), ("b", 1.2)):
        t = round(seconds * 25)  # the audio was written to the video's length
        tensors = load_file(str(root / clip / "tensors.safetensors"))
        assert tensors["latents"].shape == (t, 4, SIZE // 8, SIZE // 8)
        assert tensors["audio"].shape == (t, 12, 768) and tensors["text"].shape == (77, 768)
        assert tensors["face_embedding"].shape == (512,) and tensors["face_embedding"].abs().sum() > 0
        assert tensors["face_region"].shape == (3, SIZE, SIZE)
        assert [tensors[f"mask_level_{lv}"].shape for lv in range(4)] == [(3, (8 >> lv) ** 2) for lv in range(4)]
        meta = json.loads((root / clip / "meta.json").read_text())
        assert meta["frames"] == t and meta["fps"] == 25.0 and meta["energy"] > 0
    assert json.loads((root / "a" / "meta.json").read_text())["emotion"] == "angry"
    b = json.loads((root / "b" / "meta.json").read_text())
    assert (b["caption"], b["emotion"]) == (EMOTION_PRESETS["happy"], None)  # jsonl beats b.txt; name -> preset
    assert load_file(str(root / "uncond_text.safetensors"))["text"].shape == (77, 768)
    assert calls[-1] == (5, 5) and len(calls) > 6  # per video and per VAE batch


def test_bad_files_are_skipped_with_reasons(prepared):
    root, report, _ = prepared
    reasons = {s["file"]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"c_mute.mp4", "d_faceless.mp4", "e_broken.mp4"}
    assert "no audio track" in reasons["c_mute.mp4"] and "no face" in reasons["d_faceless.mp4"]
    assert report.ignored == ["notes.pdf"]
    on_disk = json.loads((root / REPORT_FILE).read_text())
    assert on_disk["prepared"] == report.prepared and len(on_disk["skipped"]) == 3
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["a", "b"]


def test_second_run_skips_existing_clips(prepared, videos, models):
    root, first, _ = prepared
    before = models.vae.frames
    report = prepare_dataset(videos, root, models, PrepareConfig(resolution=SIZE))
    assert report.prepared == [] and sorted(report.existing) == ["a", "b"] and models.vae.frames == before
    assert len(report.skipped) == 3 and report.stale == []
    with pytest.raises(ValueError, match="resolution 64 \\(now 128\\).*another cache name"):
        prepare_dataset(videos, root, models, PrepareConfig(resolution=128))


def test_cache_feeds_a_training_batch(prepared):
    cache = ClipCache(prepared[0], frames=14)
    batch = cache.collate([cache[WindowKey(0, 1)], cache[WindowKey(1, 2)]])
    assert batch["latents"].shape == (2, 4, 14, 8, 8) and batch["audio"].shape == (2, 14, 5, 12, 768)
    assert batch["mask_levels"][0][0].shape == (2, 64) and batch["uncond_text"].shape == (1, 77, 768)


def test_a_factor_4_autoencoder_gets_masks_on_its_latent_grid(videos, models, tmp_path):
    """The demo model's autoencoder downsamples by 4: the cache's mask levels follow its 16x16 latents."""
    torch.manual_seed(0)
    vae4 = AutoencoderKL(block_out_channels=(32,) * 3, down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=1, latent_channels=4).eval()
    report = prepare_dataset(videos, tmp_path / "ds", replace(models, vae=DiffusersVAECodec(vae4)),
                             PrepareConfig(resolution=SIZE, max_seconds=1.0, min_frames=8))
    assert "a_000" in report.prepared, report.summary()
    tensors = load_file(str(tmp_path / "ds" / "a_000" / "tensors.safetensors"))
    assert tensors["latents"].shape[-2:] == (SIZE // 4, SIZE // 4)
    assert [tensors[f"mask_level_{lv}"].shape for lv in range(4)] == [(3, (16 >> lv) ** 2) for lv in range(4)]


def test_interrupt_keeps_complete_clips_and_resumes(videos, models, tmp_path):
    root = tmp_path / "ds"
    config = PrepareConfig(resolution=SIZE, max_seconds=1.0, min_frames=8)  # a: 2 x 20 frames, b: 2 x 15

    def stop_after_first_clip(done, total):
        if (root / "a_000" / "meta.json").is_file():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(videos, root, models, config, progress=stop_after_first_clip)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["a_000"]  # no .partial folder left
    assert json.loads((root / REPORT_FILE).read_text())["interrupted"] is True
    report = prepare_dataset(videos, root, models, config)
    assert report.existing == ["a_000"] and report.prepared == ["a_001", "b_000", "b_001"]
    assert [json.loads((root / c / "meta.json").read_text())["frames"] for c in report.prepared] == [20, 15, 15]
    assert len(ClipCache(root, frames=6)) == 4


def test_espeak_speech_video(models, tmp_path):
    audio, rate = speech(0, "espeak", "Hello there, how are you today?")
    seconds = audio.shape[1] / rate
    write_mp4(tmp_path / "talk.mp4", frames(seconds, fps=24), 24, audio=audio[0], sample_rate=rate)
    (tmp_path / "talk.txt").write_text("emotion: happy")
    report = prepare_dataset(tmp_path, tmp_path / "cache", models, PrepareConfig(resolution=SIZE))
    assert report.prepared == ["talk"], report.summary()
    meta = json.loads((tmp_path / "cache" / "talk" / "meta.json").read_text())
    assert abs(meta["frames"] - seconds * 25) <= 2 and meta["caption"] == EMOTION_PRESETS["happy"]


@pytest.mark.parametrize("fps", [30, 24])
def test_frames_are_resampled_to_25_fps_by_nearest_timestamp(tmp_path, fps):
    levels = np.arange(round(1.2 * fps)) % 28 * 9 / 255  # each frame's index, readable after H.264
    write_mp4(tmp_path / "v.mp4", np.broadcast_to(levels[:, None, None, None], (len(levels), 64, 64, 3)), fps,
              quality=0)
    got = [round(float(f.mean()) / 9) for f in frames_at(tmp_path / "v.mp4")]
    count = math.ceil(len(levels) * 25 / fps - 1e-6)  # the grid times before the last frame ends
    nearest = [min(math.floor(k * fps / 25 + 0.5 - 1e-9), len(levels) - 1) for k in range(count)]  # ties: earlier
    want = [i % 28 for i in nearest]
    assert got == want


def test_segments_are_equal_and_bounded():
    config = PrepareConfig(max_seconds=10)
    assert _segments(250, config) == [(0, 250)]
    assert _segments(251, config) == [(0, 126), (126, 251)]
    assert _segments(600, config) == [(0, 200), (200, 400), (400, 600)]
    assert _segments(600, PrepareConfig(max_seconds=0)) == [(0, 600)]
    with pytest.raises(ValueError, match="max_seconds"):
        PrepareConfig(max_seconds=0.2).check()


def test_descriptions(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.mp4", "d.webm", "e.mkv"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a.txt").write_text("Emotion: SAD\n\n")  # label only -> the preset sentence
    (tmp_path / "b.txt").write_text("emotion: grumpy\nhmm")
    (tmp_path / "c.txt").write_text("A calm talk.\nSecond line.")
    (tmp_path / "metadata.jsonl").write_text('{"file": "d.webm", "caption": "fine", "emotion": "hap"}\n'
                                             '{"file": "gone.mp4", "caption": "x"}\n')
    sources, ignored, skipped = scan_folder(tmp_path)
    got = {s.path.name: (s.caption, s.emotion) for s in sources}
    assert got == {"a.mp4": (EMOTION_PRESETS["sad"], "sad"), "c.mp4": ("A calm talk.\nSecond line.", None),
                   "d.webm": ("fine", "happy")}
    reasons = {s["file"]: s["reason"] for s in skipped}
    assert "grumpy" in reasons["b.mp4"] and "no caption" in reasons["e.mkv"] and "gone.mp4" in reasons
    (tmp_path / "metadata.jsonl").write_text('{"file": "d.webm"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        scan_folder(tmp_path)
    (tmp_path / "metadata.jsonl").unlink()
    for name in ("a.mp4", "b.mp4", "c.mp4", "d.webm", "e.mkv"):
        (tmp_path / name).unlink()
    with pytest.raises(ValueError, match="no videos"):
        scan_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="videos folder not found"):
        scan_folder(tmp_path / "nope")


@pytest.mark.slow
def test_training_loss_falls_on_prepared_videos(prepared):
    """Videos written with PyAV -> prepared cache -> a few dozen LoRA steps lower the held-fixed evaluation loss."""
    from emocast_core.weights import load_net
    from training.trainer import EmoCASTTrainer, TrainConfig

    root, _, _ = prepared
    net = load_net(default_cache() / "emocast" / "net.pth", dtype=torch.float32)  # the reduced model, rule weights
    trainer = EmoCASTTrainer(net, root, TrainConfig(stage="appearance", lr=2e-3, rank=8, alpha=8.0, seed=0))
    try:
        before = trainer.evaluate(batches=6, seed=1)
        losses = trainer.run(30)
        after = trainer.evaluate(batches=6, seed=1)
    finally:
        trainer.close()
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    assert after < 0.8 * before, (before, after)
