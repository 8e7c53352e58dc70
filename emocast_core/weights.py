"""Loading EmoCAST checkpoints: the official `net.pth` or a converted `.safetensors`.

Only `safetensors` and `torch.load(weights_only=True)` are used: no arbitrary
unpickling.  The model is built on the meta device and the file's tensors are
assigned into it, cast one by one, so a half-precision model never exists as
an fp32 copy.  A file that is not an EmoCAST checkpoint gets an error that
says what it looks like instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .config import EmoCASTConfig
from .models import EmoCASTNet
from .tensor_files import WeightsFileError, read_tensors

PREFIXES = ("reference_unet.", "denoising_unet.", "face_locator.", "imageproj.", "audioproj.")
CONFIG_METADATA_KEY = "emocast_config"
# Small models (the demo) carry their own autoencoder: ComfyUI's VAE loader only
# builds the SD architecture, so it travels in the checkpoint under this prefix.
VAE_PREFIX = "vae."
VAE_CONFIG_METADATA_KEY = "emocast_vae_config"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class CheckpointError(WeightsFileError):
    """The file exists but is not a loadable EmoCAST checkpoint."""


def read_safetensors(path: str | os.PathLike, what: str = "file") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors file, read through `tensor_files.read_tensors`."""
    if Path(path).suffix != ".safetensors":
        raise WeightsFileError(f"{what} {Path(path).name} is not a .safetensors file")
    return read_tensors(path, what)


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint file (memory-mapped where possible)."""
    state, metadata = read_tensors(path, "EmoCAST checkpoint", CheckpointError)
    return _unwrap(state, Path(path)), metadata


def _unwrap(state, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in ("state_dict", "module", "model", "net"):
            if key in state and isinstance(state[key], dict) and not isinstance(state[key], torch.Tensor):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name} does not hold a flat dictionary of tensors")
    if state and all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def describe_keys(keys) -> str:
    """A guess of what a checkpoint is, from its key names (for error messages)."""
    keys = list(keys)
    has = lambda s: any(s in k for k in keys)  # noqa: E731
    if not keys:
        return "it holds no tensors"
    if has("lora_down") or has("lora_A") or has("lora_up") or has(".lora."):
        return "it looks like a LoRA; apply it with the LoRA node instead of loading it as the model"
    if has("model.diffusion_model."):
        return "it looks like a Stable Diffusion checkpoint (UNet/VAE/CLIP), not EmoCAST's net.pth"
    if has("encoder.down") and has("decoder.up") and not has("denoising_unet."):
        return "it looks like a VAE; load it with ComfyUI's VAELoader"
    if has("text_model.encoder") or has("feature_projection"):
        return "it looks like a text or audio encoder (CLIP / wav2vec2), not EmoCAST's net.pth"
    if has("motion_modules") and not has("denoising_unet."):
        return "it looks like an AnimateDiff motion module, not EmoCAST's net.pth"
    if keys and not any(k.startswith(PREFIXES) for k in keys):
        if has("down_blocks.") and has("conv_in."):
            return "it looks like a bare diffusers UNet, not EmoCAST's net.pth (which prefixes reference_unet./denoising_unet.)"
        return "none of its keys start with EmoCAST's prefixes (reference_unet., denoising_unet., face_locator., imageproj., audioproj.)"
    if has("denoising_unet.") and not has("attn_audioemo"):
        return "it looks like a Hallo checkpoint (no emotive audio attention), not EmoCAST"
    return "it looks like an EmoCAST checkpoint of a different size or version"


def infer_config(state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                 name: str = "the checkpoint") -> EmoCASTConfig:
    """The config stored by our converter, else the one implied by the tensor shapes (`name`: for errors)."""
    if metadata and CONFIG_METADATA_KEY in metadata:
        return EmoCASTConfig.from_dict(json.loads(metadata[CONFIG_METADATA_KEY]))
    try:
        unet = "denoising_unet."
        channels = tuple(state[f"{unet}down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in range(4))
        layers = len({k.split(".")[4] for k in state if k.startswith(f"{unet}down_blocks.0.resnets.")})
        cross = state[f"{unet}down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"].shape[1]
        eaa = state[f"{unet}mid_block.audio_modules.0.transformer_blocks.0.attn_audioemo.to_q.weight"]
        face_proj = state["imageproj.proj.weight"]
        audio_in = state["audioproj.proj1.weight"]
        blocks = sum(1 for k in state if k.startswith("face_locator.blocks.") and k.endswith(".weight"))
        # pairs of (same-width conv, strided conv): one pair per halving of the latent grid (3 officially)
        locator = tuple(state[f"face_locator.blocks.{i}.weight"].shape[1] for i in range(0, blocks, 2)) + (
            state[f"face_locator.blocks.{max(blocks - 1, 0)}.weight"].shape[0],
        )
        pe = state[f"{unet}mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"]
    except KeyError as err:
        raise CheckpointError(f"{name} is not an EmoCAST checkpoint (missing key {err.args[0]}): "
                              f"{describe_keys(state)}") from err
    cfg = EmoCASTConfig.official().with_(
        block_out_channels=channels,
        layers_per_block=layers,
        in_channels=state[f"{unet}conv_in.weight"].shape[1],
        out_channels=state[f"{unet}conv_out.weight"].shape[0],
        cross_attention_dim=cross,
        audio_token_dim=eaa.shape[1],
        eaa_head_dim=eaa.shape[0] // 8,
        face_embed_dim=face_proj.shape[1],
        face_tokens=face_proj.shape[0] // cross,
        audio_proj_hidden=audio_in.shape[0],
        audio_tokens=state["audioproj.proj3.weight"].shape[0] // eaa.shape[1],
        face_locator_channels=locator,
        face_locator_in_channels=state["face_locator.conv_in.weight"].shape[1],
        motion_max_len=pe.shape[1],
    )
    # proj1 sees window x layers x channels flattened: keep the official 5-frame window and
    # token width and solve for the layer count (12 for wav2vec2-base).
    per_layer = cfg.audio_window * cfg.audio_token_dim
    if audio_in.shape[1] % per_layer:
        raise CheckpointError(
            f"audioproj.proj1 takes {audio_in.shape[1]} inputs, not a multiple of 5 x {cfg.audio_token_dim}; "
            "convert this checkpoint together with its config"
        )
    cfg = cfg.with_(audio_channels=cfg.audio_token_dim, audio_layers=audio_in.shape[1] // per_layer)
    return cfg


def check_keys(state: dict[str, torch.Tensor], model: torch.nn.Module, name: str = "checkpoint") -> None:
    """Strict comparison with a clear report: counts and the first few of each problem."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
            if items:
                parts.append(f"{len(items)} {label} (first: {', '.join(items[:3])})")
        raise CheckpointError(
            f"{name} does not match the EmoCAST model: {'; '.join(parts)}. Hint: {describe_keys(state)}."
        )


