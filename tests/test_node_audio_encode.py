"""AudioEmotiveEncode against the real ComfyUI 0.3.75, in-process (tests/harness `comfy_inprocess`).

The node is run the way the executor runs it (class clone, inference mode),
with a tiny wav2vec2 folder in the ComfyUI models/wav2vec2/ folder.
"""
import importlib
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.comfyui

NODE_ID = "AudioEmotiveEncode"
MODEL = "wav2vec2-tiny"


@pytest.fixture(scope="module")
def comfy(comfy_inprocess, parity_dir):
    folder = comfy_inprocess.models_dir / "wav2vec2" / MODEL
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(parity_dir / "wav2vec_tiny_config.json", folder / "config.json")
    shutil.copy(parity_dir / "wav2vec_tiny_preprocessor_config.json", folder / "preprocessor_config.json")
    shutil.copy(parity_dir / "wav2vec_tiny.safetensors", folder / "model.safetensors")
    return comfy_inprocess


@pytest.fixture
def node(comfy, monkeypatch):
    """The node class; registered for run_node if nodes/__init__.py does not list it (yet)."""
    module = importlib.import_module(f"{comfy.pack.__name__}.nodes.audio_encode")
    if NODE_ID not in comfy.NODE_CLASS_MAPPINGS:
        monkeypatch.setitem(comfy.NODE_CLASS_MAPPINGS, NODE_ID, module.AudioEmotiveEncode)
    return module


def _run(comfy, audio, model=MODEL, fps=25.0, separate_vocals=False):
    out = comfy.run_node(NODE_ID, audio=audio, wav2vec_model=model, fps=fps, separate_vocals=separate_vocals)
    return out.result[0]


def _voice(seconds, rate, channels=2, batch=1):
    t = torch.arange(int(seconds * rate)) / rate
    wave = 0.3 * torch.sin(2 * math.pi * 180 * t) * (0.6 + 0.4 * torch.sin(2 * math.pi * 3 * t))
    return {"waveform": wave.repeat(batch, channels, 1), "sample_rate": rate}


def test_schema(node):
    schema = node.AudioEmotiveEncode.define_schema()
    assert (schema.node_id, schema.display_name, schema.category) == \
        (NODE_ID, "EmoCAST Audio Encode", "EmoCAST/conditioning")
    assert [i.id for i in schema.inputs] == ["audio", "wav2vec_model", "fps", "separate_vocals"]
    assert all(i.tooltip for i in schema.inputs)
    combo = schema.inputs[1]
    assert MODEL in combo.options
    assert "onnxruntime" in schema.inputs[3].tooltip and "Kim_Vocal_2.onnx" in schema.inputs[3].tooltip
    assert schema.outputs[0].io_type == "EMOCAST_AUDIO" and schema.outputs[0].display_name == "audio_features"


