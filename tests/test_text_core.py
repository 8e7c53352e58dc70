"""emocast_core.text without ComfyUI: presets, schedule, tokens, HF loader, per-frame blending.

The real CLIP BPE tokenizer comes from the ComfyUI tree (comfy/sd1_tokenizer,
the openai/clip-vit-large-patch14 tokenizer files); the text model is a tiny
random CLIPTextModel saved in the Hugging Face layout.
"""
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from emocast_core.text import (
    EMOTION_PRESETS, MAX_TOKENS, EmotionConditioning, clear_cache, count_tokens,
    encode_emotion, load_clip_text, parse_schedule, preset_name, token_ids,
)

COMFY_CORE = Path(os.environ.get("EMOCAST_COMFY_CORE", Path.home() / ".cache/comfyui-emocast/comfyui-0.3.75"))
SD1_TOKENIZER = COMFY_CORE / "comfy" / "sd1_tokenizer"
needs_tokenizer = pytest.mark.skipif(not SD1_TOKENIZER.is_dir(), reason="ComfyUI tree (sd1_tokenizer) not provisioned")


def tiny_clip_folder(folder: Path, hidden: int = 64) -> Path:
    """A random CLIP text model (real CLIP vocabulary) + the real tokenizer, HF layout."""
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=3,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    CLIPTextModel(config).save_pretrained(folder)
    for f in SD1_TOKENIZER.iterdir():
        shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import CLIPTokenizer
    return CLIPTokenizer.from_pretrained(str(SD1_TOKENIZER), local_files_only=True)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return tiny_clip_folder(tmp_path_factory.mktemp("text_encoders") / "clip-tiny")


# ---------------------------------------------------------------- presets / schedule

def test_presets_are_the_eight_mead_emotions():
    assert list(EMOTION_PRESETS) == ["neutral", "happy", "sad", "surprised", "fearful", "disgusted", "angry",
                                     "contemptuous"]
    for name, sentence in EMOTION_PRESETS.items():
        assert sentence.startswith(f"A person is talking with {name} emotion") and sentence.endswith(".")
    assert preset_name(" Happy ") == "happy" and preset_name("ang") == "angry" and preset_name("joy") is None


def test_schedule_forms():
    ks = parse_schedule("0s: calm and gentle | 2.5s: furious, shouting")
    assert [(k.time_s, k.prompt) for k in ks] == [(0.0, "calm and gentle"), (2.5, "furious, shouting")]
    ks = parse_schedule("3 s: angry|0: Happy")  # sorted; presets expanded; unit optional
    assert [k.time_s for k in ks] == [0.0, 3.0] and ks[0].prompt == EMOTION_PRESETS["happy"]
    assert ks[1].text == "angry" and ks[1].prompt == EMOTION_PRESETS["angry"]
    ks = parse_schedule("sad\n1.5s: surprised\n2s: angry")  # first time optional; line breaks + TIME split
    assert [(k.time_s, k.text) for k in ks] == [(0.0, "sad"), (1.5, "surprised"), (2.0, "angry")]
    ks = parse_schedule("A person talks angrily,\nshouting at: someone")  # constant; line break kept
    assert len(ks) == 1 and ks[0].prompt == "A person talks angrily,\nshouting at: someone"
    assert parse_schedule("2s: fearful")[0].time_s == 2.0


@pytest.mark.parametrize("bad, fragment", [
    ("happy | angry", "segment 2 'angry' has no time"),
    ("0s: happy | 2s:", "segment 2 '2s:' has no text"),
    ("0s: happy | | 2s: sad", "segment 2 '' has no"),
    ("-1s: happy", "segment 1 '-1s: happy': time must be >= 0"),
    ("1s: happy | 1.0s: sad", "two keyframes at 1s"),
    ("   ", "empty"),
])
def test_schedule_errors_name_the_segment(bad, fragment):
    with pytest.raises(ValueError) as e:
        parse_schedule(bad)
    assert fragment in str(e.value)


# ---------------------------------------------------------------- per-frame blending

def one_hot_conditioning(times, transition, ease="linear"):
    k = len(times)
    cond = torch.eye(k)[:, None, :].expand(k, MAX_TOKENS, k).contiguous()
    return EmotionConditioning([f"p{i}" for i in range(k)], list(times), cond, torch.zeros(1, MAX_TOKENS, k),
                               transition_s=transition, ease=ease)


def test_per_frame_holds_and_blends_ending_at_the_keyframe():
    c = one_hot_conditioning([0.0, 2.0], transition=0.4)
    out = c.per_frame(75, fps=25.0)  # frames at 0, 0.04, ... 2.96 s
    assert out.shape == (75, MAX_TOKENS, 2)
    w_next = out[:, 0, 1]
    assert torch.all(w_next[:41] == 0)            # held up to 1.6 s (frame 40 = window start)
    assert w_next[45].item() == pytest.approx(0.5)  # 1.8 s: halfway
    assert torch.all(w_next[50:] == 1)            # from 2.0 s exactly: the new emotion only
    assert torch.allclose(out.sum(-1), torch.ones(75, MAX_TOKENS))
    assert torch.equal(out[0], c.cond[0]) and torch.equal(out[60], c.cond[1])  # exact, not approximately