def _assign(module: torch.nn.Module, state: dict, dtype: torch.dtype, device) -> torch.nn.Module:
    cast = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in state.items()}
    module.load_state_dict(cast, strict=True, assign=True)
    return module.eval().requires_grad_(False)


def load_checkpoint(
    path: str | os.PathLike,
    dtype: torch.dtype = torch.float16,
    device: str | torch.device = "cpu",
    config: EmoCASTConfig | None = None,
):
    """(networks, bundled autoencoder or None): built on the meta device, the file's weights assigned, cast to `dtype`."""
    state, metadata = read_state_dict(path)
    vae_state = {k[len(VAE_PREFIX):]: state.pop(k) for k in [k for k in state if k.startswith(VAE_PREFIX)]}
    config = config or infer_config(state, metadata, Path(path).name)
    with torch.device("meta"):
        net = EmoCASTNet(config)
    check_keys(state, net, Path(path).name)
    device = torch.device(device)
    net = _assign(net, state, dtype, device)
    del state
    vae = _bundled_vae(vae_state, metadata, Path(path).name, dtype, device) if vae_state else None
    return net, vae


def load_net(path: str | os.PathLike, dtype: torch.dtype = torch.float16, device: str | torch.device = "cpu",
             config: EmoCASTConfig | None = None) -> EmoCASTNet:
    """The networks of a checkpoint (a bundled autoencoder, if any, is left out)."""
    return load_checkpoint(path, dtype, device, config)[0]


def _bundled_vae(state: dict, metadata: dict, name: str, dtype, device):
    from diffusers import AutoencoderKL

    if VAE_CONFIG_METADATA_KEY not in metadata:
        raise CheckpointError(f"{name} holds '{VAE_PREFIX}' tensors but no {VAE_CONFIG_METADATA_KEY} metadata")
    with torch.device("meta"):
        vae = AutoencoderKL(**json.loads(metadata[VAE_CONFIG_METADATA_KEY]))
    expected = set(vae.state_dict())
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise CheckpointError(f"{name}: the bundled autoencoder does not match its config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return _assign(vae, state, dtype, device)


def save_net(net: EmoCASTNet, path: str | os.PathLike, dtype: torch.dtype | None = None, extra: dict | None = None,
             vae=None):
    """Write a safetensors checkpoint with the config in its metadata (what `load_checkpoint` reads back).

    `vae`: an optional diffusers AutoencoderKL to bundle (small models whose autoencoder
    is not SD's); it is stored under the `vae.` prefix with its config.
    """
    from safetensors.torch import save_file

    cast = lambda v: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()  # noqa: E731
    state = {k: cast(v) for k, v in net.state_dict().items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(net.config.to_dict()), **(extra or {})}
    if vae is not None:
        state.update({VAE_PREFIX + k: cast(v) for k, v in vae.state_dict().items()})
        metadata[VAE_CONFIG_METADATA_KEY] = json.dumps({k: v for k, v in vae.config.items() if not k.startswith("_")})
    atomic_save(lambda tmp: save_file(state, tmp, metadata=metadata), path)


def atomic_save(write, path: str | os.PathLike) -> None:
    """Run `write(temporary path)`, then rename onto `path`: a failed write never leaves a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
