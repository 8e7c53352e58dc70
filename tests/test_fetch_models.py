"""The model fetch helper's plan: what goes where, idempotence, and its command line (no network)."""
from pathlib import Path

from emocast_core import fetch_models


def test_plan_puts_files_where_the_loaders_look():
    dests = {d.dest for d in fetch_models.plan()}
    assert "models/emocast/net.pth" in dests
    assert "models/vae/sd-vae-ft-mse.safetensors" in dests
    for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
        assert f"models/wav2vec2/wav2vec2-base-960h/{name}" in dests
    for name in ("config.json", "vocab.json", "merges.txt", "model.safetensors"):
        assert f"models/text_encoders/clip-vit-large-patch14/{name}" in dests
    assert "models/mediapipe/face_landmarker_v2_with_blendshapes.task" in dests
    assert not any("audio_separator" in d for d in dests)
    assert any("Kim_Vocal_2.onnx" in d.dest for d in fetch_models.plan(vocal_separation=True))
    assert all(d.url or (d.repo and d.filename) for d in fetch_models.plan(True))


def test_pending_skips_files_already_in_place(tmp_path):
    items = fetch_models.plan()
    assert fetch_models.pending(items, tmp_path) == items
    present = tmp_path / "models/emocast/net.pth"
    present.parent.mkdir(parents=True)
    present.write_bytes(b"x")
    empty = tmp_path / "models/vae/sd-vae-ft-mse.safetensors"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")  # an interrupted copy is not "present"
    todo = {d.dest for d in fetch_models.pending(items, tmp_path)}
    assert "models/emocast/net.pth" not in todo
    assert "models/vae/sd-vae-ft-mse.safetensors" in todo


def test_dry_run_prints_the_plan_and_downloads_nothing(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    assert fetch_models.main(["--comfyui", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[missing] models/emocast/net.pth" in out and "antelopev2" in out
    assert [p for p in Path(tmp_path, "models").rglob("*") if p.is_file()] == []


def test_rejects_a_folder_that_is_not_comfyui(tmp_path, capsys):
    assert fetch_models.main(["--comfyui", str(tmp_path / "nope")]) == 2
    assert "no models/ folder" in capsys.readouterr().err
