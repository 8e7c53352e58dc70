"""LoRA adapters on an EmoCASTNet: training through peft, applying without it.

Our file format (stable; `LORA_FORMAT` v1), one entry per adapted Linear at
module path P (the official `net.pth` key of its weight minus `.weight`):

    P.lora_down.weight  [r, in]     (peft's lora_A)
    P.lora_up.weight    [out, r]    (peft's lora_B)
    P.alpha             []          scale = alpha / r

so the weight becomes W + strength * (alpha / r) * up @ down.  Safetensors
metadata: `emocast.format`, `emocast.stages` (JSON list, one record per stage
trained: name, steps, rank, alpha, ...), `emocast.base_config` (EmoCASTConfig
JSON), `emocast.definitions_version`.  The dict of tensors is also what
ComfyUI's LORA_MODEL carries.

Training wraps the current stage's targets with peft (`inject_adapter_in_model`,
one adapter); earlier stages' LoRA rides along as forward hooks (frozen, exact,
no weight copies).  `apply_lora` merges into the weights (or hooks) for
inference and returns a handle whose `remove()` restores the exact weights.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from ._core import atomic_save, read_safetensors

LORA_FORMAT = "emocast-lora"
LORA_FORMAT_VERSION = "1"
ADAPTER = "emocast"
_DOWN, _UP, _ALPHA = ".lora_down.weight", ".lora_up.weight", ".alpha"


# --------------------------------------------------------------------------- format
@dataclass
class LoraFactors:
    down: torch.Tensor  # [r, in]
    up: torch.Tensor  # [out, r]
    alpha: float

    @property
    def scale(self) -> float:
        return self.alpha / self.down.shape[0]

    def delta(self) -> torch.Tensor:
        return (self.up.float() @ self.down.float()) * self.scale


def group_lora(state: dict[str, torch.Tensor]) -> dict[str, LoraFactors]:
    """Module path -> factors; a malformed dict raises ValueError naming the key."""
    suffixes = (_DOWN, _UP, _ALPHA)
    paths = sorted({k[: -len(s)] for k in state for s in suffixes if k.endswith(s)})
    valid = {p + s for p in paths for s in suffixes}
    stray = [k for k in state if k not in valid]
    if stray or not paths:
        raise ValueError(f"not an EmoCAST LoRA: unexpected keys {stray[:3]} (expected '<module>.lora_down.weight', "
                         "'.lora_up.weight', '.alpha')")
    out = {}
    for p in paths:
        try:
            down, up, alpha = state[p + _DOWN], state[p + _UP], state[p + _ALPHA]
        except KeyError as e:
            raise ValueError(f"LoRA entry {p} is incomplete: {e.args[0]} is missing") from None
        if down.dim() != 2 or up.dim() != 2 or up.shape[1] != down.shape[0]:
            raise ValueError(f"LoRA entry {p}: up {tuple(up.shape)} and down {tuple(down.shape)} do not chain")
        out[p] = LoraFactors(down, up, float(alpha))
    return out


def to_state(factors: dict[str, LoraFactors]) -> dict[str, torch.Tensor]:
    state = {}
    for p, f in factors.items():
        state[p + _DOWN] = f.down.detach().float().cpu().clone()  # never alias live parameters
        state[p + _UP] = f.up.detach().float().cpu().clone()
        state[p + _ALPHA] = torch.tensor(float(f.alpha))
    return state


def save_lora(path: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Atomic write (a failed write leaves no file, an earlier one intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.items()}
    meta = {"emocast.format": LORA_FORMAT, "emocast.format_version": LORA_FORMAT_VERSION, **metadata}
    atomic_save(lambda tmp: save_file(tensors, tmp, metadata=meta), path)
    return path


def load_lora(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    state, meta = read_safetensors(path, "LoRA file")
    if meta.get("emocast.format") != LORA_FORMAT:
        raise ValueError(f"{path.name} is not an EmoCAST LoRA (metadata emocast.format is "
                         f"{meta.get('emocast.format')!r}); train it with the EmoCAST trainer")
    group_lora(state)
    return state, meta


def stages_of(metadata: dict[str, str]) -> list[dict]:
    return json.loads(metadata.get("emocast.stages", "[]"))


# --------------------------------------------------------------------------- applying
def _linear(net: nn.Module, path: str, f: LoraFactors) -> nn.Linear:
    try:
        module = net.get_submodule(path)
    except AttributeError:
        raise ValueError(f"the LoRA adapts {path}, which this model does not have: "
                         "was it trained for another model configuration?") from None
    base = getattr(module, "base_layer", module)
    if not isinstance(base, nn.Linear) or tuple(base.weight.shape) != (f.up.shape[0], f.down.shape[1]):
        raise ValueError(f"the LoRA entry {path} ({f.up.shape[0]}x{f.down.shape[1]}) does not fit the model's layer "
                         f"{tuple(getattr(base, 'weight', torch.empty(0)).shape)}: another model configuration?")
    return module


@dataclass
class LoraHandle:
    """Undo for `apply_lora`: restores the exact weights / removes the hooks."""

    backups: dict = field(default_factory=dict)  # module -> original weight tensor
    hooks: list = field(default_factory=list)

    def remove(self) -> None:
        for module, weight in self.backups.items():
            # In-place writes to a weight made under inference mode (ComfyUI loads so) must happen in it.
            with torch.inference_mode(module.weight.is_inference()), torch.no_grad():
                module.weight.copy_(weight)
        for h in self.hooks:
            h.remove()
        self.backups, self.hooks = {}, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _hook(factors: LoraFactors, strength: float, device, dtype):
    down, up = factors.down.to(device, dtype), factors.up.to(device, dtype)
    scale = strength * factors.scale

    def hook(module, args, output):
        return output + F.linear(F.linear(args[0].to(dtype), down), up).to(output.dtype) * scale

    return hook


def apply_lora(net: nn.Module, state: dict[str, torch.Tensor], strength: float = 1.0, mode: str = "merge",
               backup_device: str | torch.device | None = None) -> LoraHandle:
    """Apply an EmoCAST LoRA to a plain (non-peft) EmoCASTNet in place; no peft needed.

    mode "merge": W <- W + strength * delta (computed in fp32, cast to W's dtype);
    originals are kept (on `backup_device`, default the weight's) for `remove()`.
    mode "hook": forward hooks add the low-rank path; weights untouched.
    Strength 0 changes nothing.
    """
    if mode not in ("merge", "hook"):
        raise ValueError(f"mode must be 'merge' or 'hook', got {mode!r}")
    factors = group_lora(state)
    modules = {p: _linear(net, p, f) for p, f in factors.items()}  # validate all before touching anything
    handle = LoraHandle()
    if strength == 0:
        return handle
    for p, f in factors.items():
        module = modules[p]
        weight = module.weight
        if mode == "hook":
            handle.hooks.append(module.register_forward_hook(_hook(f, strength, weight.device, torch.float32)))
            continue
        with torch.inference_mode(weight.is_inference()), torch.no_grad():
            handle.backups[module] = weight.detach().to(backup_device or weight.device, copy=True)
            weight.copy_((weight.float() + strength * f.delta().to(weight.device)).to(weight.dtype))
    return handle


def lora_weight_deltas(state: dict[str, torch.Tensor], strength: float = 1.0) -> dict[str, torch.Tensor]:
    """`<module>.weight` -> strength * delta (fp32): for weight-patching loaders such as ComfyUI's ModelPatcher."""
    return {f"{p}.weight": strength * f.delta() for p, f in group_lora(state).items()}


# --------------------------------------------------------------------------- training (peft)
def inject_lora(net: nn.Module, targets: list[str], rank: int, alpha: float, dropout: float) -> None:
    """Wrap exactly `targets` with a peft LoRA adapter (fp32 factors, B = 0 so the net is unchanged)."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1 or alpha <= 0 or not 0 <= dropout < 1:
        raise ValueError(f"LoRA rank must be >= 1, alpha > 0 and dropout in [0, 1), got {rank}, {alpha}, {dropout}")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                        target_modules="(?:" + "|".join(map(re.escape, targets)) + ")")
    inject_adapter_in_model(config, net, adapter_name=ADAPTER)
    for p in targets:
        layer = net.get_submodule(p)
        for part in (layer.lora_A[ADAPTER], layer.lora_B[ADAPTER]):
            part.float()


def peft_layers(net: nn.Module) -> dict[str, nn.Module]:
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in net.named_modules() if isinstance(m, LoraLayer) and ADAPTER in m.lora_A}


def peft_factors(net: nn.Module) -> dict[str, LoraFactors]:
    return {
        n: LoraFactors(m.lora_A[ADAPTER].weight, m.lora_B[ADAPTER].weight, float(m.lora_alpha[ADAPTER]))
        for n, m in peft_layers(net).items()
    }


@torch.no_grad()
def load_peft_factors(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy our-format tensors into the injected adapter (the same targets and rank)."""
    layers = peft_layers(net)
    factors = group_lora(state)
    if set(factors) != set(layers):
        diff = sorted(set(factors) ^ set(layers))
        raise ValueError(f"the LoRA's modules differ from this stage's targets (first: {diff[:3]})")
    for p, f in factors.items():
        layers[p].lora_A[ADAPTER].weight.copy_(f.down)
        layers[p].lora_B[ADAPTER].weight.copy_(f.up)


def remove_peft(net: nn.Module) -> None:
    """Put the original Linear layers back (the adapter is discarded)."""
    for name in sorted(peft_layers(net), key=len, reverse=True):
        parent, _, child = name.rpartition(".")
        owner = net.get_submodule(parent) if parent else net
        setattr(owner, child, owner.get_submodule(child).base_layer)
    if hasattr(net, "peft_config"):
        del net.peft_config
