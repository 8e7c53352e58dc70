"""A complete models/ folder of placeholder weights in the official file layouts.

Real weights cannot be downloaded here, so the end-to-end tests and `make demo`
run the real nodes on stand-ins, each written where and how the real file is:

| file (under models/)                               | stand-in                                        |
|----------------------------------------------------|-------------------------------------------------|
| emocast/net.pth                                    | EmoCAST at the parity fixtures' reduced width, deterministic rule weights, saved with torch.save like the official file |
| vae/sd-vae-ft-mse.safetensors                      | sd-vae-ft-mse's architecture, random weights (diffusers format) |
| wav2vec2/wav2vec2-base-960h/                       | wav2vec2 with the real 12 x 768 output, slim inner layers, random |
| text_encoders/clip-vit-large-patch14/              | 1-layer CLIP text encoder, 768 wide, with the real CLIP tokenizer files from the installed ComfyUI |
| insightface/models/antelopev2/                     | tiny SCRFD / ArcFace ONNX nets (scripts/runner/face_models.py) that find red square "faces" |

Nothing here is meaningful as a picture: the outputs are noise-like videos.
Built once per content version into a cache folder and reused.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

VERSION = "1"  # bump when a stand-in changes
REPO = Path(__file__).resolve().parents[2]


def build(dest: Path, comfy_core: Path) -> Path:
    """Write every stand-in under `dest` (a models/ folder); skip when already complete."""
    stamp = dest / ".placeholder-version"
    if stamp.is_file() and stamp.read_text() == VERSION:
        return dest
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import torch

    dest.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(False), torch.no_grad():
        _emocast(dest / "emocast" / "net.pth")
        _vae(dest / "vae" / "sd-vae-ft-mse.safetensors")
        _wav2vec(dest / "wav2vec2" / "wav2vec2-base-960h")
        _clip(dest / "text_encoders" / "clip-vit-large-patch14", comfy_core / "comfy" / "sd1_tokenizer")
        _antelope(dest / "insightface" / "models" / "antelopev2")
    stamp.write_text(VERSION)
    return dest


def _emocast(path: Path) -> None:
    import torch

    from emocast_core.config import EmoCASTConfig
    from emocast_core.deterministic_weights import fill_deterministic
    from emocast_core.models import EmoCASTNet

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() for k, v in fill_deterministic(EmoCASTNet(EmoCASTConfig.reduced())).state_dict().items()}
    torch.save(state, path)


def _vae(path: Path) -> None:
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from emocast_core.pipeline import SD_VAE_ARCHITECTURE

    torch.manual_seed(0)
    vae = AutoencoderKL(**SD_VAE_ARCHITECTURE)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in vae.state_dict().items()}, str(path))


def _wav2vec(folder: Path) -> None:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=128,
                            conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            do_stable_layer_norm=False, feat_extract_norm="group")
    Wav2Vec2Model(config).eval().save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000}))


def _clip(folder: Path, tokenizer_dir: Path) -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=128, num_hidden_layers=1,
                            num_attention_heads=12, max_position_embeddings=77, projection_dim=768)
    CLIPTextModel(config).eval().save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(tokenizer_dir / name, folder / name)


def _antelope(folder: Path) -> None:
    from .face_models import make_antelope

    make_antelope(folder)


def default_cache() -> Path:
    return Path(os.environ.get("EMOCAST_CACHE", Path.home() / ".cache" / "comfyui-emocast")) / f"placeholder-models-v{VERSION}"
