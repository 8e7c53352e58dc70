"""Load the CLIP text encoder + tokenizer from a local Hugging Face folder.

The official code pulls `openai/clip-vit-large-patch14` from the hub and moves
it to a hard-coded "cuda".  Here the folder is local
(`models/text_encoders/<name>/`), loading never touches the network, weights
come only from safetensors, and the caller picks the device.
"""
import logging
import os
from dataclasses import dataclass

import torch

from ..tensor_files import check_safetensors
from .tokens import MAX_TOKENS, check_tokenizer

log = logging.getLogger(__name__)

CLIP_L_HIDDEN = 768

_CACHE: dict[tuple[str, str, torch.dtype], "ClipTextEncoder"] = {}


@dataclass
class ClipTextEncoder:
    """A loaded CLIP text model; `encode_ids` gives the official E_text."""

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    name: str

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @torch.no_grad()  # not inference_mode: training may reuse the tensors
    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """[B,77] ids → [B,77,H] fp32 on CPU: final layer after the final
        LayerNorm, and no attention mask, so padding tokens are attended."""
        out = self.model(input_ids=ids.to(self.device)).last_hidden_state
        return out.float().cpu()


def missing_files(path: str) -> list[str]:
    """What a usable folder lacks: config, safetensors weights, tokenizer."""
    def has(*names: str) -> bool:
        return any(os.path.isfile(os.path.join(path, n)) for n in names)

    missing = []
    if not has("config.json"):
        missing.append("config.json")
    if not has("model.safetensors", "model.safetensors.index.json"):
        missing.append("model.safetensors (only safetensors weights are loaded)")
    if not (has("tokenizer.json") or (has("vocab.json") and has("merges.txt"))):
        missing.append("tokenizer files (vocab.json + merges.txt, or tokenizer.json)")
    return missing


def load_clip_text(path: str, device="cpu", dtype: torch.dtype = torch.float32,
                   expected_hidden: int | None = CLIP_L_HIDDEN) -> ClipTextEncoder:
    """CLIPTextModel + CLIPTokenizer from folder `path`, cached per (path, device, dtype).

    `expected_hidden` guards against a non-CLIP-L encoder (768 for EmoCAST);
    pass None for small test models.
    """
    path = os.path.realpath(path)
    device = torch.device(device)
    key = (path, str(device), dtype)
    if key not in _CACHE:
        _CACHE[key] = _load(path, device, dtype)
    encoder = _CACHE[key]
    if expected_hidden is not None and encoder.hidden_size != expected_hidden:
        raise ValueError(f"text encoder {path} has hidden size {encoder.hidden_size}, EmoCAST needs CLIP-L "
                         f"({expected_hidden}); use openai/clip-vit-large-patch14.")
    return encoder


def clear_cache() -> None:
    """Drop every cached text encoder (frees its memory once unreferenced)."""
    _CACHE.clear()


def _load(path: str, device: torch.device, dtype: torch.dtype) -> ClipTextEncoder:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"text encoder folder {path} does not exist.")
    missing = missing_files(path)
    if missing:
        raise FileNotFoundError(f"text encoder folder {path} is missing: {'; '.join(missing)}. "
                                "Copy the Hugging Face folder of openai/clip-vit-large-patch14 there.")
    from transformers import CLIPTextModel, CLIPTokenizer  # heavy; only when loading

    weights = os.path.join(path, "model.safetensors")
    if os.path.isfile(weights):
        check_safetensors(weights, f"text encoder {os.path.basename(path)}:")

    tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True)
    check_tokenizer(tokenizer, path)
    # A full CLIPModel folder (text + vision, as openai ships it) loads too;
    # its vision keys are ignored.  Missing text keys would mean random init.
    model, info = CLIPTextModel.from_pretrained(path, local_files_only=True, use_safetensors=True,
                                                output_loading_info=True)
    if info["missing_keys"]:
        raise ValueError(f"text encoder {path} lacks weights for {sorted(info['missing_keys'])[:5]}...; "
                         "it is not a CLIP text model.")
    config = model.config
    if config.vocab_size != len(tokenizer) or config.max_position_embeddings != MAX_TOKENS:
        raise ValueError(f"text encoder {path}: vocab {config.vocab_size} / positions "
                         f"{config.max_position_embeddings}, expected {len(tokenizer)} / {MAX_TOKENS}.")
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    log.info("EmoCAST: loaded CLIP text encoder %s (hidden %d) on %s", path, config.hidden_size, device)
    return ClipTextEncoder(model=model, tokenizer=tokenizer, device=device, name=os.path.basename(path))
