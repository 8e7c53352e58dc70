"""Training checkpoints: one safetensors file per step, written atomically.

`checkpoint_<step:08d>.safetensors` holds tensors under prefixes
`lora/` (the stage's adapter, our LoRA keys) or `weights/` (a full-weight
stage's parameters, by name), `prior/` (earlier stages' LoRA),
`optim/<key>/<state>` (optimizer state), `rng/...` (generator states),
and a JSON document in the metadata key `emocast.checkpoint` (step, configs,
optimizer hyper-parameters, LR scheduler, python/numpy RNG, loss history,
training time).  Everything is tensors, numbers and text: nothing is pickled.
With several processes, ranks >= 1 first write their own RNG streams to
`checkpoint_<step>.rank<k>.safetensors`; rank 0 writes the main file last, so a
main file on disk means a complete checkpoint.  Files are written to a
temporary name and moved into place with os.replace: an interrupted save never
leaves a half-written checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ._core import atomic_save as _atomic_save, read_safetensors

CHECKPOINT_FORMAT = "emocast-train-checkpoint"
CHECKPOINT_VERSION = 1
META_KEY = "emocast.checkpoint"
_MAIN = re.compile(r"checkpoint_(\d{8})\.safetensors")


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `tensors`, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def trained_prefix(lora: bool) -> str:
    return "lora/" if lora else "weights/"


# --------------------------------------------------------------------------- optimizer
def optimizer_to_file(optimizer: torch.optim.Optimizer, keys: list[str]) -> tuple[dict, dict]:
    """(tensors, json) of an optimizer over parameters named `keys` (in its order): tensor state under
    `optim/<key>/<name>`, the rest (numbers, hyper-parameters) in the json."""
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for i, key in enumerate(keys):
        for name, value in opt["state"].get(i, {}).items():
            if torch.is_tensor(value):
                tensors[f"optim/{key}/{name}"] = value
            else:
                scalars.setdefault(key, {})[name] = value
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
    return tensors, {"param_keys": list(keys), "optim_groups": groups, "optim_scalars": scalars}


def optimizer_from_file(optimizer: torch.optim.Optimizer, keys: list[str], tensors: dict, doc: dict,
                        name: str) -> None:
    """Load what `optimizer_to_file` wrote into an optimizer over the same parameters (any order on disk)."""
    if sorted(doc["param_keys"]) != sorted(keys):
        raise ValueError(f"{name} holds optimizer state for other parameters than this stage trains")
    index, state = {k: i for i, k in enumerate(keys)}, {}
    for key in doc["param_keys"]:
        entry = dict(doc["optim_scalars"].get(key, {}))
        prefix = f"optim/{key}/"
        entry.update({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        if entry:
            state[index[key]] = entry
    groups = [dict(g, params=list(range(len(keys)))) for g in doc["optim_groups"]]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# --------------------------------------------------------------------------- RNG
def capture_global_rng(device: torch.device) -> dict:
    """torch CPU, python and numpy RNG states, plus `device`'s CUDA RNG (only that GPU's: no other contexts)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if device.type == "cuda":
        state["cuda"] = [torch.cuda.get_rng_state(device)]
    return state


def seeded_global_rng(seed: int, device: torch.device) -> dict:
    """The global RNG states (as `capture_global_rng`) that seeding everything with `seed` gives,
    leaving the current ones untouched."""
    outer = capture_global_rng(device)
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)  # this GPU only
    random.seed(seed)
    np.random.seed(seed % 2**32)
    state = capture_global_rng(device)
    restore_global_rng(outer, device)
    return state


def restore_global_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if device.type == "cuda" and state.get("cuda"):
        torch.cuda.set_rng_state(state["cuda"][0], device)


def rng_to_file(state: dict, generators: dict[str, torch.Generator]) -> tuple[dict, dict]:
    """(tensors, json) for the global RNG `state` and named generators."""
    tensors = {"rng/torch": state["torch"]}
    for i, s in enumerate(state.get("cuda", [])):
        tensors[f"rng/cuda/{i}"] = s
    name, keys, pos, has_gauss, gauss = state["numpy"]
    tensors["rng/numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    for k, g in generators.items():
        tensors[f"rng/gen/{k}"] = g.get_state()
    version, internal, py_gauss = state["python"]
    doc = {"python": [version, list(internal), py_gauss], "numpy": [name, int(pos), int(has_gauss), float(gauss)],
           "cuda_devices": len(state.get("cuda", []))}
    return tensors, doc


def rng_from_file(tensors: dict, doc: dict, generators: dict[str, torch.Generator]) -> dict:
    version, internal, py_gauss = doc["python"]
    name, pos, has_gauss, gauss = doc["numpy"]
    state = {
        "torch": tensors["rng/torch"],
        "python": (version, tuple(internal), py_gauss),
        "numpy": (name, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss),
    }
    if doc.get("cuda_devices"):
        state["cuda"] = [tensors[f"rng/cuda/{i}"] for i in range(doc["cuda_devices"])]
    for k, g in generators.items():
        g.set_state(tensors[f"rng/gen/{k}"])
    return state


# --------------------------------------------------------------------------- files
def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a folder's newest one."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint_*.safetensors in {path}")
        return latest
    return path


def checkpoint_path(directory: str | os.PathLike, step: int, rank: int = 0) -> Path:
    name = f"checkpoint_{step:08d}" + (f".rank{rank}" if rank else "") + ".safetensors"
    return Path(directory) / name


def atomic_save(tensors: dict[str, torch.Tensor], doc: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_save(lambda tmp: save_file(state, tmp, metadata={META_KEY: json.dumps(doc)}), path)


def read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    tensors, meta = read_safetensors(path, "training checkpoint")
    if META_KEY not in meta:
        raise ValueError(f"{path.name} is not an EmoCAST training checkpoint (no {META_KEY} metadata)")
    return tensors, json.loads(meta[META_KEY])


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete main checkpoint files, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _MAIN.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def prune(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (with their rank files)."""
    if keep <= 0:
        return
    for path in list_checkpoints(directory)[:-keep]:
        stem = path.name[: -len(".safetensors")]
        for p in Path(directory).glob(f"{stem}.rank*.safetensors"):
            p.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
