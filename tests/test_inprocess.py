"""A real ComfyUI imported into the test process, beside our own packages."""
import importlib
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.comfyui
REPO = Path(__file__).resolve().parents[1]


def test_comfyui_and_the_pack_load_in_process(comfy_inprocess, comfy_env):
    assert Path(sys.modules["nodes"].__file__).resolve() == (comfy_env.core / "nodes.py").resolve()
    assert comfy_inprocess.models_dir == comfy_inprocess.base_dir / "models"
    assert "EmptyImage" in comfy_inprocess.NODE_CLASS_MAPPINGS
    assert comfy_inprocess.pack.__file__.endswith("ComfyUI-EmoCAST/__init__.py")
    assert comfy_inprocess.pack_node_ids() == comfy_inprocess.declared_node_ids()


def test_pack_model_folders_register_in_the_real_folder_paths(comfy_inprocess):
    importlib.import_module(f"{comfy_inprocess.pack.__name__}.nodes.model_folders")
    folder_paths = comfy_inprocess.folder_paths
    for name in ("emocast", "wav2vec2", "insightface", "mediapipe", "audio_separator", "text_encoders", "vae"):
        paths = folder_paths.get_folder_paths(name)
        assert str(comfy_inprocess.models_dir / name) in paths, (name, paths)


def test_emocast_core_still_imports_beside_comfyui(comfy_inprocess):
    import emocast_core

    assert Path(emocast_core.__file__).resolve().parent == Path(__file__).resolve().parents[1] / "emocast_core"


def test_run_node_executes_a_v3_core_node(comfy_inprocess):
    comfy_inprocess.load_core_extra("nodes_video")
    out = comfy_inprocess.run_node("CreateVideo", images=torch.rand(3, 16, 24, 3), fps=25.0)
    video = out.result[0]
    assert video.get_dimensions() == (24, 16)
    assert video.get_frame_count() == 3


def test_run_node_executes_a_v1_core_node_under_inference_mode(comfy_inprocess):
    (image,) = comfy_inprocess.run_node("EmptyImage", width=8, height=4, batch_size=2, color=0xFF0000)
    assert image.shape == (2, 4, 8, 3) and image.is_inference()
    assert torch.equal(image[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_comfyui_reads_the_registry_metadata(comfy_inprocess):
    from comfy_config import config_parser

    config = config_parser.extract_node_configuration(str(comfy_inprocess.base_dir / "custom_nodes" / "ComfyUI-EmoCAST"))
    assert config.tool_comfy.publisher_id == "emocast"
    assert config.tool_comfy.display_name == "ComfyUI-EmoCAST"
    assert config.project.name == "emocast" and config.project.version
    urls = config.project.urls
    assert urls.repository.startswith("https://github.com/")
    assert urls.issues == urls.repository + "/issues"  # the Registry reads "Issues", not "Bug Tracker"
    # The icon is the repository's docs/icon.png: square, at most 400 px, as the Registry asks.
    assert config.tool_comfy.icon == urls.repository.replace("github.com", "raw.githubusercontent.com") \
        + "/main/docs/icon.png"
    from PIL import Image
    with Image.open(REPO / "docs" / "icon.png") as icon:
        assert icon.format == "PNG" and icon.width == icon.height <= 400
    assert config.project.supported_comfyui_version == ">=0.3.75"
    assert config.project.supported_os == ["OS Independent"]
    assert config.project.supported_accelerators == ["GPU :: NVIDIA CUDA"]


def test_readme_lists_exactly_the_registered_nodes(comfy_inprocess):
    """README 'Nodes' table = nodes/__init__.py NODE_CLASSES, so the README stays true."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Nodes", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {line.split("`")[1] for line in table}
    assert listed == comfy_inprocess.declared_node_ids(), (
        "update the README 'Nodes' table: it lists "
        f"{sorted(listed)}, NODE_CLASSES registers {sorted(comfy_inprocess.declared_node_ids())}")
