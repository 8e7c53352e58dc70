"""Time the demo build's EmoCAST stages: seconds per optimizer step, per stage (nothing is asserted).

    python -m training.demo.bench --device cuda --latent-factor 4 --steps 30 [--block-out-channels 32 64 64 64]

Each stage trains the demo config with the build's batch size and objective on
a small synthetic cache (random weights, so only the timing means anything),
after a few warm-up steps.  Prints one JSON line per stage; on CUDA with peak VRAM.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from ..stages import STAGE_ORDER
from .synthetic import make_synthetic_cache
from .build import DEMO_WIDTHS, OBJECTIVE, STAGE_PLAN, check_device, check_widths, demo_config
from .pretrain import init_from_scratch, open_full_stage

if __package__ and __package__.count(".") >= 2:  # inside the pack (see training/_core.py)
    from ...emocast_core.bench import synchronize
    from ...emocast_core.models import EmoCASTNet
else:
    from emocast_core.bench import synchronize
    from emocast_core.models import EmoCASTNet

WARMUP_STEPS = 3


def time_stages(device: str, latent_factor: int, steps: int, stages=STAGE_ORDER,
                block_out_channels=DEMO_WIDTHS) -> list[dict]:
    device = torch.device(device)
    cfg = demo_config(latent_factor, block_out_channels)
    results = []
    with tempfile.TemporaryDirectory() as root:
        # Frames enough for a 14+2 window inside the cache's 30-frame reference margins; 64 px portraits.
        cache = make_synthetic_cache(f"{root}/cache", cfg, clips=8, frames=80, latent_size=64 // latent_factor)
        torch.manual_seed(0)
        net = EmoCASTNet(cfg)
        init_from_scratch(net)
        for stage in stages:
            _, batch, lr = STAGE_PLAN[stage]
            trainer = open_full_stage(net, cache, stage, f"{root}/{stage}", batch, lr, total_steps=1000, warmup=10,
                                      objective=OBJECTIVE, device=device)
            trainer.run(WARMUP_STEPS)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            start = time.perf_counter()
            trainer.run(steps)
            synchronize(device)
            elapsed = time.perf_counter() - start
            trainer.close()
            result = {"stage": stage, "device": str(device) if device.type != "cuda" else
                      torch.cuda.get_device_name(device), "latent_factor": latent_factor,
                      "block_out_channels": list(cfg.block_out_channels), "batch": batch,
                      "s_per_step": round(elapsed / steps, 4)}
            if device.type == "cuda":
                result["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            results.append(result)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.demo.bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--latent-factor", type=int, choices=[8, 4], default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps per stage")
    p.add_argument("--stage", choices=STAGE_ORDER, action="append", help="time only this stage (repeatable)")
    p.add_argument("--block-out-channels", type=int, nargs=4, default=DEMO_WIDTHS, metavar="WIDTH",
                   help="the UNets' block widths (a wider build's, see training.demo.build)")
    args = p.parse_args(argv)
    check_device(args.device)
    widths = check_widths(args.block_out_channels)
    for result in time_stages(args.device, args.latent_factor, args.steps, args.stage or STAGE_ORDER, widths):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
