"""LoadEmoCAST, EmoCASTSampler and EmoCASTSamplerToVideo against the real ComfyUI 0.3.75, in-process.

A tiny model in the official net.pth layout goes into models/emocast/; the VAE
is a random SD1.5-architecture VAE loaded by ComfyUI itself, and its use by the
sampler is checked against the official diffusers path.
"""
import importlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from emocast_core.audio.features import AudioFeatures
from emocast_core.config import EmoCASTConfig
from emocast_core.deterministic_weights import fill_deterministic
from emocast_core.face import masks_only_models, prepare_portrait
from emocast_core.models import EmoCASTNet
from emocast_core.pipeline import SD_VAE_ARCHITECTURE, DiffusersVAECodec
from emocast_core.text import EmotionConditioning
from emocast_core.video import read_mp4, write_mp4

pytestmark = pytest.mark.comfyui

CFG = EmoCASTConfig.tiny()
SIZE = 64


@pytest.fixture(scope="module")
def comfy(comfy_inprocess):
    folder = comfy_inprocess.models_dir / "emocast"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(fill_deterministic(EmoCASTNet(CFG)).state_dict(), folder / "tiny_net.pth")
    return comfy_inprocess


@pytest.fixture(scope="module")
def diffusers_vae():
    torch.manual_seed(0)
    return AutoencoderKL(**SD_VAE_ARCHITECTURE).eval()  # random weights


@pytest.fixture(scope="module")
def comfy_vae(comfy, diffusers_vae):
    from comfy.sd import VAE

    return VAE(sd=diffusers_vae.state_dict())


def pack_module(comfy, name):
    return importlib.import_module(f"{comfy.pack.__name__}.nodes.{name}")


def test_comfy_vae_codec_matches_the_official_diffusers_path(comfy, comfy_vae, diffusers_vae):
    codec = pack_module(comfy, "vae_codec").ComfyVAECodec(comfy_vae)
    official = DiffusersVAECodec(diffusers_vae)
    pixels = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours, theirs = codec.encode(pixels), official.encode(pixels)
        assert ours.shape == (2, 4, 8, 8)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)  # mean x 0.18215, not a sample
        assert torch.equal(codec.encode(pixels), ours)  # deterministic: the posterior mean
        torch.testing.assert_close(codec.decode(theirs), official.decode(theirs), rtol=1e-4, atol=1e-4)


def test_load_emocast(comfy):
    out = comfy.run_node("LoadEmoCAST", checkpoint="tiny_net.pth", dtype="auto")
    model = out.result[0]
    # (the pack imports its own copy of emocast_core, so compare configs as dicts)
    assert model.dtype == torch.float32 and model.net.config.to_dict() == CFG.to_dict()  # CPU: auto -> fp32
    assert model.load_to_device().type == "cpu"
    half = comfy.run_node("LoadEmoCAST", checkpoint="tiny_net.pth", dtype="bf16").result[0]
    assert {p.dtype for p in half.net.parameters()} == {torch.bfloat16}


def test_load_emocast_errors(comfy, tmp_path):
    with pytest.raises(FileNotFoundError, match="models/emocast"):
        comfy.run_node("LoadEmoCAST", checkpoint="(no files in models/emocast)", dtype="auto")
    bad = comfy.models_dir / "emocast" / "lora_by_mistake.safetensors"
    from safetensors.torch import save_file

    save_file({"lora_unet.lora_down.weight": torch.zeros(2, 2)}, str(bad))
    with pytest.raises(ValueError, match="lora_by_mistake.safetensors is not an EmoCAST checkpoint .*looks like a LoRA"):
        comfy.run_node("LoadEmoCAST", checkpoint=bad.name, dtype="auto")


