"""Load a wav2vec2 Hugging Face folder from disk, nothing from a hub.

Expected folder (as `facebook/wav2vec2-base-960h` ships it):
  config.json               a `Wav2Vec2Config` (model_type "wav2vec2", asserted)
  model.safetensors  or  pytorch_model.bin   (the latter read with weights_only=True)
  preprocessor_config.json  feature-extractor settings (do_normalize, 16 kHz)

We read the state dict ourselves instead of `from_pretrained` so that a wrong
or incomplete checkpoint fails loudly instead of being silently random-filled.
Checkpoint key variants handled: a `wav2vec2.` prefix (ForCTC/pre-training
checkpoints; their heads are dropped) and both weight-norm namings of the
positional conv (`weight_g/weight_v` in older files, `parametrizations.weight.
original0/1` in newer ones).
"""
import json
import os
from dataclasses import dataclass

import torch

from ..tensor_files import WeightsFileError, read_tensors

CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_HEAD_PREFIXES = ("lm_head.", "quantizer.", "project_hid.", "project_q.", "dropout_features.", "projector.",
                  "classifier.", "adapter.")
_WEIGHT_NORM_ALIASES = {".weight_g": ".parametrizations.weight.original0",
                        ".weight_v": ".parametrizations.weight.original1"}
_CACHE: dict[tuple, "Wav2Vec2Bundle"] = {}


@dataclass
class Wav2Vec2Bundle:
    """A loaded wav2vec2 encoder plus the feature-extractor settings it expects."""
    model: torch.nn.Module  # transformers Wav2Vec2Model, eval, no grad
    path: str
    do_normalize: bool
    sampling_rate: int


def _missing_files(folder: str) -> list[str]:
    missing = [f for f in (CONFIG, PREPROCESSOR) if not os.path.isfile(os.path.join(folder, f))]
    if not any(os.path.isfile(os.path.join(folder, f)) for f in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    return missing


def _weights_file(folder: str) -> str:
    return next(os.path.join(folder, f) for f in WEIGHT_FILES if os.path.isfile(os.path.join(folder, f)))


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    state, _ = read_tensors(path, "wav2vec2 weights")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"wav2vec2 weights {os.path.basename(path)} do not hold a flat dictionary of tensors")
    return state


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"wav2vec2 folder: cannot read {path}: {exc}") from exc


def normalize_keys(state: dict[str, torch.Tensor], model_keys: set[str], folder: str) -> dict[str, torch.Tensor]:
    """Map checkpoint key variants onto the model's key names; refuse unknown keys."""
    out, unknown = {}, []
    for key, value in state.items():
        key = key[len("wav2vec2."):] if key.startswith("wav2vec2.") else key
        if key not in model_keys:
            for old, new in _WEIGHT_NORM_ALIASES.items():
                if key.endswith(old) and key[: -len(old)] + new in model_keys:
                    key = key[: -len(old)] + new
                elif key.endswith(new) and key[: -len(new)] + old in model_keys:
                    key = key[: -len(new)] + old
        if key in model_keys:
            out[key] = value
        elif not key.startswith(_HEAD_PREFIXES):
            unknown.append(key)
    if unknown:
        raise ValueError(f"wav2vec2 folder {folder}: weights do not fit its config.json "
                         f"({len(unknown)} unknown keys, e.g. {unknown[:3]}); is this a wav2vec2 checkpoint?")
    return out


def _build_model(config, state: dict[str, torch.Tensor], folder: str) -> torch.nn.Module:
    from transformers import Wav2Vec2Model

    with torch.device("meta"):  # no random init for 95 M parameters we overwrite anyway
        model = Wav2Vec2Model(config)
    model_keys = set(model.state_dict())
    state = normalize_keys(state, model_keys, folder)
    if "masked_spec_embed" in model_keys and "masked_spec_embed" not in state:
        state["masked_spec_embed"] = torch.zeros(config.hidden_size)  # only used for training-time masking
    missing = sorted(model_keys - set(state))
    if missing:
        raise ValueError(f"wav2vec2 folder {folder}: checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"wav2vec2 folder {folder}: weights do not match config.json: {exc}") from exc
    return model.eval().requires_grad_(False)


def load_wav2vec2(folder: str, device="cpu", dtype: torch.dtype = torch.float32) -> Wav2Vec2Bundle:
    """Load (or reuse) the wav2vec2 in `folder`; cached per (folder, weights mtime, device, dtype)."""
    folder = os.path.realpath(os.fspath(folder))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"wav2vec2 folder not found: {folder}")
    missing = _missing_files(folder)
    if missing:
        raise FileNotFoundError(f"wav2vec2 folder {folder} is incomplete, missing: {', '.join(missing)} "
                                "(copy the whole Hugging Face folder, e.g. facebook/wav2vec2-base-960h)")
    weights = _weights_file(folder)
    key = (folder, os.stat(weights).st_mtime_ns, str(torch.device(device)), dtype)
    if key in _CACHE:
        return _CACHE[key]

    raw = _read_json(os.path.join(folder, CONFIG))
    if raw.get("model_type") != "wav2vec2":
        raise ValueError(f"wav2vec2 folder {folder}: config.json has model_type {raw.get('model_type')!r}, "
                         "expected 'wav2vec2' (e.g. facebook/wav2vec2-base-960h)")
    from transformers import Wav2Vec2Config

    config = Wav2Vec2Config.from_pretrained(folder, local_files_only=True)
    prep = _read_json(os.path.join(folder, PREPROCESSOR))
    rate = int(prep.get("sampling_rate", 16000))
    if rate != 16000 or int(prep.get("feature_size", 1)) != 1:
        raise ValueError(f"wav2vec2 folder {folder}: preprocessor expects {rate} Hz / feature_size "
                         f"{prep.get('feature_size')}; EmoCAST needs a 16 kHz raw-waveform wav2vec2")
    model = _build_model(config, read_state_dict(weights), folder).to(device=device, dtype=dtype)
    for stale in [k for k in _CACHE if k[0] == folder and k[1] != key[1]]:
        del _CACHE[stale]  # the files changed on disk
    bundle = Wav2Vec2Bundle(model=model, path=folder, do_normalize=bool(prep.get("do_normalize", True)),
                            sampling_rate=rate)
    _CACHE[key] = bundle
    return bundle


def clear_wav2vec2_cache() -> None:
    _CACHE.clear()
