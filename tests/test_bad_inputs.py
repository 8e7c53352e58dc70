"""Bad input through a real ComfyUI server, as a careless or hostile API client sends it.

Each case is a prompt posted to `/prompt`. The outcome a user gets is checked: a
clear error that names the input, repeats nothing long, and reveals nothing
outside the model folders; then the server must still run the next prompt.
Add a case here for every new class of bad input.
"""
import io
import math
import os
import wave

import numpy as np
import pytest
import torch

from scripts.runner.comfy_server import ComfyServer, PromptRejected
from scripts.runner.demo import DEMO_MODELS

pytestmark = pytest.mark.comfyui

SPEECH = "bad_inputs_speech.wav"
W2V, TEXT, CKPT = "bad_inputs_w2v", "bad_inputs_text", "bad_inputs_net.safetensors"
PWNED = "/tmp/emocast_bad_inputs_pwned"


class _Exploit:
    def __reduce__(self):
        return (open, (PWNED, "w"))


def _wav(seconds=0.5, rate=16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * math.pi * 200 * t) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(comfy_env, parity_dir, tmp_path_factory):
    """A server of its own: the errors provoked here must not show up in the shared server's log,
    which other tests read for the pack's own tracebacks."""
    with ComfyServer(comfy_env, tmp_path_factory.mktemp("bad_inputs_server")) as comfy_server:
        yield _furnish(comfy_server, parity_dir)


def _furnish(comfy_server, parity_dir):
    comfy_server.put_input(SPEECH, _wav())
    w2v = comfy_server.models_dir / "wav2vec2" / W2V
    w2v.mkdir(parents=True, exist_ok=True)
    for src, dst in (("wav2vec_tiny_config.json", "config.json"), ("wav2vec_tiny.safetensors", "model.safetensors"),
                     ("wav2vec_tiny_preprocessor_config.json", "preprocessor_config.json")):
        (w2v / dst).write_bytes((parity_dir / src).read_bytes())
    comfy_server.put_model("text_encoders", TEXT, DEMO_MODELS / "text_encoders" / "emocast-demo-text")
    comfy_server.put_model("emocast", CKPT, DEMO_MODELS / "emocast" / "emocast_demo.safetensors")
    # A folder and files that exist outside every models folder, which traversal must not reach.
    outside = comfy_server.base_dir / "outside_models"
    outside.mkdir(exist_ok=True)
    (outside / "config.json").write_text((w2v / "config.json").read_text())
    return comfy_server