def make_inputs(frames=20, constant=True, sample_rate=16000):
    g = torch.Generator().manual_seed(0)
    padded = -(-frames // 16) * 16
    seconds = frames / 25
    wave = torch.randn(1, 2, int(seconds * sample_rate), generator=g) * 0.1
    audio = AudioFeatures(torch.randn(padded, CFG.audio_layers, CFG.audio_channels, generator=g), frames, 25.0,
                          source_audio={"waveform": torch.cat([wave, wave], -1), "sample_rate": sample_rate})
    cond = torch.randn(1 if constant else 2, 77, CFG.cross_attention_dim, generator=g)
    emotion = EmotionConditioning(prompts=["a", "b"][: cond.shape[0]], times_s=[0.0, 0.4][: cond.shape[0]],
                                  cond=cond, uncond=torch.randn(1, 77, CFG.cross_attention_dim, generator=g))
    face = torch.zeros(1, SIZE, SIZE)
    face[:, 16:48, 20:44] = 1
    portrait = prepare_portrait(torch.rand(SIZE, SIZE, 3, generator=g), masks_only_models(), allow_no_face=True,
                                crop_scale=0, face_mask=face, size=SIZE)
    # The tiny model's face embedding is narrower than ArcFace's.
    portrait = replace(portrait, face_embedding=torch.randn(1, CFG.face_embed_dim, generator=g))
    return portrait, audio, emotion


def run_sampler(comfy, comfy_vae, portrait, audio, emotion, **overrides):
    model = comfy.run_node("LoadEmoCAST", checkpoint="tiny_net.pth", dtype="fp32").result[0]
    inputs = dict(model=model, vae=comfy_vae, portrait=portrait, audio_features=audio, emotion=emotion, seed=42,
                  steps=2, cfg=3.5, pose_weight=1.0, face_weight=1.0, lip_weight=1.0, paste_back=False, feather=24)
    inputs.update(overrides)
    return comfy.run_node("EmoCASTSampler", **inputs).result


def test_sampler_outputs_frames_audio_and_fps(comfy, comfy_vae):
    portrait, audio, emotion = make_inputs(frames=20)
    images, audio_out, fps = run_sampler(comfy, comfy_vae, portrait, audio, emotion, steps=1)
    assert images.shape == (20, SIZE, SIZE, 3) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert fps == 25.0
    assert audio_out["sample_rate"] == 16000
    assert audio_out["waveform"].shape[-1] == math.ceil(20 / 25 * 16000)  # trimmed to the video
    again = run_sampler(comfy, comfy_vae, portrait, audio, emotion, steps=1)[0]
    assert torch.equal(images, again)
    other_seed = run_sampler(comfy, comfy_vae, portrait, audio, emotion, steps=1, seed=43)[0]
    assert not torch.equal(images, other_seed)


def test_sampler_emotion_keyframes_change_the_video(comfy, comfy_vae):
    portrait, audio, constant = make_inputs(frames=16)
    _, _, keyed = make_inputs(frames=16, constant=False)
    a = run_sampler(comfy, comfy_vae, portrait, audio, constant, steps=1)[0]
    b = run_sampler(comfy, comfy_vae, portrait, audio, keyed, steps=1)[0]
    assert a.shape == b.shape and not torch.equal(a, b)


def test_sampler_progress_and_interrupt(comfy, comfy_vae, monkeypatch):
    import comfy.model_management as mm
    import comfy.utils as comfy_utils

    updates = []
    monkeypatch.setattr(comfy_utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None: updates.append((value, total)))
    portrait, audio, emotion = make_inputs(frames=20)
    run_sampler(comfy, comfy_vae, portrait, audio, emotion, steps=2)
    assert updates[-1] == (4, 4) and len(updates) >= 4  # 2 clips x 2 steps
    assert [v for v, _ in updates] == sorted(v for v, _ in updates)

    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run_sampler(comfy, comfy_vae, portrait, audio, emotion, steps=2, seed=7)
    finally:
        mm.interrupt_current_processing(False)


def test_sampler_rejects_mismatched_inputs(comfy, comfy_vae):
    portrait, audio, emotion = make_inputs(frames=8)
    wrong = AudioFeatures(torch.zeros(16, 12, 768), 8, 25.0)
    with pytest.raises(ValueError, match="audio features are 12 layers x 768 channels"):
        run_sampler(comfy, comfy_vae, portrait, wrong, emotion)


# --------------------------------------------------------------------------- ApplyEmoCASTLoRA
@pytest.fixture(scope="module")
def lora_file(comfy):
    from training.lora import save_lora

    net = EmoCASTNet(CFG)
    g = torch.Generator().manual_seed(3)
    state = {}
    for name, module in net.named_modules():
        if name.endswith("transformer_blocks.0.attn2_2.to_q") or name.endswith("attn_audioemo.to_v"):
            out_f, in_f = module.weight.shape
            state[f"{name}.lora_down.weight"] = torch.randn(4, in_f, generator=g)
            state[f"{name}.lora_up.weight"] = torch.randn(out_f, 4, generator=g)
            state[f"{name}.alpha"] = torch.tensor(4.0)
    path = comfy.models_dir / "loras" / "emocast_test_lora.safetensors"
    save_lora(path, state, {"emocast.stages": '[{"name": "lipsync", "steps": 1}]'})
    return path


def test_lora_strength_zero_is_the_base_model_and_patches_are_undone(comfy, comfy_vae, lora_file):
    portrait, audio, emotion = make_inputs(frames=8)
    base = comfy.run_node("LoadEmoCAST", checkpoint="tiny_net.pth", dtype="fp32").result[0]

    def sample(model):
        inputs = dict(model=model, vae=comfy_vae, portrait=portrait, audio_features=audio, emotion=emotion, seed=42,
                      steps=1, cfg=3.5, pose_weight=1.0, face_weight=1.0, lip_weight=1.0, paste_back=False, feather=24)
        return comfy.run_node("EmoCASTSampler", **inputs).result[0]

    reference = sample(base)
    zero = comfy.run_node("ApplyEmoCASTLoRA", model=base, lora_name=lora_file.name, strength=0.0).result[0]
    assert torch.equal(sample(zero), reference)
    full = comfy.run_node("ApplyEmoCASTLoRA", model=base, lora_name=lora_file.name, strength=1.0).result[0]
    assert full.lora[-1]["name"].startswith(lora_file.name) and "lipsync" in full.lora[-1]["name"]
    assert not torch.equal(sample(full), reference)
    assert torch.equal(sample(base), reference)  # the shared networks were restored exactly


def test_lora_errors(comfy, lora_file):
    from safetensors.torch import save_file

    base = comfy.run_node("LoadEmoCAST", checkpoint="tiny_net.pth", dtype="fp32").result[0]
    foreign = comfy.models_dir / "loras" / "sd15_style.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(2, 2)}, str(foreign))
    with pytest.raises(ValueError, match="sd15_style.safetensors is not an EmoCAST LoRA"):
        comfy.run_node("ApplyEmoCASTLoRA", model=base, lora_name=foreign.name, strength=1.0)
    stray = {"denoising_unet.no_such.layer.lora_down.weight": torch.zeros(2, 8),
             "denoising_unet.no_such.layer.lora_up.weight": torch.zeros(8, 2),
             "denoising_unet.no_such.layer.alpha": torch.tensor(2.0)}
    with pytest.raises(ValueError, match="^lora: the connected LoRA adapts 1 layers this model lacks"):
        comfy.run_node("ApplyEmoCASTLoRA", model=base, lora_name=lora_file.name, strength=1.0, lora=stray)


# --------------------------------------------------------------------------- bundled autoencoder
def test_sampler_uses_an_autoencoder_bundled_in_the_checkpoint(comfy):
    from emocast_core.weights import save_net

    torch.manual_seed(0)
    small = AutoencoderKL(block_out_channels=(32,) * 4, down_block_types=("DownEncoderBlock2D",) * 4,
                          up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4).eval()
    save_net(fill_deterministic(EmoCASTNet(CFG)), comfy.models_dir / "emocast" / "tiny_bundle.safetensors", vae=small)
    model = comfy.run_node("LoadEmoCAST", checkpoint="tiny_bundle.safetensors", dtype="fp32").result[0]
    assert model.vae is not None
    portrait, audio, emotion = make_inputs(frames=5)
    inputs = dict(model=model, portrait=portrait, audio_features=audio, emotion=emotion, seed=42, steps=1, cfg=3.5,
                  pose_weight=1.0, face_weight=1.0, lip_weight=1.0, paste_back=False, feather=24)
    images = comfy.run_node("EmoCASTSampler", **inputs).result[0]
    assert images.shape == (5, SIZE, SIZE, 3)

    plain = comfy.run_node("LoadEmoCAST", checkpoint="tiny_net.pth", dtype="fp32").result[0]
    with pytest.raises(ValueError, match="connect a VAE"):
        comfy.run_node("EmoCASTSampler", **{**inputs, "model": plain})


def test_a_factor_4_bundle_samples_on_its_finer_latent_grid(comfy):
    """A checkpoint bundling a factor-4 autoencoder (the demo model's kind): the portrait's masks follow the
    model's latent grid (16x16 for 64²), and a factor-8 VAE connected to it is refused by name."""
    from emocast_core.weights import save_net

    cfg4 = CFG.with_(face_locator_channels=(16, 32, 64))
    torch.manual_seed(0)
    small = AutoencoderKL(block_out_channels=(32,) * 3, down_block_types=("DownEncoderBlock2D",) * 3,
                          up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=1, latent_channels=4).eval()
    save_net(fill_deterministic(EmoCASTNet(cfg4)), comfy.models_dir / "emocast" / "tiny_f4.safetensors", vae=small)
    model = comfy.run_node("LoadEmoCAST", checkpoint="tiny_f4.safetensors", dtype="fp32").result[0]
    assert model.net.config.latent_factor == 4
    portrait, audio, emotion = make_inputs(frames=5)
    inputs = dict(model=model, portrait=portrait, audio_features=audio, emotion=emotion, seed=42, steps=1, cfg=3.5,
                  pose_weight=1.0, face_weight=1.0, lip_weight=1.0, paste_back=False, feather=24)
    images = comfy.run_node("EmoCASTSampler", **inputs).result[0]
    assert images.shape == (5, SIZE, SIZE, 3) and float(images.std()) > 0


def test_a_factor_8_vae_on_a_factor_4_model_is_named(comfy, comfy_vae):
    model = comfy.run_node("LoadEmoCAST", checkpoint="tiny_f4.safetensors", dtype="fp32").result[0]
    portrait, audio, emotion = make_inputs(frames=5)
    with pytest.raises(ValueError, match="downsamples by 4: use the VAE it was trained with"):
        run_sampler(comfy, comfy_vae, portrait, audio, emotion, model=model, steps=1)


# EmoCAST Sampler to Video: the same frames, streamed into an mp4 clip by clip.

def run_to_video(comfy, comfy_vae, portrait, audio, emotion, prefix, **overrides):
    model = comfy.run_node("LoadEmoCAST", checkpoint="tiny_net.pth", dtype="fp32").result[0]
    inputs = dict(model=model, vae=comfy_vae, portrait=portrait, audio_features=audio, emotion=emotion, seed=42,
                  steps=1, cfg=3.5, pose_weight=1.0, face_weight=1.0, lip_weight=1.0, paste_back=False, feather=24,
                  filename_prefix=prefix, quality=0)
    inputs.update(overrides)
    return comfy.run_node("EmoCASTSamplerToVideo", **inputs)


def saved_path(comfy, out) -> Path:
    (item,) = out.ui.as_dict()["images"]
    return Path(comfy.folder_paths.get_output_directory()) / item["subfolder"] / item["filename"]


def same_as_encoded(video, images, tmp_path) -> bool:
    """Whether `video` decodes to exactly what the one-shot writer makes of `images` at the same quality."""
    reference = read_mp4(write_mp4(tmp_path / "reference.mp4", images, 25, quality=0))
    return np.array_equal(video.frames, reference.frames)


def test_the_video_holds_the_samplers_frames_and_the_speech(comfy, comfy_vae, tmp_path):
    portrait, audio, emotion = make_inputs(frames=20)
    out = run_to_video(comfy, comfy_vae, portrait, audio, emotion, "emocast_test/stream")
    path = saved_path(comfy, out)
    assert path.is_file() and out.result[0].get_dimensions() == (64, 64)
    video = read_mp4(path)
    assert video.frame_count == 20 and video.fps == 25
    assert video.sample_rate == 16000 and abs(video.audio.shape[-1] - 20 / 25 * 16000) <= 1
    images = run_sampler(comfy, comfy_vae, portrait, audio, emotion, steps=1)[0]
    assert same_as_encoded(video, images, tmp_path)
    assert not list(path.parent.glob(".*partial*"))


def test_paste_back_streams_frames_of_the_source_pictures_size(comfy, comfy_vae, tmp_path):
    portrait, audio, emotion = make_inputs(frames=18)
    out = run_to_video(comfy, comfy_vae, portrait, audio, emotion, "emocast_test/pasted", paste_back=True)
    video = read_mp4(saved_path(comfy, out))
    height, width = portrait.source_image.shape[:2]
    assert (video.frame_count, video.height, video.width) == (18, height, width)
    pasted = run_sampler(comfy, comfy_vae, portrait, audio, emotion, steps=1, paste_back=True)[0]
    assert same_as_encoded(video, pasted, tmp_path)


def test_an_interrupt_leaves_no_file_behind(comfy, comfy_vae):
    import comfy.model_management as mm

    portrait, audio, emotion = make_inputs(frames=40)
    folder = Path(comfy.folder_paths.get_output_directory()) / "emocast_test_interrupt"
    calls = []
    original = mm.throw_exception_if_processing_interrupted

    def interrupt_in_the_second_clip():
        calls.append(1)
        if len(calls) == 2:  # one step per clip: clip 1 is written, clip 2 is interrupted
            mm.interrupt_current_processing(True)
        original()

    mm.throw_exception_if_processing_interrupted = interrupt_in_the_second_clip
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run_to_video(comfy, comfy_vae, portrait, audio, emotion, "emocast_test_interrupt/cut")
    finally:
        mm.throw_exception_if_processing_interrupted = original
        mm.interrupt_current_processing(False)
    assert len(calls) == 2 and not any(folder.iterdir())


def test_a_bad_prefix_is_refused_before_sampling(comfy, comfy_vae):
    portrait, audio, emotion = make_inputs(frames=16)
    with pytest.raises(ValueError, match="filename_prefix"):
        run_to_video(comfy, comfy_vae, portrait, audio, emotion, "")
