"""EmoCAST Portrait Prep: a portrait IMAGE -> EMOCAST_PORTRAIT (crop, face ID, masks) + preview + face MASK.

Output EMOCAST_PORTRAIT is an `emocast_core.face.Portrait`.
Model files: SCRFD + ArcFace from an InsightFace antelopev2-style folder in
models/insightface/models/; MediaPipe's face_landmarker_v2_with_blendshapes.task from
models/mediapipe/ (or beside the ONNX files, the official layout) when present.
"""
import logging

import comfy.model_management as mm
from comfy_api.latest import io, ui

from ..emocast_core.face import (DEFAULT_CROP_SCALE, FACE_EXPAND_RATIO, MASKS_ONLY_CHOICE, MODEL_SIZE,
                                 load_face_models, masks_only_models, prepare_portrait, render_preview)
from . import sockets
from .model_folders import find_landmarker, list_insightface_dirs, resolve_insightface_dir

log = logging.getLogger(__name__)

NODE_NAME = "EmoCAST Portrait Prep"


class EmoCASTPortraitPrep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EmoCASTPortraitPrep",
            display_name=NODE_NAME,
            category="EmoCAST/conditioning",
            description="Finds the face (SCRFD), computes its identity (ArcFace), crops a square around it and "
                        "builds EmoCAST's face/lip masks (MediaPipe landmarks) exactly as the official code; the "
                        "crop geometry lets the sampler paste the video back into the original picture.",
            inputs=[
                io.Image.Input("image", tooltip="The reference portrait (first image of the batch). Any size from "
                               "64 px; gray is used as RGB and transparency is composited over white."),
                io.Float.Input("face_expand_ratio", default=FACE_EXPAND_RATIO, min=0.5, max=3.0, step=0.05,
                               tooltip="Face box = the landmark face outline's box times this (official 1.2). "
                                       "Larger lets more of the head move with the expression branch."),
                io.Float.Input("crop_scale", default=DEFAULT_CROP_SCALE, min=0.0, max=6.0, step=0.05,
                               tooltip="Side of the square crop / size of the face box: 2.5 makes the head about "
                                       "half the frame, smaller zooms in. 0: no crop, the whole image is resized "
                                       "(pre-crop it square)."),
                io.Boolean.Input("allow_no_face", default=False,
                                 tooltip="If no face is found: on = use the whole image with a zero identity "
                                         "embedding (official fallback); off = stop with an error."),
                io.Combo.Input("insightface_dir", options=[*list_insightface_dirs(), MASKS_ONLY_CHOICE],
                               tooltip="The antelopev2 folder in models/insightface/models/ (needs onnxruntime). "
                                       "'none' detects nothing: zero identity and the masks as regions, for drawn "
                                       "faces."),
                io.Int.Input("resolution", default=MODEL_SIZE, min=64, max=1024, step=64,
                             tooltip="Side of the square frames the model generates. 512 is what EmoCAST was "
                                     "trained at (use it with the official weights); smaller is much faster "
                                     "and only for quick previews or small demo models."),
                io.Mask.Input("face_mask", optional=True,
                              tooltip="Optional: paint the face region on the original image to override the "
                                      "detected face box (its bounding box is used, without face_expand_ratio)."),
                io.Mask.Input("lip_mask", optional=True,
                              tooltip="Optional: paint the mouth region on the original image to override the "
                                      "detected lip box (its bounding box is used as is)."),
            ],
            outputs=[
                sockets.Portrait.Output(display_name="portrait",
                                                tooltip="Crop, identity embedding, FaceLocator box and audio "
                                                        "masks for the EmoCAST sampler."),
                io.Image.Output(display_name="preview",
                                tooltip="The square crop the model sees: face region tinted green, lips red, "
                                        "hard boxes outlined."),
                io.Mask.Output(display_name="face_mask",
                               tooltip="The hard face box at the original image's resolution."),
            ],
        )

    @classmethod
    def execute(cls, image, face_expand_ratio, crop_scale, allow_no_face, insightface_dir, resolution=MODEL_SIZE,
                face_mask=None, lip_mask=None) -> io.NodeOutput:
        if getattr(image, "ndim", 0) == 4 and image.shape[0] > 1:
            log.info("%s: using the first of %d images", NODE_NAME, image.shape[0])
        if resolution < 64 or resolution % 64:
            raise ValueError(f"resolution must be a multiple of 64 from 64 (512 for the official weights), "
                             f"got {resolution}")
        if insightface_dir == MASKS_ONLY_CHOICE:  # no detector: zero identity, regions from the masks
            models, allow_no_face = masks_only_models(), True
        else:
            folder = resolve_insightface_dir(insightface_dir)
            models = load_face_models(folder, find_landmarker(folder),
                                      prefer_cuda=mm.get_torch_device().type == "cuda")
        portrait = prepare_portrait(image, models, face_expand_ratio=face_expand_ratio, crop_scale=crop_scale,
                                    allow_no_face=allow_no_face, face_mask=face_mask, lip_mask=lip_mask,
                                    size=resolution)
        preview = render_preview(portrait.image_01, portrait.face_blur, portrait.lip_blur,
                                 portrait.frame_box(portrait.face_box), portrait.frame_box(portrait.lip_box))[None]
        return io.NodeOutput(portrait, preview, portrait.face_mask_in_source()[None],
                             ui=ui.PreviewImage(preview, cls=cls))
