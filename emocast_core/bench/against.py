"""`--against DIR`: this tree and another checkout of the pack (e.g. an older commit), side by side.

Each repeat times one clip (`--steps` DDIM steps, random weights of `--config`, the same
seed) in a fresh process per tree, alternating, so both meet the same machine load;
reported: the median clip time of each, their ratio, and whether the two clips'
latents are identical.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

_CLIP = r"""
import hashlib, json, sys, time, torch
sys.path.insert(0, sys.argv[1])
from emocast_core.config import EmoCASTConfig
from emocast_core.models import EmoCASTNet
from emocast_core.pipeline import ClipConditioning, denoise_clip, make_scheduler
config, size, frames, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)
cfg = getattr(EmoCASTConfig, config)()
net = EmoCASTNet(cfg).eval().requires_grad_(False)
latent = size // cfg.latent_factor
g = torch.Generator().manual_seed(0)
rand = lambda *shape: torch.randn(*shape, generator=g)
masks = [tuple(torch.rand(2 * frames, (latent >> i) ** 2, generator=g) for _ in range(3)) for i in range(4)]
cond = ClipConditioning(text_face=rand(2, cfg.text_tokens + cfg.face_tokens, cfg.cross_attention_dim),
                        audio=rand(2, frames, cfg.audio_tokens, cfg.audio_token_dim),
                        emotion=rand(2, cfg.text_tokens, cfg.audio_token_dim), masks=masks,
                        face_features=rand(2, cfg.block_out_channels[0], frames, latent, latent))
noise, motion = rand(1, cfg.in_channels, frames, latent, latent), rand(3, cfg.in_channels, latent, latent)
denoise_clip(net, make_scheduler(), noise, motion, cond, steps=1)  # warm-up
t0 = time.perf_counter()
out = denoise_clip(net, make_scheduler(), noise, motion, cond, steps=steps)
seconds = time.perf_counter() - t0
print(json.dumps({"clip_s": seconds, "sha256": hashlib.sha256(out.numpy().tobytes()).hexdigest()}))
"""


def against(other: str, config: str, size: int, frames: int, steps: int, repeats: int) -> dict:
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    trees = {"this": here, "other": os.path.abspath(other)}
    if not os.path.isdir(os.path.join(trees["other"], "emocast_core")):
        raise SystemExit(f"--against {other}: not a checkout of the pack (no emocast_core/)")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    runs = {name: [] for name in trees}
    for _ in range(repeats):
        for name, tree in trees.items():
            cmd = [sys.executable, "-c", _CLIP, tree, config, str(size), str(frames), str(steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=tree).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    median = {name: statistics.median(r["clip_s"] for r in rs) for name, rs in runs.items()}
    return {"mode": "against", "config": config, "size": size, "frames": frames, "steps": steps,
            "repeats": repeats, "threads": int(env["OMP_NUM_THREADS"]), "other": trees["other"],
            "clip_s": {k: round(v, 3) for k, v in median.items()},
            "speedup": round(median["other"] / median["this"], 2),
            "same_latents": len({r["sha256"] for rs in runs.values() for r in rs}) == 1}
