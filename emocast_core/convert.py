"""Convert an official `net.pth` into a safetensors file (smaller, safer, faster to load).

    python -m emocast_core.convert net.pth emocast.safetensors --dtype fp16

The file is validated against the EmoCAST architecture first (strict keys and
shapes); the inferred config travels in the safetensors metadata.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .weights import CONFIG_METADATA_KEY, DTYPES, atomic_save, check_keys, infer_config, read_state_dict


def convert(src: str, dst: str, dtype: str = "fp16") -> dict:
    import torch
    from safetensors.torch import save_file

    from .models import EmoCASTNet

    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if Path(src).resolve() == Path(dst).resolve():
        raise ValueError("the output must be a different file from the input")
    state, metadata = read_state_dict(src)
    config = infer_config(state, metadata, Path(src).name)
    with torch.device("meta"):
        check_keys(state, EmoCASTNet(config), Path(src).name)
    target = DTYPES[dtype]
    out = {k: (v.to(target) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    meta = {CONFIG_METADATA_KEY: json.dumps(config.to_dict()), "source": Path(src).name, "dtype": dtype}
    atomic_save(lambda tmp: save_file(out, tmp, metadata=meta), dst)
    return {"keys": len(out), "parameters": sum(v.numel() for v in out.values()), "dtype": dtype, "output": dst}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emocast_core.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="official net.pth (or an EmoCAST .safetensors)")
    parser.add_argument("dst", help="output .safetensors path")
    parser.add_argument("--dtype", default="fp16", choices=sorted(DTYPES), help="stored precision (default fp16)")
    args = parser.parse_args(argv)
    try:
        info = convert(args.src, args.dst, args.dtype)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {info['output']}: {info['keys']} tensors, {info['parameters'] / 1e6:.1f} M values, {info['dtype']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
