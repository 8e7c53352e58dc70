"""EmoCASTVideoCombine against a real ComfyUI: in-process and through a server graph."""
import importlib
import io as _io
import json
import wave

import numpy as np
import pytest
import torch

from emocast_core.video import read_mp4
from scripts.runner.comfy_env import PACK_PYTHON_MODULE

pytestmark = pytest.mark.comfyui

NODE_ID = "EmoCASTVideoCombine"
NOT_REGISTERED = (f"{NODE_ID} is not registered: add video_combine.VideoCombine to NODE_CLASSES "
                  "in nodes/__init__.py")


@pytest.fixture
def node(comfy_inprocess, monkeypatch):
    """The in-process harness, with the node reachable by id even before it is registered."""
    if NODE_ID not in comfy_inprocess.NODE_CLASS_MAPPINGS:
        module = importlib.import_module(f"{comfy_inprocess.pack.__name__}.nodes.video_combine")
        monkeypatch.setitem(comfy_inprocess.NODE_CLASS_MAPPINGS, NODE_ID, module.VideoCombine)
    return comfy_inprocess


def ramp(t=12, h=31, w=45):
    """A horizontal gradient that brightens per frame (odd size on purpose)."""
    x = torch.linspace(0, 1, w)[None, None, :, None]
    k = torch.arange(t)[:, None, None, None] / (t - 1)
    return (0.2 + 0.6 * x * torch.tensor([1.0, 0.5, 0.25]) + 0.1 * k).expand(t, h, w, 3).contiguous()


def tone(freq, seconds, sr):
    return torch.sin(2 * np.pi * freq * torch.arange(round(seconds * sr)) / sr) * 0.5


def saved(out_dir, result):
    """Path of the file a PreviewVideo ui dict points at."""
    (item,) = result["images"]
    assert item["type"] == "output"
    return out_dir / item["subfolder"] / item["filename"]


def test_inprocess_save_preview_and_video(node, tmp_path):
    from comfy_api.latest import io

    frames = ramp()
    audio = {"waveform": torch.stack([tone(440, 0.6, 16000)])[None], "sample_rate": 16000}
    hidden = {io.Hidden.prompt: {"1": {"class_type": NODE_ID, "inputs": {}}},
              io.Hidden.extra_pnginfo: {"workflow": {"nodes": [], "marker": 7}}}
    out = node.run_node(NODE_ID, hidden=hidden, images=frames, fps=25.0,
                        filename_prefix="EmoCAST/inproc", quality=19, audio=audio)

    out_dir = node.base_dir / "output"
    ui = out.ui.as_dict()
    assert ui["animated"] == (True,)
    path = saved(out_dir, ui)
    assert path.parent.name == "EmoCAST" and path.name.startswith("inproc_") and path.name.endswith("_.mp4")
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no partial left

    v = read_mp4(path)
    assert (v.frame_count, v.height, v.width) == (12, 32, 46)  # odd size padded to even
    np.testing.assert_allclose(v.frames[:, :31, :45].mean(axis=(1, 2)), frames.mean(dim=(1, 2)).numpy(), atol=0.025)
    assert abs(v.audio_duration - v.video_duration) <= 1 / 25
    assert json.loads(v.metadata["prompt"])["1"]["class_type"] == NODE_ID
    assert json.loads(v.metadata["workflow"])["marker"] == 7

    (video,) = out.result  # a core VideoInput: what SaveVideo / GetVideoComponents take
    assert video.get_dimensions() == (46, 32) and video.get_frame_count() == 12
    node.load_core_extra("nodes_video")
    # ComfyUI 0.33 added bit depth and colour space after the first three outputs.
    images, got_audio, fps = node.run_node("GetVideoComponents", video=video).result[:3]
    assert tuple(images.shape) == (12, 32, 46, 3) and fps == 25.0
    assert got_audio["sample_rate"] == 16000

    # Same prefix again: the counter moves on, nothing is overwritten.
    again = node.run_node(NODE_ID, images=frames[:3], fps=25.0, filename_prefix="EmoCAST/inproc", quality=30)
    second = saved(out_dir, again.ui.as_dict())
    assert second != path and path.is_file() and read_mp4(second).audio is None


