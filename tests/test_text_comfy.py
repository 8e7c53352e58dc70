"""The two emotion-text sources agree, against the real ComfyUI 0.3.75 code in-process.

(a) a ComfyUI CLIP object (SD1 tokenizer + SDClipModel, as Load Checkpoint
builds for SD1.5) and (b) a transformers CLIPTextModel folder, holding the
same tiny random weights, give the same final-layer E_text; ComfyUI's own
CLIPTextEncode agrees only for plain prompts at the default last layer.
Also the EmotionPromptEncode node, called directly.
"""
import asyncio
import importlib
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from emocast_core.text import EMOTION_PRESETS, clear_cache, encode_emotion, load_clip_text, token_ids

pytestmark = pytest.mark.comfyui

COMFY_CORE = Path(os.environ.get("EMOCAST_COMFY_CORE", Path.home() / ".cache/comfyui-emocast/comfyui-0.3.75"))
REPO = Path(__file__).resolve().parents[1]
HIDDEN = 64
PROMPTS = [
    "",
    "A person is talking with happy emotion.",
    EMOTION_PRESETS["contemptuous"],
    "(furious:1.4), shouting \\(loudly\\) embedding:angry",  # weighting / escapes / embeddings: all literal text
    " ".join(["a"] * 75),                                     # exactly 77 tokens
]


@pytest.fixture(scope="module")
def ep(request, tmp_path_factory):
    """nodes/emotion_prompt.py of the pack as ComfyUI loads it (as ComfyUI-EmoCAST), ComfyUI in-process on CPU.

    Uses the shared `comfy_inprocess` fixture when conftest provides it; else loads ComfyUI in-process itself.
    """
    try:
        pack = request.getfixturevalue("comfy_inprocess").pack.__name__
    except pytest.FixtureLookupError:
        pack = _load_pack_in_process(tmp_path_factory.mktemp("custom_nodes") / "ComfyUI-EmoCAST")
    return importlib.import_module(f"{pack}.nodes.emotion_prompt")


def clip_source(ep):
    """nodes/clip_text_source.py of the same pack as `ep`."""
    return importlib.import_module(ep.__package__ + ".clip_text_source")


def _load_pack_in_process(link: Path) -> str:
    if not (COMFY_CORE / "nodes.py").is_file():
        pytest.skip(f"no ComfyUI tree at {COMFY_CORE}; run scripts/provision.sh")
    if str(COMFY_CORE) not in sys.path:
        sys.path.insert(0, str(COMFY_CORE))
    import comfy.options
    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args
    args.cpu = True  # before anything imports comfy.model_management
    import nodes
    assert hasattr(nodes, "load_custom_node"), f"'nodes' resolved to {nodes.__file__}, not ComfyUI's"
    link.symlink_to(REPO, target_is_directory=True)
    assert asyncio.run(nodes.load_custom_node(str(link)))
    return str(link).replace(".", "_x_")  # the module name load_custom_node gives the pack


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """Tiny random CLIPTextModel + the real CLIP tokenizer, in models/text_encoders/clip-tiny."""
    from transformers import CLIPTextConfig, CLIPTextModel
    tokenizer_dir = COMFY_CORE / "comfy" / "sd1_tokenizer"
    if not tokenizer_dir.is_dir():
        pytest.skip("no ComfyUI sd1_tokenizer")
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=3,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    folder = tmp_path_factory.mktemp("models") / "text_encoders" / "clip-tiny"
    CLIPTextModel(config).save_pretrained(folder)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, folder / f.name)
    yield folder
    clear_cache()


@pytest.fixture(scope="module")
def hf(hf_folder):
    return load_clip_text(str(hf_folder), expected_hidden=None)


@pytest.fixture(scope="module")
def clip(ep, hf):
    """A comfy.sd.CLIP built like SD1.5's (SD1Tokenizer + SD1ClipModel) with the tiny config and weights."""
    import comfy.sd
    import comfy.sd1_clip
    from comfy.supported_models_base import ClipTarget
    c = hf.model.config
    config = dict(num_hidden_layers=c.num_hidden_layers, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                  num_attention_heads=c.num_attention_heads, hidden_act=c.hidden_act, eos_token_id=49407,
                  max_position_embeddings=77)

    class TinyClipL(comfy.sd1_clip.SDClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            super().__init__(device=device, dtype=dtype, textmodel_json_config=dict(config),
                             return_projected_pooled=False, model_options=model_options)

    target = ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    target.params = {"clip_model": TinyClipL}
    clip = comfy.sd.CLIP(target, model_options={"dtype": torch.float32})
    # transformers 5 drops the "text_model." prefix that ComfyUI (and older transformers) use.
    sd = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in hf.model.state_dict().items()}
    missing, unexpected = clip.load_sd(sd)
    assert missing == ["text_projection.weight"] and not unexpected  # the projection only feeds the pooled output
    return clip


