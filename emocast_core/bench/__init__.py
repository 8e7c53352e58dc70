"""Measure EmoCAST's speed and memory (nothing here is asserted by tests).

    python -m emocast_core.bench --config reduced --device cpu --dtype fp32
    python -m emocast_core.bench --config official --device cuda --dtype fp16 --size 512 --steps 40
    python -m emocast_core.bench --mode pipeline --seconds 10 --config official --device cuda --dtype fp16 --size 512
    python -m emocast_core.bench --mode stream --checkpoint demo_model/emocast/emocast_demo.safetensors \\
        --seconds 30 600 --steps 1 [--paste-back 1920x1080]
    python -m emocast_core.bench --against ../older-checkout --config reduced --steps 4 --repeats 3

`--mode model` (default) times one CFG denoiser step and one whole clip
(ReferenceNet pass + `--steps` DDIM steps); `--mode pipeline` generates a
whole video for `--seconds` of audio into an mp4 and times each clip part by part
(ReferenceNet, median denoising step, VAE decode and encode, writing), the first
(cold) clip apart from the steady ones, per generated and per delivered frame;
`--mode stream` streams whole videos into
mp4 files and compares their peak memory across `--seconds` lengths; `--against`
times a clip in this tree and another checkout side by side.  Random weights
unless `--checkpoint` names a file that bundles its autoencoder.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from ..weights import DTYPES
from .common import peak_rss_gb, synchronize

__all__ = ["main", "peak_rss_gb", "synchronize"]


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT, e.g. 1920x1080") from None
    return width, height


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m emocast_core.bench", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["model", "pipeline", "stream"], default="model")
    p.add_argument("--config", choices=["tiny", "reduced", "official"], default="reduced")
    p.add_argument("--checkpoint", help="pipeline/stream: a checkpoint with a bundled autoencoder (the demo model)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (latent = size / 8)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--steps", type=int, default=4, help="DDIM steps for the clip timing (official: 40)")
    p.add_argument("--repeats", type=int, default=2, help="timed single-step runs")
    p.add_argument("--seconds", type=float, nargs="+", default=[1.0],
                   help="audio length (pipeline); stream: one or more lengths to compare")
    p.add_argument("--paste-back", type=_size, metavar="WxH", help="stream: paste back into a picture this size")
    p.add_argument("--against", metavar="DIR", help="model mode: time a clip here and in this other checkout")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = p.parse_args(argv)
    if args.size % 64:
        p.error("--size must be a multiple of 64 (the UNet downsamples the latent 3 times)")
    if args.mode == "stream":
        from .stream import compare, measure

        if len(args.seconds) > 1:
            i = argv.index("--seconds")
            others = argv[:i] + argv[i + 1 + len(args.seconds):]
            result = compare(args.seconds, [a for a in others if a != "--json"])
        else:
            result = measure(args.config, args.checkpoint, args.device, args.dtype, args.size, args.seconds[0],
                             args.steps, args.paste_back)
    elif args.mode == "pipeline":
        from .pipeline import run_pipeline

        result = run_pipeline(args.config, args.device, args.dtype, args.size, args.seconds[0], args.steps,
                              args.checkpoint)
    elif args.against:
        from .against import against

        result = against(args.against, args.config, args.size, args.frames, args.steps, args.repeats)
    else:
        from .model import run

        result = run(args.config, args.device, args.dtype, args.size, args.frames, args.steps, args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))
    return 0
