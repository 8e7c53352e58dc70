"""EmoCAST Prepare Training Data: a folder of talking videos -> a training cache (EMOCAST_DATASET).

The cache goes to `output/emocast_datasets/<cache_name>/` (the layout of
training/README.md, plus prepare.json and prepare_report.json).  Running
again adds new videos and skips clips already there; ComfyUI re-runs the node
whenever the videos folder's listing (names, sizes, times) or the cache's
clips change.  Input-folder format: training/prepare_sources.py.
Output EMOCAST_DATASET is a dict: {"path", "clips", "prepared", "existing",
"skipped", **the settings in prepare.json}.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io, ui

from ..emocast_core.audio import load_wav2vec2
from ..emocast_core.face import DEFAULT_CROP_SCALE, MODEL_SIZE, load_face_models
from ..training.prepare import PrepareConfig, PrepareModels, prepare_dataset
from ..training.prepare_sources import METADATA, VIDEO_EXTENSIONS
from . import sockets
from .clip_text_source import USE_CLIP, text_encoder_for
from .memory import load_wav2vec2_for_inference
from .model_folders import (NO_MODEL, find_landmarker, list_insightface_dirs, list_model_dirs,
                            resolve_insightface_dir, wav2vec_folder)
from .safe_paths import check_filename_prefix, inside, shown
from .vae_codec import ComfyVAECodec

NODE_NAME = "EmoCAST Prepare Training Data"
DATASETS_FOLDER = "emocast_datasets"


def videos_folder(videos_dir: str) -> Path:
    """A folder inside ComfyUI's input folder, named relative to it (or by its absolute path)."""
    if not videos_dir.strip():
        raise ValueError("videos_dir is empty: give a folder of talking videos inside ComfyUI/input")
    root = folder_paths.get_input_directory()
    path = os.path.join(root, videos_dir.strip())  # an absolute videos_dir replaces root here
    if not inside(path, [root]):
        raise ValueError(f"videos_dir: {shown(videos_dir)} is not inside ComfyUI's input folder; put the videos "
                         "(or a link to their folder) in ComfyUI/input and give that folder's name")
    return Path(os.path.abspath(path))


def cache_folder(cache_name: str) -> Path:
    name = cache_name.strip()
    if not name or name.startswith(".") or any(c in name for c in "/\\:"):
        raise ValueError(f"cache_name must be a plain folder name such as 'emocast_dataset' (no /, \\ or :, no "
                         f"leading dot), got {shown(cache_name)}")
    check_filename_prefix(name, "cache_name")
    return Path(folder_paths.get_output_directory()) / DATASETS_FOLDER / name


def _listing(folder: Path, files: bool) -> list:
    if not folder.is_dir():
        return []
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    if files:
        return [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()]
    return [e.name for e in entries if e.is_dir()]


class EmoCASTPrepareDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        wav2vec = list_model_dirs("wav2vec2") or [NO_MODEL]
        return io.Schema(
            node_id="EmoCASTPrepareDataset",
            display_name=NODE_NAME,
            category="EmoCAST/training",
            description="Turns a folder of captioned talking videos into EmoCAST's LoRA training cache: 25 fps "
                        "face crops as VAE latents, wav2vec2 features, CLIP text, identity and masks per clip. "
                        "Resumable: clips already prepared are kept; unusable files are listed in the report.",
            inputs=[
                io.String.Input("videos_dir", default="emocast_videos",
                                tooltip=f"Folder of talking videos ({' '.join(VIDEO_EXTENSIONS)}, with sound) "
                                        "inside ComfyUI's input folder. Caption each in <name>.txt or "
                                        f"{METADATA}."),
                io.String.Input("cache_name", default="emocast_dataset",
                                tooltip=f"The cache is written to output/{DATASETS_FOLDER}/<cache_name>/. Reuse "
                                        "the name to add videos; a new name for other settings."),
                io.Vae.Input("vae", tooltip="The SD1.5 VAE EmoCAST uses (sd-vae-ft-mse): frames are stored as "
                                            "its latents."),
                io.Combo.Input("wav2vec_model", options=wav2vec, default=wav2vec[0],
                               tooltip="The wav2vec2 folder in models/wav2vec2/ the sampler will use "
                                       "(facebook/wav2vec2-base-960h)."),
                io.Combo.Input("text_encoder", options=[USE_CLIP, *list_model_dirs("text_encoders")],
                               default=USE_CLIP,
                               tooltip="CLIP-L folder in models/text_encoders/ for the captions, or the clip "
                                       "input; use the one you will prompt with."),
                io.Combo.Input("insightface_dir", options=list_insightface_dirs(),
                               tooltip="Folder in models/insightface/models/ with scrfd_10g_bnkps.onnx and "
                                       "glintr100.onnx (antelopev2): finds the face and its identity."),
                io.Int.Input("resolution", default=MODEL_SIZE, min=64, max=1024, step=64,
                             tooltip="Side of the square face crop. 512 is what EmoCAST was trained at; train "
                                     "at the resolution you will generate."),
                io.Float.Input("crop_scale", default=DEFAULT_CROP_SCALE, min=0.0, max=6.0, step=0.05,
                               tooltip="Crop side / face size, as in Portrait Prep (2.5: head about half the "
                                       "frame; 0: the whole frame). One crop per video, from its first face."),
                io.Float.Input("max_seconds", default=10.0, min=0.0, max=600.0, step=0.5,
                               tooltip="Longer videos are cut into equal clips of at most this many seconds "
                                       "(<name>_000, <name>_001, ...) to bound memory. 0 = never cut."),
                io.Clip.Input("clip", optional=True,
                              tooltip="The CLIP of an SD1.5 checkpoint, used when text_encoder is "
                                      "'(use clip input)'."),
            ],
            outputs=[
                sockets.Dataset.Output(display_name="dataset",
                                               tooltip="The training cache, for EmoCAST Train LoRA."),
                io.String.Output(display_name="report",
                                 tooltip="What was prepared, kept and skipped (with reasons)."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, videos_dir="", cache_name="", **kwargs):
        """Changes when the videos folder's files or the cache's clips change (the graph alone would not)."""
        try:
            listing = (_listing(videos_folder(videos_dir), True), _listing(cache_folder(cache_name), False))
        except ValueError:
            return ""  # execute reports the bad input
        return hashlib.sha256(repr(listing).encode()).hexdigest()

    @classmethod
    def execute(cls, videos_dir, cache_name, vae, wav2vec_model, text_encoder, insightface_dir, resolution,
                crop_scale, max_seconds, clip=None) -> io.NodeOutput:
        source, root = videos_folder(videos_dir), cache_folder(cache_name)
        if not source.is_dir():
            raise FileNotFoundError(f"videos_dir: {shown(videos_dir)} is not a folder; give a folder of talking "
                                    "videos inside ComfyUI's input folder, by its name there")
        face_dir = resolve_insightface_dir(insightface_dir)
        device = mm.get_torch_device()
        models = PrepareModels(
            vae=ComfyVAECodec(vae),
            wav2vec=load_wav2vec2(wav2vec_folder(wav2vec_model), device=mm.unet_offload_device(),
                                  dtype=torch.float32),
            text=text_encoder_for(text_encoder, clip),
            face=load_face_models(face_dir, find_landmarker(face_dir), prefer_cuda=device.type == "cuda"))
        config = PrepareConfig(resolution=resolution, crop_scale=crop_scale, max_seconds=max_seconds)
        bar = comfy.utils.ProgressBar(1)

        def progress(done: int, total: int) -> None:
            mm.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, max(total, 1))

        # Videos are cut to max_seconds, so one pass never exceeds that much audio.
        load_wav2vec2_for_inference(models.wav2vec.model, max_seconds)
        report = prepare_dataset(source, root, models, config, progress=progress)
        clips = report.existing + report.prepared
        if not clips:
            raise ValueError(f"videos_dir: no video became training data:\n{report.summary()}")
        dataset = {"path": str(root), "clips": sorted(clips), "prepared": len(report.prepared),
                   "existing": len(report.existing), "skipped": len(report.skipped), **report.config}
        summary = report.summary()
        return io.NodeOutput(dataset, summary, ui=ui.PreviewText(summary))
