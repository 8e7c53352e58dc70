"""The training cache: precomputed tensors per clip, and the window reader.

Layout written by dataset preparation (`write_clip`, `write_uncond_text`):

    <root>/cache.json                  {"format": "emocast-train-cache", "version": 1}
    <root>/uncond_text.safetensors     "text" [77, D]: the text encoder's embedding of ""
    <root>/<clip_id>/tensors.safetensors
        latents         [T, 4, h, w]   VAE posterior mean x 0.18215, one row per 25 fps frame
        audio           [T, L, H]      wav2vec2 hidden states (all layers), interpolated to the frames
        text            [77, D]        CLIP last_hidden_state of the caption
        face_embedding  [E]            raw ArcFace of the clip's face (zeros if none)
        face_region     [3, H, W]      hard face box (FaceLocator input), pixels
        mask_level_<l>  [3, hw_l]      (full, face, lip) soft masks at latent/2**l, l = 0..3
    <root>/<clip_id>/meta.json         {"caption", "emotion" (MEAD name/code or null), "energy", "fps", "frames"}

Preparation from real videos (25 fps face crop, VAE encode, wav2vec2, ArcFace,
MediaPipe masks, motion energy) is `training/prepare.py`: it builds a
`PreparedClip` per clip and calls `write_clip`.  Nothing here decodes video.

`ClipCache[WindowKey(clip, seed)]` draws, from `seed`, a window of F frames
whose 2 preceding frames are the motion frames, and a reference frame at
least `sample_margin` frames away from all of them (the farthest frames when
the clip is too short for the margin).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .sampling import EMOTIONS, WindowKey, emotion_class

CACHE_FORMAT = "emocast-train-cache"
CACHE_VERSION = 1
TENSORS, META, INDEX, UNCOND = "tensors.safetensors", "meta.json", "cache.json", "uncond_text.safetensors"
MASK_LEVELS = 4


@dataclass
class PreparedClip:
    latents: torch.Tensor  # [T, 4, h, w]
    audio: torch.Tensor  # [T, L, H]
    text: torch.Tensor  # [77, D]
    face_embedding: torch.Tensor  # [E]
    face_region: torch.Tensor  # [3, H, W]
    mask_levels: list  # MASK_LEVELS x [3, hw_l]
    caption: str
    emotion: str | None = None
    energy: float = 0.0
    fps: float = 25.0

    def check(self, name: str = "clip") -> None:
        t, _, h, w = self.latents.shape
        if self.audio.dim() != 3 or self.audio.shape[0] != t:
            raise ValueError(f"{name}: audio must be [T={t}, L, H], got {tuple(self.audio.shape)}")
        if len(self.mask_levels) != MASK_LEVELS:
            raise ValueError(f"{name}: need {MASK_LEVELS} mask levels, got {len(self.mask_levels)}")
        for level, m in enumerate(self.mask_levels):
            if tuple(m.shape) != (3, (h >> level) * (w >> level)):
                raise ValueError(f"{name}: mask level {level} must be [3, {(h >> level) * (w >> level)}], "
                                 f"got {tuple(m.shape)}")
        if not (math.isfinite(self.energy) and self.energy >= 0):
            raise ValueError(f"{name}: energy must be finite and >= 0, got {self.energy}")


def _atomic_dir(final: Path, fill) -> None:
    """Fill a temporary sibling folder, then swap it in with os.replace."""
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_index(root: Path) -> None:
    index = root / INDEX
    if not index.exists():
        tmp = root / f".{INDEX}.partial"
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION}))
        os.replace(tmp, index)


def write_uncond_text(root: str | os.PathLike, uncond: torch.Tensor) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_index(root)
    tmp = root / f".{UNCOND}.partial"
    save_file({"text": uncond.reshape(uncond.shape[-2:]).float().contiguous()}, str(tmp))
    os.replace(tmp, root / UNCOND)


def write_clip(root: str | os.PathLike, clip_id: str, clip: PreparedClip, dtype=torch.float16) -> Path:
    """Store one prepared clip (latents, audio and masks in `dtype`; embeddings in fp32)."""
    if not clip_id or "/" in clip_id or clip_id.startswith("."):
        raise ValueError(f"clip id {clip_id!r} must be a plain folder name")
    clip.check(clip_id)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_index(root)
    tensors = {
        "latents": clip.latents.to(dtype), "audio": clip.audio.to(dtype), "text": clip.text.float(),
        "face_embedding": clip.face_embedding.float(), "face_region": clip.face_region.to(dtype),
        **{f"mask_level_{l}": m.to(dtype) for l, m in enumerate(clip.mask_levels)},
    }
    meta = {"caption": clip.caption, "emotion": clip.emotion, "energy": float(clip.energy), "fps": float(clip.fps),
            "frames": int(clip.latents.shape[0])}

    def fill(folder: Path):
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / TENSORS))
        (folder / META).write_text(json.dumps(meta, indent=1))

    final = root / clip_id
    _atomic_dir(final, fill)
    return final


class ClipCache(torch.utils.data.Dataset):
    """Random training windows from a cache folder; index with `WindowKey(clip, seed)`.

    `references` (clip folder name -> latent [C, h, w]) replaces each clip's reference frame by a
    fixed one, e.g. the identity's neutral face (the demo model learns expressions from the text).
    """

    def __init__(self, root: str | os.PathLike, frames: int, motion_frames: int = 2, sample_margin: int = 30,
                 audio_window: int = 5, references: dict[str, torch.Tensor] | None = None):
        self.root = Path(root)
        if not (self.root / INDEX).is_file():
            raise FileNotFoundError(f"no training cache at {self.root} ({INDEX} missing): prepare the dataset first")
        info = json.loads((self.root / INDEX).read_text())
        if info.get("format") != CACHE_FORMAT or info.get("version") != CACHE_VERSION:
            raise ValueError(f"{self.root / INDEX} is not a version-{CACHE_VERSION} {CACHE_FORMAT}: re-prepare it")
        if frames < 1 or motion_frames < 0 or sample_margin < 0:
            raise ValueError(f"frames must be >= 1, motion_frames and sample_margin >= 0 "
                             f"(got {frames}, {motion_frames}, {sample_margin})")
        self.frames, self.motion_frames, self.sample_margin = frames, motion_frames, sample_margin
        self.radius = audio_window // 2
        uncond = self.root / UNCOND
        if not uncond.is_file():
            raise FileNotFoundError(f"{uncond} missing: the cache needs the unconditional text embedding")
        with safe_open(str(uncond), framework="pt") as f:
            self.uncond_text = f.get_tensor("text").float().unsqueeze(0)
        self.clips, self.metas, self.skipped = [], [], []
        for folder in sorted(p for p in self.root.iterdir() if (p / META).is_file() and not p.name.startswith(".")):
            meta = json.loads((folder / META).read_text())
            if meta["frames"] < frames + motion_frames:
                self.skipped.append(folder.name)  # too short for this stage's windows
                continue
            self.clips.append(folder)
            self.metas.append(meta)
        if not self.clips:
            raise ValueError(f"no clip in {self.root} has the {frames + motion_frames} frames a window needs "
                             f"({len(self.skipped)} too short): use fewer frames or longer clips")
        self.references = None
        if references is not None:
            missing = [c.name for c in self.clips if c.name not in references]
            if missing:
                raise ValueError(f"references: no reference latent for clip {missing[0]} of {self.root}")
            self.references = [references[c.name] for c in self.clips]
        self.classes = [emotion_class(m.get("emotion"), m.get("caption", "")) for m in self.metas]
        self.energies = [float(m.get("energy", 0.0)) for m in self.metas]

    def __len__(self) -> int:
        return len(self.clips)

    def check_model(self, config) -> None:
        """Refuse, before any step, a model this cache was not prepared for (an EmoCASTConfig)."""
        with safe_open(str(self.clips[0] / TENSORS), framework="pt") as st:
            shapes = {k: tuple(st.get_slice(k).get_shape()) for k in ("latents", "text", "audio", "face_embedding")}
        found = {
            "latent channels (the VAE)": (shapes["latents"][1], config.in_channels),
            "text width (the text encoder)": (shapes["text"][-1], config.cross_attention_dim),
            "audio layers x channels (the wav2vec2)": (shapes["audio"][1:], (config.audio_layers,
                                                                             config.audio_channels)),
            "face embedding size (the face models)": (shapes["face_embedding"][-1], config.face_embed_dim),
        }
        wrong = [f"{what}: {ours} in the dataset, {theirs} in the model"
                 for what, (ours, theirs) in found.items() if ours != theirs]
        if wrong:
            raise ValueError(f"the dataset at {self.root} was prepared for another model ({'; '.join(wrong)}). "
                             "Prepare it again with the models that go with this checkpoint, under a new "
                             "cache name")

    def choose(self, length: int, seed: int) -> tuple[int, int]:
        """(window start, reference frame) for a clip of `length` frames, from `seed`."""
        g = torch.Generator().manual_seed(seed)
        f, m = self.frames, self.motion_frames
        start = int(torch.randint(m, length - f + 1, (1,), generator=g))
        idx = torch.arange(length)
        lo, hi = start - m, start + f - 1  # span of motion + window frames
        dist = torch.clamp(lo - idx, min=0) + torch.clamp(idx - hi, min=0)
        ok = dist >= self.sample_margin if self.sample_margin > 0 else torch.ones_like(dist, dtype=torch.bool)
        if not ok.any():
            ok = dist == dist.max()
        candidates = idx[ok]
        ref = int(candidates[torch.randint(len(candidates), (1,), generator=g)])
        return start, ref

    def __getitem__(self, key) -> dict:
        key = key if isinstance(key, WindowKey) else WindowKey(int(key), int(key))
        folder, meta = self.clips[key.clip], self.metas[key.clip]
        length = meta["frames"]
        start, ref = self.choose(length, key.seed)
        f, m, r = self.frames, self.motion_frames, self.radius
        with safe_open(str(folder / TENSORS), framework="pt") as st:
            latents = st.get_slice("latents")
            window = latents[start - m : start + f].float()
            a_lo, a_hi = max(0, start - r), min(length, start + f + r)
            audio = st.get_slice("audio")[a_lo:a_hi].float()
            sample = {
                "ref_latent": latents[ref : ref + 1].float()[0],
                "motion_latents": window[:m],
                "latents": window[m:].transpose(0, 1),  # [4, F, h, w]
                "text": st.get_tensor("text").float(),
                "face_embedding": st.get_tensor("face_embedding").float(),
                "face_region": st.get_tensor("face_region").float(),
                "mask_levels": [st.get_tensor(f"mask_level_{l}").float() for l in range(MASK_LEVELS)],
            }
        centres = torch.arange(start, start + f)
        rows = (centres[:, None] + torch.arange(-r, r + 1)[None]).clamp(0, length - 1) - a_lo
        sample["audio"] = audio[rows]  # [F, 2r+1, L, H], neighbours clamped to the clip as at inference
        if self.references is not None:
            sample["ref_latent"] = self.references[key.clip]
        cls = self.classes[key.clip]
        sample.update(clip=key.clip, start=start, ref_index=ref, label=EMOTIONS.index(cls) if cls in EMOTIONS else -1)
        return sample

    def collate(self, samples: list[dict]) -> dict:
        """Stack samples into the batch the objective takes (masks as per-level (full, face, lip) [B, hw])."""
        batch = {k: torch.stack([s[k] for s in samples]) for k in
                 ("ref_latent", "motion_latents", "latents", "audio", "text", "face_embedding", "face_region")}
        batch["mask_levels"] = [
            tuple(torch.stack([s["mask_levels"][l][i] for s in samples]) for i in range(3)) for l in range(MASK_LEVELS)
        ]
        batch["uncond_text"] = self.uncond_text
        for k in ("clip", "start", "ref_index", "label"):
            batch[k] = torch.tensor([s[k] for s in samples])
        return batch


def batch_to(batch: dict, device) -> dict:
    """A `ClipCache.collate` batch on `device`.  Inference tensors (ComfyUI runs nodes in inference mode)
    become normal ones, which autograd may save for backward."""
    def move(t: torch.Tensor) -> torch.Tensor:
        t = t.to(device, non_blocking=True)
        return t.clone() if t.is_inference() else t

    out = {k: move(v) for k, v in batch.items() if k != "mask_levels"}
    out["mask_levels"] = [tuple(move(m) for m in level) for level in batch["mask_levels"]]
    return out
