"""Training cache: writer/reader round trip, window and reference choice, audio windows, batches."""
import json

import pytest
import torch
from safetensors.torch import load_file

from emocast_core.audio.windows import frame_windows
from tests.training_helpers import CFG, cache
from training.dataset import ClipCache, write_clip
from training.sampling import EMOTIONS, WindowKey
from training.demo.synthetic import synthetic_clip


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = cache(tmp_path_factory.mktemp("dataset_cache"), clips=3, frames=12)
    write_clip(path, "short", synthetic_clip(CFG, 9, "sad", frames=4))  # too short for 3 + 2 frames
    return path


def test_reader_indexes_clips_and_classes(root):
    data = ClipCache(root, frames=3, sample_margin=3)
    assert len(data) == 3 and data.skipped == ["short"]
    assert data.classes == ["neutral", "happy", "sad"]  # classified from the captions
    assert data.uncond_text.shape == (1, 77, CFG.cross_attention_dim)
    assert all(e > 0 for e in data.energies)


def test_windows_motion_frames_and_reference_margin(root):
    data = ClipCache(root, frames=3, sample_margin=3)
    stored = load_file(str(root / "clip_0001" / "tensors.safetensors"))
    latents, audio = stored["latents"].float(), stored["audio"].float()
    starts = set()
    for seed in range(60):
        s = data[WindowKey(1, seed)]
        start, ref = s["start"], s["ref_index"]
        starts.add(start)
        assert 2 <= start <= 12 - 3
        assert torch.equal(s["motion_latents"], latents[start - 2 : start])
        assert torch.equal(s["latents"], latents[start : start + 3].transpose(0, 1))
        assert torch.equal(s["ref_latent"], latents[ref])
        assert ref <= start - 2 - 3 or ref >= start + 3 - 1 + 3  # >= 3 frames from motion + window
        assert torch.equal(s["audio"], frame_windows(audio, start, start + 3))  # clamped at the clip's edges
        assert s["label"] == EMOTIONS.index("happy")
    assert len(starts) > 4
    assert data[WindowKey(1, 5)]["start"] == data[WindowKey(1, 5)]["start"]  # the seed decides


def test_reference_falls_back_to_the_farthest_frame(root):
    data = ClipCache(root, frames=8, sample_margin=30)  # 12 frames cannot keep 30 away
    for seed in range(20):
        s = data[WindowKey(0, seed)]
        span = (s["start"] - 2, s["start"] + 7)
        dist = lambda i: max(span[0] - i, i - span[1], 0)  # noqa: E731
        assert dist(s["ref_index"]) == max(dist(i) for i in range(12))


def test_collate_builds_the_objective_batch(root):
    data = ClipCache(root, frames=2, sample_margin=3)
    batch = data.collate([data[WindowKey(i, i)] for i in range(3)])
    assert batch["latents"].shape == (3, 4, 2, 8, 8)
    assert batch["motion_latents"].shape == (3, 2, 4, 8, 8)
    assert batch["ref_latent"].shape == (3, 4, 8, 8)
    assert batch["audio"].shape == (3, 2, 5, CFG.audio_layers, CFG.audio_channels)
    assert batch["text"].shape == (3, 77, CFG.cross_attention_dim)
    assert batch["uncond_text"].shape == (1, 77, CFG.cross_attention_dim)
    assert batch["face_embedding"].shape == (3, CFG.face_embed_dim)
    assert batch["face_region"].shape == (3, 3, 64, 64)
    assert [tuple(m.shape) for m in batch["mask_levels"][2]] == [(3, 4)] * 3


def test_errors_name_the_problem(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="prepare the dataset"):
        ClipCache(tmp_path, frames=1)
    with pytest.raises(ValueError, match="has the 40 frames a window needs"):
        ClipCache(root, frames=38)
    bad = synthetic_clip(CFG, 0, "happy")
    bad.mask_levels[1] = bad.mask_levels[1][:, :3]
    with pytest.raises(ValueError, match="mask level 1"):
        write_clip(tmp_path, "bad", bad)
    with pytest.raises(ValueError, match="plain folder name"):
        write_clip(tmp_path, "../escape", synthetic_clip(CFG, 0, "happy"))


def test_rewriting_a_clip_replaces_it(tmp_path):
    write_clip(tmp_path, "c", synthetic_clip(CFG, 0, "happy", frames=6))
    write_clip(tmp_path, "c", synthetic_clip(CFG, 0, "happy", frames=7))
    assert json.loads((tmp_path / "c" / "meta.json").read_text())["frames"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "cache.json"]  # no temporary folders left


def test_synthetic_clips_size_the_face_region_by_the_models_latent_factor():
    for channels in ((16, 32, 64, 128), (16, 32, 64)):  # factor 8 (official), factor 4
        cfg = CFG.with_(face_locator_channels=channels)
        clip = synthetic_clip(cfg, 0, "happy", frames=4, latent_size=16)
        assert clip.latents.shape[-1] == 16 and clip.face_region.shape[-1] == 16 * cfg.latent_factor
