"""Progressive functional training: three LoRA stages defined by what they teach.

The paper names "progressive functional training" without defining it, and the
official stage configs train whole modules.  The pack trains
LoRA adapters, one module group per stage, each stage on top of the previous
stages' (frozen) LoRA:

| stage        | teaches                      | LoRA targets (Linear layers)                                         | clip            |
|--------------|------------------------------|----------------------------------------------------------------------|-----------------|
| `appearance` | identity, texture, TEA       | spatial transformers of both UNets: attn1 / attn2 to_q, to_k, to_v,   | 1 frame         |
|              |                              | to_out.0 and the TEA face branch attn2.processor.to_k_ip.0 / to_v_ip.0|                 |
| `lipsync`    | audio-driven mouth/head      | audio modules: attn1, attn2_0/1/2 (to_q/k/v/out.0), ff               | 14 frames + 2   |
| `emotion`    | emotion-conditioned dynamics | EAA attn_audioemo (to_q/k/v/out.0) + motion modules (proj_in/out,    | 14 frames + 2   |
|              |                              | temporal attentions, ff)                                             |                 |

Only modules that run are targeted: the ReferenceNet's last transformer block
feeds nothing (the bank records block inputs), and the motion modules of the
two blocks without attention never run (the official UNet skips them), so adapters there would
get no gradient.  `stage_target_modules(net, stage)` lists the exact names.

Stage 1 at F = 1 runs the whole 3D denoiser, audio and motion modules included
(frozen), with the two frames before the target as motion frames.  The official
stage 1 trained a 2D network before the temporal modules existed; we adapt a
finished model, so the spatial LoRA learns in the network it will run in.

A model trained from nothing (the demo model) goes through the same stages on
full weights instead (`TrainConfig(adapter="full")`), as the official stages
trained whole modules; `in_full_weight_group` partitions the parameters:

| stage        | trains (all parameters of)                                                         |
|--------------|------------------------------------------------------------------------------------|
| `appearance` | both UNets except audio and motion modules, FaceLocator, ImageProj's bias and norm |
| `lipsync`    | the audio modules (without the EAA) and AudioProj                                  |
| `emotion`    | the EAA (`attn_audioemo`, its norm) and the motion modules                         |

ImageProj's weight (`FROZEN_AT_ZERO`) is in no group: a model without face
identities keeps it at zero, so its face tokens never depend on the ArcFace vector.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

from .sampling import SamplingConfig

DEFINITIONS_VERSION = "1"  # bump when a stage, sampling or dropout definition changes

_BLOCK = r"(?:down_blocks\.\d+|mid_block|up_blocks\.\d+)"
_QKVO = r"(?:to_q|to_k|to_v|to_out\.0)"
_FF = r"ff\.net\.(?:0\.proj|2)"

TARGET_PATTERNS = {
    "appearance": (
        rf"(?:reference_unet|denoising_unet)\.{_BLOCK}\.attentions\.\d+\.transformer_blocks\.0\."
        rf"(?:attn1\.{_QKVO}|attn2\.(?:{_QKVO}|processor\.to_k_ip\.0|processor\.to_v_ip\.0))"
    ),
    "lipsync": rf"denoising_unet\.{_BLOCK}\.audio_modules\.\d+\.transformer_blocks\.0\.(?:(?:attn1|attn2_[012])\.{_QKVO}|{_FF})",
    "emotion": (
        rf"denoising_unet\.{_BLOCK}\.(?:audio_modules\.\d+\.transformer_blocks\.0\.attn_audioemo\.{_QKVO}"
        rf"|motion_modules\.\d+\.temporal_transformer\.(?:proj_in|proj_out"
        rf"|transformer_blocks\.0\.(?:attention_blocks\.\d+\.{_QKVO}|{_FF})))"
    ),
}


@dataclass(frozen=True)
class StageSpec:
    name: str
    teaches: str
    frames: int  # clip length (the official stage 2 trained on 14)
    rank: int = 16
    alpha: float = 16.0
    lora_dropout: float = 0.0
    lr: float = 1e-4  # LoRA wants ~10x the official full fine-tuning LR (1e-5)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    @property
    def pattern(self) -> str:
        return TARGET_PATTERNS[self.name]


STAGES: dict[str, StageSpec] = {
    # Class balance lets TEA see every emotion's look equally often; single frames carry no motion energy.
    "appearance": StageSpec("appearance", "identity, texture and text-guided expression (TEA)", frames=1,
                            sampling=SamplingConfig(class_balance=1.0, energy_alpha=0.0)),
    # Lip sync cares about articulation, not the emotion mix: natural frequencies, favour moving mouths.
    "lipsync": StageSpec("lipsync", "audio-driven lips, face and pose (hierarchical audio attention)", frames=14,
                         sampling=SamplingConfig(class_balance=0.0, energy_alpha=0.5)),
    # Emotion-aware sampling proper: balanced emotions, expressive segments first.
    "emotion": StageSpec("emotion", "emotion-conditioned audio (EAA) and motion dynamics", frames=14,
                         sampling=SamplingConfig(class_balance=1.0, energy_alpha=1.0)),
}
STAGE_ORDER = tuple(STAGES)


def get_stage(name: str) -> StageSpec:
    if name not in STAGES:
        raise ValueError(f"unknown training stage {name!r}: choose one of {', '.join(STAGE_ORDER)}")
    return STAGES[name]


_TEMPORAL = (".audio_modules.", ".motion_modules.")
_EAA = (".attn_audioemo.", ".postnorm_audioemo.")
FROZEN_AT_ZERO = ("imageproj.proj.weight",)


def in_full_weight_group(stage: str, name: str) -> bool:
    """Whether parameter `name` trains in `stage` on full weights (the groups partition all but FROZEN_AT_ZERO)."""
    get_stage(stage)
    if name in FROZEN_AT_ZERO:
        return False
    if stage == "appearance":
        return not any(t in name for t in _TEMPORAL) and not name.startswith("audioproj.")
    if stage == "lipsync":
        return (".audio_modules." in name and not any(e in name for e in _EAA)) or name.startswith("audioproj.")
    return any(e in name for e in _EAA) or ".motion_modules." in name  # emotion


def _dead_prefixes(net: nn.Module) -> list[str]:
    """Module prefixes whose outputs never reach the loss (see the module docstring)."""
    dead = []
    ref = getattr(net, "reference_unet", None)
    if ref is not None:
        last_up = len(ref.up_blocks) - 1
        last_attn = len(ref.up_blocks[last_up].attentions) - 1
        dead.append(f"reference_unet.up_blocks.{last_up}.attentions.{last_attn}.")
    unet = getattr(net, "denoising_unet", None)
    if unet is not None:
        for kind, blocks in (("down_blocks", unet.down_blocks), ("up_blocks", unet.up_blocks)):
            for i, block in enumerate(blocks):
                if not hasattr(block, "attentions"):  # DownBlock3D / UpBlock3D: motion modules stored, never run
                    dead.append(f"denoising_unet.{kind}.{i}.motion_modules.")
    return dead


def stage_target_modules(net: nn.Module, stage: str) -> list[str]:
    """Full names of the Linear layers a stage adapts, in module order."""
    pattern = re.compile(get_stage(stage).pattern)
    dead = _dead_prefixes(net)
    names = [
        name for name, module in net.named_modules()
        if isinstance(module, nn.Linear) and pattern.fullmatch(name) and not any(name.startswith(d) for d in dead)
    ]
    if not names:
        raise ValueError(f"stage {stage!r} found no target modules: is this an EmoCASTNet?")
    return names
