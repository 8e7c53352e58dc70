"""Put every model file EmoCAST needs where the pack's loaders look, under a ComfyUI folder.

    python -m emocast_core.fetch_models --comfyui /path/to/ComfyUI [--dry-run] [--vocal-separation]

For users with internet access; never run at import time or inside a node.
Idempotent: files already in place (non-empty) are skipped, downloads land in
a temporary name and are renamed when complete.  Licences: each model keeps
its own terms (see README "Licence and credits").
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MEDIAPIPE_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
)


@dataclass(frozen=True)
class Download:
    dest: str  # relative to the ComfyUI folder
    repo: str = ""  # Hugging Face repo id
    filename: str = ""  # file inside the repo
    url: str = ""  # direct URL when not on the Hub
    optional: bool = False
    note: str = ""

    @property
    def source(self) -> str:
        return self.url or f"hf://{self.repo}/{self.filename}"


def _hf_folder(repo: str, folder: str, files: list[str]) -> list[Download]:
    return [Download(f"{folder}/{name}", repo=repo, filename=name) for name in files]


def plan(vocal_separation: bool = False) -> list[Download]:
    """Every file, with its destination relative to the ComfyUI folder."""
    items = [
        Download("models/emocast/net.pth", repo="Jmaomao/EmoCAST", filename="net.pth",
                 note="EmoCAST networks (about 5-10 GB)"),
        Download("models/vae/sd-vae-ft-mse.safetensors", repo="stabilityai/sd-vae-ft-mse",
                 filename="diffusion_pytorch_model.safetensors", note="the VAE, for ComfyUI's Load VAE"),
        *_hf_folder("facebook/wav2vec2-base-960h", "models/wav2vec2/wav2vec2-base-960h",
                    ["config.json", "preprocessor_config.json", "model.safetensors"]),
        *_hf_folder("openai/clip-vit-large-patch14", "models/text_encoders/clip-vit-large-patch14",
                    ["config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                     "model.safetensors"]),
        Download("models/mediapipe/face_landmarker_v2_with_blendshapes.task", url=MEDIAPIPE_URL,
                 note="MediaPipe face landmarks for the face/lip masks"),
    ]
    if vocal_separation:
        items.append(Download("models/audio_separator/Kim_Vocal_2.onnx", repo="huangjackson/Kim_Vocal_2",
                              filename="Kim_Vocal_2.onnx", optional=True, note="vocal separation (optional)"))
    return items


MANUAL_STEPS = (
    "InsightFace antelopev2 (scrfd_10g_bnkps.onnx, glintr100.onnx) has no official Hub repo: download "
    "antelopev2.zip from the InsightFace model zoo (non-commercial licence) and unzip it to "
    "models/insightface/models/antelopev2/. Many face packs already put it there."
)


def pending(items: list[Download], comfyui: Path) -> list[Download]:
    """The items whose destination is missing or empty."""
    out = []
    for item in items:
        path = comfyui / item.dest
        if not (path.is_file() and path.stat().st_size > 0):
            out.append(item)
    return out


def _fetch_one(item: Download, comfyui: Path) -> None:
    dest = comfyui / item.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        if item.url:
            with urllib.request.urlopen(item.url) as response, open(tmp, "wb") as out:  # noqa: S310 (fixed https URL)
                shutil.copyfileobj(response, out)
        else:
            from huggingface_hub import hf_hub_download

            cached = hf_hub_download(item.repo, item.filename)
            shutil.copyfile(cached, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emocast_core.fetch_models", description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", required=True, help="the ComfyUI folder (the one holding models/)")
    p.add_argument("--dry-run", action="store_true", help="only print what would be downloaded")
    p.add_argument("--vocal-separation", action="store_true", help="also fetch Kim_Vocal_2.onnx")
    args = p.parse_args(argv)
    comfyui = Path(args.comfyui).expanduser()
    if not (comfyui / "models").is_dir():
        print(f"error: {comfyui} has no models/ folder; pass the ComfyUI folder", file=sys.stderr)
        return 2
    items = plan(args.vocal_separation)
    todo = pending(items, comfyui)
    for item in items:
        state = "missing" if item in todo else "present"
        print(f"[{state}] {item.dest}  <-  {item.source}")
    print(f"manual: {MANUAL_STEPS}")
    if args.dry_run or not todo:
        return 0
    for item in todo:
        print(f"downloading {item.source} ...", flush=True)
        _fetch_one(item, comfyui)
    return 0


if __name__ == "__main__":
    sys.exit(main())