def test_inprocess_interrupt_leaves_no_file(node):
    import comfy.model_management as mm

    out_dir = node.base_dir / "output" / "EmoCAST"
    before = set(out_dir.iterdir()) if out_dir.is_dir() else set()
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            node.run_node(NODE_ID, images=ramp(), fps=25.0, filename_prefix="EmoCAST/cut", quality=19)
    finally:
        mm.interrupt_current_processing(False)
    assert set(out_dir.iterdir()) == before


def test_inprocess_bad_inputs(node):
    nan = ramp(t=3)
    nan[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^frames contain NaN"):
        node.run_node(NODE_ID, images=nan, fps=25.0, filename_prefix="EmoCAST/bad", quality=19)
    empty = {"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}
    with pytest.raises(ValueError, match="audio is empty"):
        node.run_node(NODE_ID, images=ramp(t=3), fps=25.0, filename_prefix="EmoCAST/bad", quality=19, audio=empty)
    with pytest.raises(ValueError, match=r"waveform \[B,C,N\]"):
        node.run_node(NODE_ID, images=ramp(t=3), fps=25.0, filename_prefix="EmoCAST/bad", quality=19,
                      audio={"waveform": torch.zeros(1, 100), "sample_rate": 16000})
    assert not list((node.base_dir / "output").rglob("bad_*"))


def wav_bytes(freq=440.0, seconds=0.8, sr=16000) -> bytes:
    pcm = (tone(freq, seconds, sr).numpy() * 32767).astype("<i2")
    buf = _io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def test_server_graph_mp4_and_core_video_nodes(comfy_server, tmp_path):
    info = comfy_server.object_info()
    if NODE_ID not in info:
        pytest.skip(NOT_REGISTERED)
    assert info[NODE_ID]["python_module"] == PACK_PYTHON_MODULE
    assert info[NODE_ID]["output_node"] is True

    comfy_server.put_input("emocast_tone.wav", wav_bytes())
    n = 12
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 63, "height": 47, "batch_size": n, "color": 0x3366CC}},
        "2": {"class_type": "LoadAudio", "inputs": {"audio": "emocast_tone.wav"}},
        "3": {"class_type": NODE_ID, "inputs": {"images": ["1", 0], "fps": 25.0, "audio": ["2", 0],
                                                "filename_prefix": "EmoCAST/server", "quality": 19}},
        # Our VIDEO output through core nodes: components out, re-assembled, saved by SaveVideo.
        "4": {"class_type": "GetVideoComponents", "inputs": {"video": ["3", 0]}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": ["4", 2], "audio": ["4", 1]}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "EmoCAST/resaved",
                                                    "format": "auto", "codec": "auto"}},
    }
    with comfy_server.listen() as events:
        entry = comfy_server.run(graph, workflow={"nodes": [], "marker": "emocast"}, timeout=180)
        progress = [e["data"] for e in events.events(entry["prompt_id"], types=["progress"])
                    if e["data"].get("node") == "3"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == n

    items = {i["node"]: i for i in comfy_server.output_items(entry)}
    assert items["3"]["filename"].endswith("_.mp4") and items["3"]["subfolder"] == "EmoCAST"
    ours = tmp_path / "ours.mp4"
    ours.write_bytes(comfy_server.view(items["3"]["filename"], items["3"]["subfolder"]))
    v = read_mp4(ours)
    assert (v.frame_count, v.width, v.height, v.fps) == (n, 64, 48, 25)
    np.testing.assert_allclose(v.frames.mean(axis=(0, 1, 2)), np.array([0x33, 0x66, 0xCC]) / 255, atol=0.02)
    assert v.sample_rate == 16000 and abs(v.audio_duration - v.video_duration) <= 1 / 25
    assert json.loads(v.metadata["prompt"])["3"]["class_type"] == NODE_ID
    assert json.loads(v.metadata["workflow"])["marker"] == "emocast"
    assert not [p for p in (comfy_server.output_dir / "EmoCAST").iterdir() if p.name.startswith(".")]

    resaved = tmp_path / "resaved.mp4"
    resaved.write_bytes(comfy_server.view(items["6"]["filename"], items["6"]["subfolder"]))
    r = read_mp4(resaved)
    assert (r.frame_count, r.width, r.height) == (n, 64, 48)
    assert r.audio is not None
