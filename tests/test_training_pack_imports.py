"""Inside the pack (`<folder>.training`), training modules must use the pack's own core, not a top-level copy.

ComfyUI imports the pack under its folder name; `training` then reaches the core
relatively.  Loaded as a probe package, each module's core names must live there.
"""
import importlib
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CASES = [
    ("training.trainer", "EmoCASTTrainer", "training.trainer"),
    ("training._core", "EmoCASTNet", "emocast_core.models.net"),
    ("training.prepare", "prepare_portrait", "emocast_core.face.portrait"),
    ("training.prepare_sources", "expand_preset", "emocast_core.text.presets"),
    ("training.demo.synthetic_faces", "write_mp4", "emocast_core.video.writer"),
    ("training.demo.build", "EmoCASTNet", "emocast_core.models.net"),
    ("training.demo.generate", "EmoCASTPipeline", "emocast_core.pipeline.emocast_pipeline"),
    ("training.demo.data", "prepare_portrait", "emocast_core.face.portrait"),
    ("training.demo.encoders", "wav2vec", "emocast_core.audio.wav2vec"),
    ("training.demo.figure", "expand_preset", "emocast_core.text.presets"),
    ("training.demo.bench", "EmoCASTNet", "emocast_core.models.net"),
    ("training.demo.baseline", "frame_windows", "emocast_core.audio.windows"),
]


@pytest.fixture
def probe():
    name = "emocast_pack_probe"
    pack = types.ModuleType(name)
    pack.__path__ = [str(REPO)]
    sys.modules[name] = pack
    yield name
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


@pytest.mark.parametrize("module, attribute, home", CASES)
def test_training_uses_the_packs_own_core(probe, module, attribute, home):
    loaded = importlib.import_module(f"{probe}.{module}")
    found = getattr(loaded, attribute)
    assert getattr(found, "__module__", None) == f"{probe}.{home}" or found.__name__ == f"{probe}.{home}"