def comfy_encode(clip, text):
    """ComfyUI's CLIPTextEncode (weights, clip-skip and chunking all as ComfyUI does them)."""
    import nodes
    return nodes.CLIPTextEncode().encode(clip, text)[0][0][0]


def test_tokenizers_agree_and_pad_with_end_token(ep, clip, hf):
    sd_tokenizer = clip.tokenizer.clip_l  # ComfyUI's SDTokenizer pads with the end token by default ...
    assert sd_tokenizer.pad_token == sd_tokenizer.end_token == 49407
    assert hf.tokenizer.pad_token == "<|endoftext|>" and hf.tokenizer.pad_token_id == 49407  # ... as HF CLIP-L does
    comfy_ids = [t for t, _ in clip.tokenize("A person is talking with happy emotion.")["l"][0]]
    assert comfy_ids == token_ids(hf.tokenizer, "A person is talking with happy emotion.")[0].tolist()


def test_both_sources_give_the_same_final_layer(ep, clip, hf):
    ours = clip_source(ep).ComfyClipTextEncoder(clip, expected_hidden=None)
    for text in PROMPTS:
        ids = token_ids(hf.tokenizer, text)
        assert torch.equal(token_ids(ours.tokenizer, text), ids)
        a, b = ours.encode_ids(ids), hf.encode_ids(ids)
        assert a.shape == (1, 77, HIDDEN) and a.dtype == torch.float32 and a.device.type == "cpu"
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"prompt {text!r}")
    schedule = "0s: happy | 1.5s: (furious:1.4), shouting"
    x, y = encode_emotion(schedule, ours, 0.5), encode_emotion(schedule, hf, 0.5)
    torch.testing.assert_close(x.cond, y.cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.uncond, y.uncond, atol=1e-5, rtol=1e-5)


def test_comfy_clip_text_encode_agrees_only_when_plain_and_last_layer(ep, clip, hf):
    import nodes
    plain = "A person is talking with happy emotion."
    reference = hf.encode_ids(token_ids(hf.tokenizer, plain))
    torch.testing.assert_close(comfy_encode(clip, plain), reference, atol=1e-5, rtol=1e-5)
    # CLIPSetLastLayer(-2), the usual "clip skip 2": ComfyUI's output moves away ...
    skipped = nodes.CLIPSetLastLayer().set_last_layer(clip, -2)[0]
    assert (comfy_encode(skipped, plain) - reference).abs().max() > 1e-2
    # ... but ours ignores it and stays on the final layer.
    ours = clip_source(ep).ComfyClipTextEncoder(skipped, expected_hidden=None)
    torch.testing.assert_close(ours.encode_ids(token_ids(ours.tokenizer, plain)), reference, atol=1e-5, rtol=1e-5)
    # Weighting syntax: ComfyUI interprets it, we (like the official code) do not.
    weighted = "(furious:1.4), shouting"
    ids = token_ids(hf.tokenizer, weighted)
    assert (comfy_encode(clip, weighted) - hf.encode_ids(ids)).abs().max() > 1e-2
    torch.testing.assert_close(ours.encode_ids(ids), hf.encode_ids(ids), atol=1e-5, rtol=1e-5)
    # Over 77 tokens ComfyUI silently chunks; we refuse.
    long = " ".join(["a"] * 76)
    assert comfy_encode(clip, long).shape == (1, 154, HIDDEN)
    with pytest.raises(ValueError, match="78 CLIP tokens"):
        token_ids(ours.tokenizer, long)
    # The options ComfyUI resets before each encode are left as they were.
    assert clip.cond_stage_model.clip_l.layer == "last" and skipped.layer_idx == -2


def test_clip_without_clip_l_is_refused(ep, clip):
    class NotClip:
        cond_stage_model = object()
        tokenizer = object()
    with pytest.raises(ValueError, match="holds no CLIP-L"):
        clip_source(ep).ComfyClipTextEncoder(NotClip())
    with pytest.raises(ValueError, match="hidden size 64, EmoCAST needs 768"):
        clip_source(ep).ComfyClipTextEncoder(clip)


# ---------------------------------------------------------------- the node

@pytest.fixture
def node(ep, hf_folder, monkeypatch):
    import folder_paths
    paths, exts = folder_paths.folder_names_and_paths["text_encoders"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "text_encoders", ([str(hf_folder.parent), *paths], exts))
    monkeypatch.setattr(clip_source(ep), "CLIP_L_HIDDEN", None)  # tiny test encoders
    return ep.EmotionPromptEncode