def test_parity_fixture_through_the_node(comfy, node, parity_dir):
    wave = load_file(parity_dir / "inputs.safetensors")["audio_features.waveform"]
    expected = load_file(parity_dir / "expected.safetensors")
    audio = {"waveform": wave[None, None], "sample_rate": 16000}
    feats = _run(comfy, audio)
    assert type(feats).__name__ == "AudioFeatures"
    assert (feats.num_frames, feats.padded_frames, feats.num_clips, feats.fps) == (25, 32, 2, 25.0)
    torch.testing.assert_close(feats.hidden_states, expected["audio_features.padded.hidden_states"],
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(feats.clip_windows(1), expected["audio_features.padded.windows"][16:],
                               rtol=1e-4, atol=1e-5)
    assert torch.equal(feats.source_audio["waveform"], audio["waveform"]) and feats.source_audio["sample_rate"] == 16000


def test_batch_item_zero_stereo_44k(comfy, node):
    audio = _voice(1.3, 44100, channels=2, batch=2)
    audio["waveform"][1] = 0  # a silent second item must not matter
    feats = _run(comfy, audio, fps=30.0)
    assert feats.num_frames == math.ceil(1.3 * 30) and feats.padded_frames == 48
    assert feats.waveform_16k.shape == (int(1.3 * 16000),)
    assert feats.source_audio["waveform"].shape == (1, 2, int(1.3 * 44100))
    core = importlib.import_module(f"{comfy.pack.__name__}.emocast_core.audio.loader")
    bundle = next(b for b in core._CACHE.values() if b.path.endswith(MODEL))
    import comfy.model_management as mm
    assert next(bundle.model.parameters()).device == mm.unet_offload_device()  # offloaded after use
    assert _run(comfy, audio, fps=30.0).hidden_states.shape == feats.hidden_states.shape
    assert sum(b.path.endswith(MODEL) for b in core._CACHE.values()) == 1  # loaded once


@pytest.mark.parametrize("audio, message", [
    ({"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}, "audio: the audio is silent"),
    ({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}, "audio: the waveform is empty"),
    ({"waveform": torch.ones(0, 1, 100), "sample_rate": 16000}, "AUDIO batch is empty"),
    ({"waveform": torch.ones(1, 100), "sample_rate": 16000}, r"\[batch, channels, samples\], got \[1, 100\]"),
    ({"samples": torch.ones(1, 1, 100)}, "expected a ComfyUI AUDIO"),
    ({"waveform": torch.ones(1, 1, 100) * 0.1, "sample_rate": 16000}, "shorter than one video frame"),
    ({"waveform": torch.ones(1, 1, 100) * 0.1, "sample_rate": 16}, "sample rate 16 Hz is not plausible"),
])
def test_bad_audio_is_reported_naming_the_input(comfy, node, audio, message):
    with pytest.raises(ValueError, match=f"^(?=audio: ).*{message}"):
        _run(comfy, audio)


def test_missing_model_placeholder(comfy, node, tmp_path, monkeypatch):
    empty = tmp_path / "empty_wav2vec2"
    empty.mkdir()
    monkeypatch.setitem(comfy.folder_paths.folder_names_and_paths, "wav2vec2", ([str(empty)], set()))
    combo = node.AudioEmotiveEncode.define_schema().inputs[1]
    assert combo.options == [node.NO_MODEL]
    with pytest.raises(FileNotFoundError, match="wav2vec2-base-960h.*models/wav2vec2/"):
        _run(comfy, _voice(1.0, 16000), model=node.NO_MODEL)


def test_separate_vocals_without_the_model_file(comfy, node, tmp_path, monkeypatch):
    monkeypatch.setitem(comfy.folder_paths.folder_names_and_paths, "audio_separator", ([str(tmp_path)], {".onnx"}))
    separation = importlib.import_module(f"{comfy.pack.__name__}.emocast_core.audio.separation")
    monkeypatch.setattr(separation, "onnxruntime_available", lambda: False)
    with pytest.raises(FileNotFoundError, match="Kim_Vocal_2.onnx not found.*models/audio_separator/"):
        _run(comfy, _voice(1.0, 16000), separate_vocals=True)
    (tmp_path / "Kim_Vocal_2.onnx").write_bytes(b"")
    with pytest.raises(RuntimeError, match="^separate_vocals needs the optional package "
                                           "onnxruntime"):
        _run(comfy, _voice(1.0, 16000), separate_vocals=True)


def test_separate_vocals_with_an_onnx_model(comfy, node, tmp_path, monkeypatch):
    """Only where onnxruntime and onnx (to write an identity stand-in for Kim_Vocal_2) are installed."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    shape = [1, 4, 3072, 256]
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "Kim_Vocal_2.onnx")
    monkeypatch.setitem(comfy.folder_paths.folder_names_and_paths, "audio_separator", ([str(tmp_path)], {".onnx"}))
    feats = _run(comfy, _voice(2.0, 44100), separate_vocals=True)
    assert feats.vocals_separated and feats.num_frames == 50


def test_cancel_is_honoured(comfy, node):
    import comfy.model_management as mm

    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            _run(comfy, _voice(1.0, 16000))
    finally:
        mm.interrupt_current_processing(False)


def _wav2vec2_patchers(comfy, node):
    """ComfyUI's loaded models that hold this test's wav2vec2."""
    import comfy.model_management as mm

    audio = importlib.import_module(f"{comfy.pack.__name__}.emocast_core.audio")
    model = audio.load_wav2vec2(node.wav2vec_folder(MODEL), device=mm.unet_offload_device()).model
    return [m.model for m in mm.current_loaded_models
            if m.model is not None and getattr(m.model.model, "held", None) is model]


def test_wav2vec2_is_one_of_comfys_loaded_models(comfy, node):
    """ComfyUI places the wav2vec2 (it frees room for it) and may offload it later, like its own models."""
    import comfy.model_management as mm

    _run(comfy, _voice(1.0, 16000))
    (patcher,) = _wav2vec2_patchers(comfy, node)
    assert patcher.load_device == mm.get_torch_device()
    assert next(patcher.model.held.parameters()).device == patcher.load_device
    _run(comfy, _voice(1.2, 16000))
    assert _wav2vec2_patchers(comfy, node) == [patcher]  # a second run finds the same loaded model
    mm.unload_all_models()  # what "Free model memory" does
    assert _wav2vec2_patchers(comfy, node) == []
    feats = _run(comfy, _voice(1.0, 16000))  # and it comes back on the next run
    assert feats.num_frames == 25 and _wav2vec2_patchers(comfy, node) == [patcher]