def audio_graph(model=W2V, audio=SPEECH) -> dict:
    return {"1": {"class_type": "LoadAudio", "inputs": {"audio": audio}},
            "2": {"class_type": "AudioEmotiveEncode", "inputs": {"audio": ["1", 0], "wav2vec_model": model,
                                                                  "fps": 25.0, "separate_vocals": False}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}


def emotion_graph(prompt="A person is talking with happy emotion.", text_encoder=TEXT) -> dict:
    return {"1": {"class_type": "EmotionPromptEncode", "inputs": {"preset": "custom", "prompt": prompt,
                                                                  "transition_seconds": 0.5,
                                                                  "text_encoder": text_encoder}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def checkpoint_graph(name=CKPT) -> dict:
    return {"1": {"class_type": "LoadEmoCAST", "inputs": {"checkpoint": name, "dtype": "fp32"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def lora_graph(name, checkpoint=CKPT) -> dict:
    graph = checkpoint_graph(checkpoint)
    graph["3"] = {"class_type": "ApplyEmoCASTLoRA", "inputs": {"model": ["1", 0], "lora_name": name, "strength": 1.0}}
    graph["2"]["inputs"]["source"] = ["3", 0]
    return graph


def video_graph(prefix) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 2, "color": 0}},
            "2": {"class_type": "EmoCASTVideoCombine", "inputs": {"images": ["1", 0], "fps": 25.0,
                                                                   "filename_prefix": prefix, "quality": 30}}}


def error_of(server, graph) -> str:
    """The error a user sees for `graph` (validation or execution), and that the server still works."""
    try:
        entry = server.run(graph, timeout=300, check=False)
    except PromptRejected as rejected:
        message = str(rejected.node_errors or rejected.error)
    else:
        status = entry.get("status", {})
        assert status.get("status_str") == "error", f"the prompt ran: {status}"
        (failure,) = [data for kind, data in status["messages"] if kind == "execution_error"]
        message = failure["exception_message"]
    healthy = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                            "color": int.from_bytes(os.urandom(2), "big")}},
               "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    assert server.run(healthy, timeout=60)["status"]["status_str"] == "success"  # the server goes on
    return message


def test_the_good_graphs_run(server):
    for graph in (audio_graph(), emotion_graph(), checkpoint_graph()):
        assert server.run(graph, timeout=300)["status"]["status_str"] == "success"


@pytest.mark.parametrize("graph, input_name", [
    (audio_graph("../text_encoders/" + TEXT), "wav2vec_model"),
    (audio_graph("../../outside_models"), "wav2vec_model"),
    (audio_graph("/etc"), "wav2vec_model"),
    (emotion_graph(text_encoder="../wav2vec2/" + W2V), "text_encoder"),
    (emotion_graph(text_encoder="../../../../../../etc"), "text_encoder"),
    (checkpoint_graph("../../outside_models/config.json"), "checkpoint"),
    (checkpoint_graph("/etc/passwd"), "checkpoint"),
    (lora_graph("../../outside_models/config.json"), "lora_name"),
], ids=["w2v-sibling", "w2v-outside", "w2v-absolute", "text-sibling", "text-outside", "ckpt-outside",
        "ckpt-absolute", "lora-outside"])
def test_names_cannot_leave_their_folders(server, graph, input_name):
    message = error_of(server, graph)
    assert input_name in message
    assert str(server.base_dir) not in message  # no path of the server's is revealed


def test_a_missing_and_an_existing_outside_folder_read_the_same(server):
    """The message must not tell whether something exists outside the model folders."""
    exists = error_of(server, audio_graph("../../outside_models")).replace("outside_models", "X")
    missing = error_of(server, audio_graph("../../no_such_folder")).replace("no_such_folder", "X")
    assert exists == missing


@pytest.mark.parametrize("content, found", [
    (b"", "is empty"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", "truncated"),
    (b"not a weights file at all" * 20, "not a valid safetensors file"),
], ids=["empty", "truncated", "garbage"])
def test_broken_lora_files_are_named_and_described(server, content, found):
    name = f"bad_{found.split()[-1]}.safetensors"
    server.put_model("loras", name, content, link=False)
    message = error_of(server, lora_graph(name))
    assert "LoRA file" in message and name in message and found in message
    assert "\x1b[" not in message


def test_pickled_code_is_refused_and_never_runs(server, tmp_path):
    if os.path.exists(PWNED):
        os.unlink(PWNED)
    evil = tmp_path / "evil.pth"
    torch.save({"x": _Exploit()}, evil)
    server.put_model("emocast", "bad_evil.pth", evil.read_bytes(), link=False)
    folder = server.models_dir / "wav2vec2" / "bad_evil_w2v"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "preprocessor_config.json"):
        (folder / name).write_bytes((server.models_dir / "wav2vec2" / W2V / name).read_bytes())
    (folder / "pytorch_model.bin").write_bytes(evil.read_bytes())
    for graph, input_file in ((checkpoint_graph("bad_evil.pth"), "bad_evil.pth"),
                              (audio_graph("bad_evil_w2v"), "pytorch_model.bin")):
        message = error_of(server, graph)
        assert input_file in message and "pickled objects other than tensors" in message
        assert "nothing in it ran" in message and "\x1b[" not in message
    assert not os.path.exists(PWNED)


def test_a_broken_separator_model_is_named(server):
    """The vocal separator (an ONNX file) fails like every other model file: named, in words."""
    broken = server.put_model("audio_separator", "Kim_Vocal_2.onnx", b"\x08\x07truncated onnx", link=False)
    graph = audio_graph()
    graph["2"]["inputs"]["separate_vocals"] = True
    try:
        message = error_of(server, graph)
    finally:
        broken.unlink()
    assert "vocal separator Kim_Vocal_2.onnx" in message and "not a valid ONNX model" in message
    assert len(message) < 600


def test_a_prompt_too_long_gets_a_short_message(server):
    message = error_of(server, emotion_graph("furious " * 25_000))
    assert "CLIP tokens long" in message and "the limit is 77" in message
    assert len(message) < 600


def test_a_file_name_prefix_too_long_for_the_file_system(server):
    message = error_of(server, video_graph("EmoCAST/" + "x" * 300))
    assert "filename_prefix" in message and "bytes" in message and len(message) < 600
    assert not list(server.output_dir.rglob("xxxxxxxx*"))  # nothing was written under any name


def test_training_names_too_long_for_the_file_system(comfy_inprocess):
    import importlib

    pack = comfy_inprocess.pack.__name__
    train = importlib.import_module(f"{pack}.nodes.train_lora")
    prepare = importlib.import_module(f"{pack}.nodes.train_dataset")
    with pytest.raises(ValueError, match="run_name: the part 'xxx.*' is 300 bytes long"):
        train.run_folder("x" * 300, "appearance")
    with pytest.raises(ValueError, match="cache_name: the part 'yyy.*' is 300 bytes long"):
        prepare.cache_folder("y" * 300)


def test_an_audio_with_no_sample_rate(comfy_inprocess):
    """An AUDIO with sample rate 0 cannot come from LoadAudio; a custom node could hand one over."""
    import importlib

    node = importlib.import_module(f"{comfy_inprocess.pack.__name__}.nodes.audio_encode").AudioEmotiveEncode
    with pytest.raises(ValueError, match="audio: sample rate 0 Hz is not plausible"):
        node.execute({"waveform": torch.zeros(1, 1, 1600), "sample_rate": 0}, "anything", 25.0, False)