def test_node_schema(node, ep):
    schema = node.define_schema()
    assert (schema.node_id, schema.display_name, schema.category) == (
        "EmotionPromptEncode", "EmoCAST Emotion Prompt", "EmoCAST/conditioning")
    inputs = {i.id: i for i in schema.inputs}
    assert list(inputs) == ["preset", "prompt", "transition_seconds", "clip", "text_encoder"]
    assert all(i.tooltip for i in schema.inputs)
    assert inputs["clip"].optional and inputs["prompt"].multiline
    assert inputs["preset"].options == ["custom", *EMOTION_PRESETS]
    assert inputs["text_encoder"].options[0] == ep.USE_CLIP and "clip-tiny" in inputs["text_encoder"].options
    assert "2.5s: furious, shouting" in inputs["prompt"].tooltip
    (out,) = schema.outputs
    assert out.io_type == "EMOCAST_EMOTION" and out.display_name == "emotion"
    node.INPUT_TYPES()  # the V1 view /object_info serves builds too


def run_like_executor(node_cls, **inputs):
    """As ComfyUI's executor calls a V3 node: validated, cloned, under torch.inference_mode()."""
    from comfy_api.internal import make_locked_method_func
    node_cls.VALIDATE_CLASS()
    func = make_locked_method_func(node_cls, node_cls.FUNCTION, node_cls.PREPARE_CLASS_CLONE({}))
    with torch.inference_mode():
        return func(**inputs)


def test_node_encodes_from_either_source(node, ep, clip, hf):
    schedule = "0s: neutral | 2s: furious, shouting"
    (from_folder,) = run_like_executor(node, preset="custom", prompt=schedule, transition_seconds=0.25,
                                       text_encoder="clip-tiny").args
    (from_clip,) = run_like_executor(node, preset="custom", prompt=schedule, transition_seconds=0.25,
                                     text_encoder=ep.USE_CLIP, clip=clip).args
    assert from_folder.times_s == [0.0, 2.0] and from_folder.transition_s == 0.25
    assert from_folder.prompts == [EMOTION_PRESETS["neutral"], "furious, shouting"]
    assert from_clip.source == "clip input (CLIP-L)" and from_folder.source == "clip-tiny"
    torch.testing.assert_close(from_clip.cond, from_folder.cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(from_clip.uncond, from_folder.uncond, atol=1e-5, rtol=1e-5)
    frames = from_folder.per_frame(75, 25.0)
    assert frames.shape == (75, 77, HIDDEN) and torch.equal(frames[0], from_folder.cond[0])
    # A preset ignores the prompt; the folder source wins over a connected clip.
    (angry,) = node.execute("angry", "ignored | text", 0.5, "clip-tiny", clip=clip).args
    assert angry.prompts == [EMOTION_PRESETS["angry"]] and angry.source == "clip-tiny"


def test_node_errors(node, ep):
    with pytest.raises(ValueError, match="^clip: not connected.*Connect a CLIP"):
        node.execute("happy", "", 0.5, ep.USE_CLIP)
    with pytest.raises(FileNotFoundError, match="'clip-gone'"):
        node.execute("happy", "", 0.5, "clip-gone")
    with pytest.raises(ValueError, match="78 CLIP tokens .* limit is 77"):
        node.execute("custom", " ".join(["a"] * 76), 0.5, "clip-tiny")
    with pytest.raises(ValueError, match="segment 2 'angry' has no time"):
        node.execute("custom", "happy | angry", 0.5, "clip-tiny")


def test_clip_input_runs_on_the_clips_load_device(ep, clip, hf, monkeypatch):
    """Current ComfyUI (0.7+, dynamic VRAM on NVIDIA) runs a text encoder on its `execution_device`
    option, else where its weights are, which may be the offload device: ours names the load device."""
    ours = clip_source(ep).ComfyClipTextEncoder(clip, expected_hidden=None)
    te = ours.te
    seen = []
    forward = te.forward

    def spy(*args, **kwargs):
        seen.append((getattr(te, "execution_device", "no such option"),
                     te.transformer.get_input_embeddings().weight.device))
        return forward(*args, **kwargs)

    monkeypatch.setattr(te, "forward", spy)
    ours.encode_ids(token_ids(hf.tokenizer, "A person is talking with happy emotion."))
    ((execution_device, weights),) = seen
    if hasattr(te, "execution_device"):  # ComfyUI 0.7+: the option names the device, then is reset
        assert execution_device == clip.patcher.load_device
        assert te.execution_device is None
    else:  # older ComfyUI runs where load_model put the weights
        assert execution_device == "no such option" and weights == clip.patcher.load_device
