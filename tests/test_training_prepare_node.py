"""EmoCASTPrepareDataset against real ComfyUI 0.3.75, in-process, with a ComfyUI VAE and placeholder models."""
import importlib
import json
from pathlib import Path

import pytest

from emocast_core.video import write_mp4
from scripts.runner.placeholder_models import build, default_cache
from tests.test_training_prepare import frames, speech

pytestmark = pytest.mark.comfyui
pytest.importorskip("onnxruntime")

NODE_ID = "EmoCASTPrepareDataset"
NAMES = {"wav2vec2": "prep_w2v", "text_encoders": "prep_clip"}


@pytest.fixture(scope="module")
def module(comfy_inprocess, comfy_env):
    placeholders = build(default_cache(), comfy_env.core)
    models = comfy_inprocess.models_dir
    for folder, name, source in (("wav2vec2", NAMES["wav2vec2"], "wav2vec2/wav2vec2-base-960h"),
                                 ("text_encoders", NAMES["text_encoders"], "text_encoders/clip-vit-large-patch14"),
                                 ("insightface/models", "prep_antelope", "insightface/models/antelopev2")):
        link = models / folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(placeholders / source, target_is_directory=True)
    return importlib.import_module(f"{comfy_inprocess.pack.__name__}.nodes.train_dataset")


@pytest.fixture
def node(comfy_inprocess, module, monkeypatch):
    if NODE_ID not in comfy_inprocess.NODE_CLASS_MAPPINGS:
        monkeypatch.setitem(comfy_inprocess.NODE_CLASS_MAPPINGS, NODE_ID, module.EmoCASTPrepareDataset)
    return comfy_inprocess


@pytest.fixture(scope="module")
def comfy_vae(module):
    import comfy.sd
    import comfy.utils

    return comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(default_cache() / "vae" / "sd-vae-ft-mse.safetensors")))


def run(node, vae, **overrides):
    inputs = dict(videos_dir="", cache_name="node_ds", vae=vae, wav2vec_model=NAMES["wav2vec2"],
                  text_encoder=NAMES["text_encoders"], insightface_dir="prep_antelope", resolution=64,
                  crop_scale=2.5, max_seconds=10.0)
    inputs.update(overrides)
    return node.run_node(NODE_ID, **inputs)


def test_schema(module):
    schema = module.EmoCASTPrepareDataset.GET_SCHEMA()
    assert (schema.node_id, schema.display_name, schema.category) == (NODE_ID, "EmoCAST Prepare Training Data",
                                                                      "EmoCAST/training")
    assert [i.id for i in schema.inputs] == ["videos_dir", "cache_name", "vae", "wav2vec_model", "text_encoder",
                                             "insightface_dir", "resolution", "crop_scale", "max_seconds", "clip"]
    assert all(i.tooltip for i in schema.inputs)
    assert [o.display_name for o in schema.outputs] == ["dataset", "report"]
    assert schema.outputs[0].io_type == "EMOCAST_DATASET"


@pytest.fixture
def videos(node, request):
    """A fresh folder of videos inside ComfyUI's input folder, where videos_dir must point."""
    folder = Path(node.folder_paths.get_input_directory()) / f"videos_{request.node.name}"
    folder.mkdir(parents=True)
    return folder


def test_prepares_a_folder_with_a_comfy_vae(node, module, comfy_vae, videos):
    tmp_path = videos
    audio, rate = speech(1.0, "synthetic", "")
    write_mp4(tmp_path / "talk.mp4", frames(1.0), 30, audio=audio[0], sample_rate=rate)
    (tmp_path / "talk.txt").write_text("emotion: sad\nShe speaks softly.")
    (tmp_path / "readme.md").write_text("not a video")
    fingerprint = module.EmoCASTPrepareDataset.fingerprint_inputs(videos_dir=str(tmp_path), cache_name="node_ds")
    out = run(node, comfy_vae, videos_dir=str(tmp_path))
    dataset, report = out.result
    root = Path(node.folder_paths.get_output_directory()) / "emocast_datasets" / "node_ds"
    assert dataset["path"] == str(root) and dataset["clips"] == ["talk"] and dataset["prepared"] == 1
    assert dataset["resolution"] == 64 and dataset["text_dim"] == 768
    assert "1 prepared" in report and out.ui.as_dict()["text"] == (report,)
    meta = json.loads((root / "talk" / "meta.json").read_text())
    assert meta["frames"] == 25 and meta["emotion"] == "sad"
    assert module.EmoCASTPrepareDataset.fingerprint_inputs(videos_dir=str(tmp_path), cache_name="node_ds") \
        != fingerprint  # the cache gained a clip
    again = run(node, comfy_vae, videos_dir=str(tmp_path)).result[0]
    assert (again["prepared"], again["existing"]) == (0, 1)


def test_clear_errors(node, module, comfy_vae, videos, tmp_path):
    with pytest.raises(ValueError, match="^videos_dir: .* is not inside ComfyUI's input folder"):
        run(node, comfy_vae, videos_dir=str(tmp_path))
    with pytest.raises(ValueError, match="videos_dir: '../output' is not inside"):
        run(node, comfy_vae, videos_dir="../output")
    tmp_path = videos
    with pytest.raises(FileNotFoundError, match="^videos_dir: .*is not a folder"):
        run(node, comfy_vae, videos_dir=str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="^no videos"):
        run(node, comfy_vae, videos_dir=str(tmp_path))
    with pytest.raises(ValueError, match="cache_name must be a plain folder name"):
        run(node, comfy_vae, videos_dir=str(tmp_path), cache_name="../escape")
    blue = frames(1.0, face=False)
    audio, rate = speech(1.0, "synthetic", "")
    write_mp4(tmp_path / "blue.mp4", blue, 30, audio=audio[0], sample_rate=rate)
    (tmp_path / "blue.txt").write_text("A person talks.")
    with pytest.raises(ValueError, match="(?s)no video became training data.*blue.mp4: no face"):
        run(node, comfy_vae, videos_dir=str(tmp_path), cache_name="node_ds_blue")
    relative = Path(node.folder_paths.get_input_directory()) / "prep_rel"
    relative.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ValueError, match=f"no videos .* in {relative}"):
        run(node, comfy_vae, videos_dir="prep_rel")
