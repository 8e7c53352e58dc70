"""Loading and converting EmoCAST checkpoints in the official net.pth layout, and rejecting wrong files."""
import subprocess
import sys

import pytest
import torch

from emocast_core.config import EmoCASTConfig
from emocast_core.deterministic_weights import fill_deterministic
from emocast_core.models import EmoCASTNet
from emocast_core.weights import CheckpointError, infer_config, load_net, read_state_dict, save_net

# A narrow model with the official key set, so files stay small and tests fast.
TINY = EmoCASTConfig.tiny()


@pytest.fixture(scope="module")
def tiny_state():
    return fill_deterministic(EmoCASTNet(TINY)).state_dict()


@pytest.fixture(scope="module")
def net_pth(tmp_path_factory, tiny_state):
    path = tmp_path_factory.mktemp("emocast") / "net.pth"
    torch.save(tiny_state, path)  # the official file is a plain state dict saved with torch.save
    return path


def test_config_is_inferred_from_an_official_layout_file(net_pth):
    state, metadata = read_state_dict(net_pth)
    assert len(state) == 2832 and metadata == {}
    assert infer_config(state) == TINY


def test_a_factor_4_face_locator_is_inferred_from_the_shapes():
    """Two halvings instead of three (a model trained on a factor-4 autoencoder) read back without metadata."""
    cfg4 = TINY.with_(face_locator_channels=(8, 16, 24))
    assert infer_config(EmoCASTNet(cfg4).state_dict()) == cfg4 and cfg4.latent_factor == 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_load_net_strict_in_each_dtype(net_pth, tiny_state, dtype):
    net = load_net(net_pth, dtype=dtype)
    state = net.state_dict()
    assert set(state) == set(tiny_state)
    for key, value in state.items():
        assert value.dtype == dtype and value.device.type == "cpu", key
        torch.testing.assert_close(value, tiny_state[key].to(dtype), rtol=0, atol=0)
    assert not any(p.requires_grad for p in net.parameters())


def test_half_model_is_never_materialised_in_fp32(tmp_path, tiny_state):
    path = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in tiny_state.items()}, path)
    net = load_net(path, dtype=torch.float16)
    assert {p.dtype for p in net.parameters()} == {torch.float16}
    # Built on the meta device and assigned: no parameter was ever initialised (zero-inits included).
    zero_conv = net.denoising_unet.mid_block.audio_modules[0].transformer_blocks[0].zero_conv_lip.weight
    assert zero_conv.abs().sum() > 0


def test_safetensors_round_trip_with_config_metadata(tmp_path, tiny_state):
    net = load_net_from_state(tiny_state)
    out = tmp_path / "emocast.safetensors"
    save_net(net, out, dtype=torch.float16)
    _, metadata = read_state_dict(out)
    assert "emocast_config" in metadata
    again = load_net(out, dtype=torch.float32)
    assert again.config == TINY
    torch.testing.assert_close(again.state_dict()["imageproj.proj.weight"], tiny_state["imageproj.proj.weight"].half().float())


def load_net_from_state(state):
    net = EmoCASTNet(TINY)
    net.load_state_dict(state)
    return net


def test_converter_cli(tmp_path, net_pth):
    out = tmp_path / "converted.safetensors"
    run = subprocess.run(
        [sys.executable, "-m", "emocast_core.convert", str(net_pth), str(out), "--dtype", "fp16"],
        capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    assert run.returncode == 0, run.stderr
    assert "2832 tensors" in run.stdout
    net = load_net(out, dtype=torch.float16)
    assert net.config == TINY
    assert not list(tmp_path.glob(".*partial"))


def test_converter_reports_bad_input(tmp_path):
    bad = tmp_path / "lora.safetensors"
    from safetensors.torch import save_file

    save_file({"lora_unet_down.lora_down.weight": torch.zeros(2, 2)}, bad)
    run = subprocess.run(
        [sys.executable, "-m", "emocast_core.convert", str(bad), str(tmp_path / "o.safetensors")],
        capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    assert run.returncode == 2
    assert "LoRA" in run.stderr
    assert not (tmp_path / "o.safetensors").exists()


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_net("/nonexistent/net.pth")


def test_truncated_file(tmp_path, net_pth):
    cut = tmp_path / "net.pth"
    data = net_pth.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_net(cut)


@pytest.mark.parametrize(
    "keys, hint",
    [
        ({"model.diffusion_model.input_blocks.0.0.weight": (4, 4)}, "Stable Diffusion checkpoint"),
        ({"unet.down_blocks.0.lora_A.weight": (2, 2)}, "LoRA"),
        ({"encoder.down.0.weight": (2,), "decoder.up.0.weight": (2,)}, "VAE"),
        ({"down_blocks.0.motion_modules.0.temporal_transformer.norm.weight": (4,)}, "AnimateDiff"),
    ],
)
def test_wrong_kinds_of_file_are_named(tmp_path, keys, hint):
    path = tmp_path / "wrong.pth"
    torch.save({k: torch.zeros(s) for k, s in keys.items()}, path)
    with pytest.raises(CheckpointError, match=hint):
        load_net(path)


def test_hallo_checkpoint_is_recognised(tmp_path, tiny_state):
    path = tmp_path / "hallo.pth"
    torch.save({k: v for k, v in tiny_state.items() if "attn_audioemo" not in k and "postnorm_audioemo" not in k}, path)
    with pytest.raises(CheckpointError, match="Hallo"):
        load_net(path)


def test_mismatches_are_counted_and_listed(tmp_path, tiny_state):
    state = dict(tiny_state)
    state.pop("imageproj.norm.bias")
    state["extra.key"] = torch.zeros(1)
    state["face_locator.conv_in.bias"] = torch.zeros(5)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_net(path, config=TINY)
    message = str(err.value)
    assert "1 missing (first: imageproj.norm.bias)" in message
    assert "1 unexpected (first: extra.key)" in message
    assert "1 mis-shaped (first: face_locator.conv_in.bias (5,) (expected (16,)))" in message


class _Exploit:
    def __reduce__(self):
        return (open, ("/tmp/emocast_pwned", "w"))


def test_pickled_objects_are_never_executed(tmp_path):
    import pathlib

    marker = pathlib.Path("/tmp/emocast_pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pth"
    torch.save({"x": _Exploit()}, path)
    with pytest.raises(CheckpointError):
        load_net(path)
    assert not marker.exists()


def small_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(32,) * 4, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4,
                         scaling_factor=0.5)


def test_checkpoint_can_bundle_its_own_autoencoder(tmp_path, tiny_state):
    from emocast_core.weights import load_checkpoint

    vae = small_vae()
    path = tmp_path / "bundle.safetensors"
    save_net(load_net_from_state(tiny_state), path, vae=vae)
    net, loaded = load_checkpoint(path, dtype=torch.float32)
    assert net.config == TINY and loaded.config.scaling_factor == 0.5
    for key, value in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert load_net(path, dtype=torch.float32).config == TINY  # the networks alone still load
    plain = tmp_path / "plain.safetensors"
    save_net(load_net_from_state(tiny_state), plain)
    assert load_checkpoint(plain, dtype=torch.float32)[1] is None


def test_bundled_autoencoder_without_its_config_is_refused(tmp_path, tiny_state):
    from safetensors.torch import save_file

    from emocast_core.weights import load_checkpoint

    state = {**tiny_state, "vae.encoder.conv_in.weight": torch.zeros(32, 3, 3, 3)}
    path = tmp_path / "odd.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(CheckpointError, match="no emocast_vae_config"):
        load_checkpoint(path, dtype=torch.float32, config=TINY)