def test_per_frame_edge_cases():
    c = one_hot_conditioning([1.0, 1.2, 3.0], transition=0.5)
    w = c.weights(torch.tensor([0.0, 1.0, 1.1, 1.2, 2.5, 2.75, 3.0, 9.0]))
    assert w[0].tolist() == [1, 0, 0] and w[1].tolist() == [1, 0, 0]  # before the first keyframe: it holds
    assert w[2].tolist() == pytest.approx([0.5, 0.5, 0])            # window clamped to [1.0, 1.2]
    assert w[3].tolist() == [0, 1, 0] and w[4].tolist() == [0, 1, 0]
    assert w[5].tolist() == pytest.approx([0, 0.5, 0.5]) and w[6].tolist() == [0, 0, 1] and w[7].tolist() == [0, 0, 1]
    cut = one_hot_conditioning([0.0, 1.0], transition=0.0).weights(torch.tensor([0.999, 1.0]))
    assert cut.tolist() == [[1, 0], [0, 1]]
    cos = one_hot_conditioning([0.0, 1.0], transition=1.0, ease="cosine").weights(torch.tensor([0.25, 0.5]))
    assert cos[:, 1].tolist() == pytest.approx([(1 - math.cos(math.pi / 4)) / 2, 0.5])
    single = one_hot_conditioning([0.0], transition=0.5)
    assert single.is_constant and torch.equal(single.per_frame(3, 25.0), single.cond.expand(3, -1, -1))
    assert single.per_frame(0, 25.0).shape == (0, MAX_TOKENS, 1)
    with pytest.raises(ValueError):
        single.per_frame(3, 0.0)
    with pytest.raises(ValueError, match="transition_seconds"):
        one_hot_conditioning([0.0], transition=-1)


# ---------------------------------------------------------------- tokens (real CLIP BPE)

@needs_tokenizer
def test_token_limit_counts_start_and_end(tokenizer):
    ok = " ".join(["a"] * 75)
    assert count_tokens(tokenizer, ok) == 77
    ids = token_ids(tokenizer, ok)
    assert ids.shape == (1, 77) and ids[0, 0] == 49406 and ids[0, -1] == 49407
    with pytest.raises(ValueError, match=r"78 CLIP tokens .* limit is 77"):
        token_ids(tokenizer, ok + " a")


@needs_tokenizer
def test_tokenisation_matches_the_official_call(tokenizer):
    for text in ["", "A person is talking with happy emotion.", "(happy:1.3) \\(x\\) embedding:foo"]:
        ref = tokenizer(text, max_length=77, padding="max_length", return_tensors="pt")["input_ids"]
        assert torch.equal(token_ids(tokenizer, text), ref)
    assert token_ids(tokenizer, "")[0, :3].tolist() == [49406, 49407, 49407]  # padded with <|endoftext|>
    for sentence in EMOTION_PRESETS.values():
        assert count_tokens(tokenizer, sentence) <= 77


# ---------------------------------------------------------------- HF loader + encoding

@needs_tokenizer
def test_loader_loads_checks_and_caches(tiny_folder):
    clear_cache()
    enc = load_clip_text(str(tiny_folder), expected_hidden=None)
    assert enc.hidden_size == 64 and len(enc.tokenizer) == 49408 and not enc.model.training
    assert load_clip_text(str(tiny_folder) + "/", expected_hidden=None) is enc          # same (path, device, dtype)
    assert load_clip_text(str(tiny_folder), dtype=torch.float64, expected_hidden=None) is not enc
    with pytest.raises(ValueError, match="hidden size 64, EmoCAST needs CLIP-L"):
        load_clip_text(str(tiny_folder))
    clear_cache()


@needs_tokenizer
def test_loader_names_missing_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as e:
        load_clip_text(str(tmp_path))
    assert "model.safetensors" in str(e.value) and "vocab.json + merges.txt" in str(e.value)
    assert "config.json" not in str(e.value).split("missing:")[1]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clip_text(str(tmp_path / "nope"))


@needs_tokenizer
def test_loader_rejects_a_tokenizer_that_is_not_clip(tiny_folder, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(tiny_folder, folder)
    vocab = '{"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}'
    (folder / "vocab.json").write_text(vocab)
    (folder / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(ValueError, match="not the CLIP-L tokenizer"):
        load_clip_text(str(folder), expected_hidden=None)


@needs_tokenizer
def test_loader_reads_a_full_clip_model_folder(tmp_path):
    """openai/clip-vit-large-patch14 ships a whole CLIPModel (text + vision) config and weights."""
    from transformers import CLIPConfig, CLIPModel
    text = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    full = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    full.save_pretrained(tmp_path)
    for f in SD1_TOKENIZER.iterdir():
        shutil.copy(f, tmp_path / f.name)
    enc = load_clip_text(str(tmp_path), expected_hidden=None)
    ref = full.state_dict()["text_model.final_layer_norm.weight"]
    assert torch.equal(enc.model.final_layer_norm.weight, ref)
    clear_cache()


@needs_tokenizer
def test_encode_emotion_is_final_layer_without_mask(tiny_folder):
    enc = load_clip_text(str(tiny_folder), expected_hidden=None)
    emo = encode_emotion("0s: happy | 2s: A person is talking angrily.", enc, transition_s=0.25)
    assert emo.cond.shape == (2, 77, 64) and emo.uncond.shape == (1, 77, 64) and emo.cond.dtype == torch.float32
    assert emo.times_s == [0.0, 2.0] and emo.prompts[0] == EMOTION_PRESETS["happy"] and emo.source == "clip-tiny"
    # The reference is computed straight from transformers, as the official script does.
    for row, text in [(emo.cond[1:2], "A person is talking angrily."), (emo.uncond, "")]:
        ids = enc.tokenizer(text, max_length=77, padding="max_length", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = enc.model(input_ids=ids, output_hidden_states=True)
        assert torch.equal(row, out.last_hidden_state)
        penultimate = enc.model.final_layer_norm(out.hidden_states[-2])
        assert (row - penultimate).abs().max() > 1e-2
    with pytest.raises(ValueError, match="78 CLIP tokens"):
        encode_emotion("0s: happy | 1s: " + " ".join(["a"] * 76), enc)
    clear_cache()
