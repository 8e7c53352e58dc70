"""EmoCASTPortraitPrep against real ComfyUI 0.3.75, in-process, with tiny SCRFD/ArcFace nets in models/insightface."""
import importlib
import logging

import pytest
import torch

from scripts.runner.face_models import make_antelope

pytestmark = pytest.mark.comfyui
pytest.importorskip("onnxruntime")

NODE_ID = "EmoCASTPortraitPrep"
FOLDER = "tiny_antelope_pp"


@pytest.fixture(scope="module")
def module(comfy_inprocess):
    make_antelope(comfy_inprocess.models_dir / "insightface" / "models" / FOLDER)
    return importlib.import_module(f"{comfy_inprocess.pack.__name__}.nodes.portrait_prep")


@pytest.fixture
def node(comfy_inprocess, module, monkeypatch):
    """The harness, with the node reachable by id even before nodes/__init__.py registers it."""
    if NODE_ID not in comfy_inprocess.NODE_CLASS_MAPPINGS:
        monkeypatch.setitem(comfy_inprocess.NODE_CLASS_MAPPINGS, NODE_ID, module.EmoCASTPortraitPrep)
    return comfy_inprocess


def portrait_image(width=640, height=480):
    img = torch.full((1, height, width, 3), 0.5)
    img[0, 120:184, 176:240] = torch.tensor([1.0, 0.0, 0.0])  # a 64-px "face" the tiny SCRFD finds
    return img


def run(node, **overrides):
    inputs = dict(image=portrait_image(), face_expand_ratio=1.2, crop_scale=2.0, allow_no_face=False,
                  insightface_dir=FOLDER)
    inputs.update(overrides)
    return node.run_node(NODE_ID, **inputs)


def test_schema(module):
    schema = module.EmoCASTPortraitPrep.GET_SCHEMA()
    assert (schema.node_id, schema.display_name, schema.category) == (NODE_ID, "EmoCAST Portrait Prep",
                                                                      "EmoCAST/conditioning")
    assert [i.id for i in schema.inputs] == ["image", "face_expand_ratio", "crop_scale", "allow_no_face",
                                             "insightface_dir", "resolution", "face_mask", "lip_mask"]
    assert all(i.tooltip for i in schema.inputs)
    assert FOLDER in next(i for i in schema.inputs if i.id == "insightface_dir").options
    assert [o.display_name for o in schema.outputs] == ["portrait", "preview", "face_mask"]
    assert schema.outputs[0].io_type == "EMOCAST_PORTRAIT"


def test_run_gives_portrait_preview_and_mask(node):
    out = run(node)
    portrait, preview, mask = out.result
    assert portrait.image.shape == (1, 3, 512, 512) and portrait.face_embedding.shape == (1, 512)
    assert portrait.crop.box == (144, 88, 272, 216) and portrait.face_detected
    assert preview.shape == (1, 512, 512, 3) and 0 <= float(preview.min()) and float(preview.max()) <= 1
    assert mask.shape == (1, 480, 640) and mask[0, 152, 208] == 1 and mask[0, 10, 10] == 0
    assert out.ui is not None and out.ui.as_dict()["images"]


def test_user_errors_are_clear(node, module):
    with pytest.raises(ValueError, match="^No face found in image.*allow_no_face"):
        run(node, image=torch.full((1, 200, 200, 3), 0.5))
    portrait = run(node, image=torch.full((1, 200, 200, 3), 0.5), allow_no_face=True).result[0]
    assert float(portrait.face_embedding.abs().sum()) == 0
    with pytest.raises(FileNotFoundError, match="antelopev2.*models/insightface/models"):
        run(node, insightface_dir=importlib.import_module(module.__package__ + ".model_folders").NONE_FOUND)
    with pytest.raises(ValueError, match="too small"):
        run(node, image=torch.rand(1, 40, 40, 3))


def test_resolution_sets_the_model_frame_size(node):
    portrait = run(node, resolution=128).result[0]
    assert tuple(portrait.image.shape) == (1, 3, 128, 128)
    assert tuple(portrait.face_region.shape) == (1, 3, 128, 128)
    assert [m[0].shape[-1] for m in portrait.mask_levels] == [16 * 16, 8 * 8, 4 * 4, 2 * 2]


def test_masks_only_detects_nothing_and_takes_the_painted_regions(node, module, caplog):
    """'none' (drawn faces, the demo model): the red square is not looked for; the masks are the regions,
    and no "no face" warning: finding none is what the user chose."""
    options = next(i for i in module.EmoCASTPortraitPrep.GET_SCHEMA().inputs if i.id == "insightface_dir").options
    assert module.MASKS_ONLY_CHOICE in options
    face = torch.zeros(1, 480, 640)
    face[0, 100:300, 150:350] = 1
    lip = torch.zeros(1, 480, 640)
    lip[0, 220:260, 200:300] = 1
    with caplog.at_level(logging.WARNING):
        portrait = run(node, insightface_dir=module.MASKS_ONLY_CHOICE, crop_scale=0.0, face_mask=face, lip_mask=lip,
                       resolution=64).result[0]
    assert "no face" not in caplog.text
    assert not portrait.face_detected and float(portrait.face_embedding.abs().sum()) == 0
    assert portrait.landmark_source.endswith("+user-face+user-lip")
    assert (portrait.crop.width, portrait.crop.height) == (640, 480)  # the whole image
    assert portrait.face_box == (150, 100, 350, 300) and portrait.lip_box == (200, 220, 300, 260)
    # Without masks it is the whole image as the face, as allow_no_face (which 'none' implies) gives.
    bare = run(node, insightface_dir=module.MASKS_ONLY_CHOICE, crop_scale=0.0, resolution=64).result[0]
    assert bare.lip_box is None and float(bare.face_region.min()) > 0.999
