"""Reference-portrait preparation (face identity, face and lip masks): IMAGE -> `Portrait`.

Nothing here imports ComfyUI; onnxruntime and mediapipe are optional and imported lazily.
"""
from .align import ARCFACE_TEMPLATE, norm_crop, umeyama, warp_affine
from .arcface import EMBEDDING_DIM, ArcFaceEmbedder, no_face_embedding
from .crop import CropGeometry, crop_pixels, square_crop, whole_image
from .image import MIN_SIDE, as_rgb
from .masks import (FACE_EXPAND_RATIO, LIP_EXPAND_RATIO, PortraitMasks, expand_region, hard_box, point_extent,
                    portrait_masks)
from .model_files import ANTELOPE_FILES, DETECTOR_FILE, LANDMARKER_FILE, RECOGNISER_FILE, antelope_paths
from .onnx_runtime import clear_cache
from .paste import feather_mask, paste_back
from .portrait import (DEFAULT_CROP_SCALE, MASKS_ONLY_CHOICE, MODEL_SIZE, FaceModels, NoFaceDetector, Portrait,
                       load_face_models, masks_only_models, prepare_portrait)
from .preview import render_preview
from .scrfd import Face, ScrfdDetector
from .user_masks import mask_box

__all__ = [
    "ANTELOPE_FILES", "ARCFACE_TEMPLATE", "ArcFaceEmbedder", "CropGeometry", "DEFAULT_CROP_SCALE", "DETECTOR_FILE",
    "EMBEDDING_DIM", "FACE_EXPAND_RATIO", "Face", "FaceModels", "NoFaceDetector", "masks_only_models", "LANDMARKER_FILE",
    "LIP_EXPAND_RATIO", "MASKS_ONLY_CHOICE", "MIN_SIDE",
    "MODEL_SIZE", "Portrait", "PortraitMasks", "RECOGNISER_FILE", "ScrfdDetector", "antelope_paths", "as_rgb",
    "clear_cache", "crop_pixels", "expand_region", "feather_mask", "hard_box", "load_face_models", "mask_box",
    "no_face_embedding", "norm_crop", "paste_back", "point_extent", "portrait_masks", "prepare_portrait",
    "render_preview", "square_crop", "umeyama", "warp_affine", "whole_image",
]
