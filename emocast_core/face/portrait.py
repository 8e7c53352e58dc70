"""Reference-portrait preparation: any IMAGE -> everything the sampler needs about the portrait.

Order (official where it matters):
1. normalise the image (image.py);
2. SCRFD on the ORIGINAL image; the largest face wins;
3. ArcFace of that face on the original image (raw 512-d), zeros without a face;
4. square crop around the face (crop.py), cut at native resolution;
5. landmarks on the crop: MediaPipe (task file, else the legacy mesh), else SCRFD's box and
   mouth corners; boxes × face_expand_ratio / × 2.0 (`expand_region`);
6. user MASK inputs replace the face / lip box;
7. the mask recipe (masks.py) on the crop, shown at size²; the crop resized to size².
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from .arcface import ArcFaceEmbedder, no_face_embedding
from .crop import CropGeometry, crop_pixels, square_crop, whole_image
from .image import as_rgb
from .landmarks import extent_iou, keypoint_extents, mesh_extents
from .masks import FACE_EXPAND_RATIO, LIP_EXPAND_RATIO, Box, expand_region, hard_box, portrait_masks
from .mediapipe_mesh import face_meshes
from .model_files import LANDMARKER_FILE, antelope_paths
from .paste import paste_back
from .resample import resize_hwc
from .scrfd import Face, ScrfdDetector
from .user_masks import mask_box

log = logging.getLogger(__name__)

DEFAULT_CROP_SCALE = 2.5  # head ≈ half the frame plus some shoulders; room for head motion
MODEL_SIZE = 512
MIN_MESH_IOU = 0.3  # a mesh overlapping SCRFD's face less than this belongs to another face


@dataclass
class FaceModels:
    detector: ScrfdDetector
    embedder: ArcFaceEmbedder
    landmarker_task: str | None = None  # face_landmarker_v2_with_blendshapes.task, else the legacy mesh
    use_mediapipe: bool = True


class NoFaceDetector:
    """Finds no face.  For pictures no detector reads (drawn faces): the portrait is the whole image,
    or a crop around a user face mask, with a zero identity and the user's masks as regions."""

    def detect(self, image) -> list:
        return []


# How graphs (the Portrait Prep node's insightface_dir choice, saved workflows) name masks_only_models.
MASKS_ONLY_CHOICE = "none: whole image + masks (drawn faces)"


def masks_only_models() -> FaceModels:
    """FaceModels that detect nothing and skip MediaPipe: the regions come from the user's masks."""
    return FaceModels(detector=NoFaceDetector(), embedder=None, use_mediapipe=False)


def load_face_models(insightface_dir: str, landmarker_task: str | None = None, prefer_cuda: bool = False,
                     use_mediapipe: bool = True) -> FaceModels:
    """SCRFD + ArcFace from an antelopev2-style folder (sessions are cached), plus an optional landmarker."""
    detector_path, recogniser_path = antelope_paths(insightface_dir)
    if landmarker_task is not None and not os.path.isfile(landmarker_task):
        raise FileNotFoundError(f"MediaPipe landmarker not found: {landmarker_task}. Put {LANDMARKER_FILE} in "
                                f"ComfyUI/models/mediapipe/, or pass none to use mediapipe's built-in face mesh.")
    return FaceModels(ScrfdDetector(detector_path, prefer_cuda), ArcFaceEmbedder(recogniser_path, prefer_cuda),
                      landmarker_task, use_mediapipe)


@dataclass
class Portrait:
    """The prepared reference portrait (CPU, float32). Consumed by the sampler.

    image            [1, 3, S, S] in [-1, 1]: what the VAE encodes (S = 512 officially)
    image_01         [S, S, 3] in 0..1: the same crop, for previews
    face_embedding   [1, 512] raw ArcFace (zeros without a face) -> ImageProj
    face_region      [1, 3, S, S] hard face box, 3 identical channels -> FaceLocator
    mask_levels      4 × (full, face, lip), each [1, h·w], h = w = S/8, S/16, S/32, S/64
                     (64², 32², 16², 8² for 512²) -> the audio modules of each level;
                     `mask_levels_for` gives them for a model on another latent grid
    crop             CropGeometry: where the S² frame lies in source_image (paste_back)
    source_image     [H, W, 3] in 0..1, the normalised input
    landmark_source  how the boxes were found: "mediapipe-task", "mediapipe-face-mesh",
                     "scrfd-keypoints" or "whole-image", plus "+user-face"/"+user-lip"
    face_box, lip_box  the hard boxes (x0, y0, x1, y1) in native crop pixels
                     (crop.width × crop.height); lip_box None = no lip region
    face             the SCRFD detection in source pixels, or None
    face_blur, lip_blur  [S/8, S/8] blurred, normalised face_b and lip_b
    """
    image: torch.Tensor
    image_01: torch.Tensor
    face_embedding: torch.Tensor
    face_region: torch.Tensor
    mask_levels: list
    crop: CropGeometry
    source_image: torch.Tensor
    landmark_source: str
    face_box: Box
    lip_box: Box | None
    face: Face | None
    face_blur: torch.Tensor
    lip_blur: torch.Tensor

    @property
    def size(self) -> int:
        return self.crop.size

    @property
    def face_detected(self) -> bool:
        return self.face is not None

    def frame_box(self, box: Box | None):
        """A native-crop box in the S² model frame's pixels (floats), e.g. for drawing."""
        if box is None:
            return None
        sx, sy = self.size / self.crop.width, self.size / self.crop.height
        return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy

    def mask_levels_for(self, latent_factor: int) -> list:
        """mask_levels on the latent grid of a VAE that downsamples by `latent_factor` (the stored ones: SD's 8)."""
        if self.mask_levels[0][0].shape[-1] == (self.size // latent_factor) ** 2:
            return self.mask_levels
        return portrait_masks(self.face_box, self.lip_box, self.crop.height, self.crop.width, self.size,
                              latent_factor).levels

    def face_mask_in_source(self) -> torch.Tensor:
        """[H, W] hard face box in source-image pixels (the part of it inside the image)."""
        h, w = self.source_image.shape[:2]
        x0, y0, x1, y1 = self.face_box
        return hard_box((x0 + self.crop.x0, y0 + self.crop.y0, x1 + self.crop.x0, y1 + self.crop.y0), h, w)

    def paste_back(self, frames: torch.Tensor, feather_px: float = 16.0) -> torch.Tensor:
        return paste_back(self.source_image, frames, self.crop, feather_px)


def _check_options(face_expand_ratio: float, crop_scale: float, size: int) -> None:
    if not 0 < face_expand_ratio <= 10:
        raise ValueError(f"face_expand_ratio must be in (0, 10] (official default {FACE_EXPAND_RATIO}), "
                         f"got {face_expand_ratio}.")
    if crop_scale != 0 and not 1.0 <= crop_scale <= 10:
        raise ValueError(f"crop_scale must be 0 (whole image, as the official code) or between 1 and 10 "
                         f"(crop side / face size), got {crop_scale}.")
    if size < 64 or size % 64:
        raise ValueError(f"size must be a positive multiple of 64, got {size}.")


def _user_box(box, crop: CropGeometry, name: str) -> Box:
    """A user box in source pixels -> native crop pixels, clipped; an error if it misses the crop."""
    x0, y0 = max(box[0] - crop.x0, 0), max(box[1] - crop.y0, 0)
    x1, y1 = min(box[2] - crop.x0, crop.width), min(box[3] - crop.y0, crop.height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"{name} lies outside the portrait crop {crop.box} around the detected face; paint it on "
                         f"that face, or raise crop_scale (0 uses the whole image).")
    return x0, y0, x1, y1


def _landmark_extents(crop_rgb: torch.Tensor, face_in_crop: Face | None, models: FaceModels):
    """(face extent, lip extent, source) from MediaPipe on the crop, else SCRFD keypoints, else None."""
    if models.use_mediapipe:
        meshes, source = face_meshes(crop_rgb, models.landmarker_task)
        if source.startswith("unavailable"):
            log.warning("EmoCAST: MediaPipe %s; face/lip boxes come from SCRFD's box and mouth corners", source[13:])
        elif not meshes:
            log.warning("EmoCAST: MediaPipe found no face in the crop; face/lip boxes come from SCRFD's keypoints")
        else:
            extents = [mesh_extents(m) for m in meshes]
            if face_in_crop is None:
                area = [(f[1] - f[0]) * (f[3] - f[2]) for f, _ in extents]
                return (*extents[int(np.argmax(area))], source)
            target = (face_in_crop.box[0], face_in_crop.box[2], face_in_crop.box[1], face_in_crop.box[3])
            ious = [extent_iou(f, target) for f, _ in extents]
            if max(ious) >= MIN_MESH_IOU:
                return (*extents[int(np.argmax(ious))], source)
            log.warning("EmoCAST: MediaPipe's face does not match SCRFD's (IoU %.2f); using SCRFD's keypoints",
                        max(ious))
    else:
        log.info("EmoCAST: MediaPipe disabled; face/lip boxes come from SCRFD's keypoints")
    if face_in_crop is not None:
        return (*keypoint_extents(face_in_crop.box, face_in_crop.keypoints), "scrfd-keypoints")
    return None, None, "whole-image"


def _crop_geometry(face: Face | None, user_face, width: int, height: int, crop_scale: float,
                   size: int) -> CropGeometry:
    anchor = face.box if face is not None else user_face
    if crop_scale == 0 or anchor is None:
        return whole_image(width, height, size)
    return square_crop(anchor, width, height, crop_scale, size)


def prepare_portrait(image, models: FaceModels, *, face_expand_ratio: float = FACE_EXPAND_RATIO,
                     crop_scale: float = DEFAULT_CROP_SCALE, allow_no_face: bool = False, face_mask=None,
                     lip_mask=None, size: int = MODEL_SIZE, name: str = "image") -> Portrait:
    """IMAGE-like tensor -> Portrait. See the module docstring for the order of steps."""
    _check_options(face_expand_ratio, crop_scale, size)
    rgb = as_rgb(image, name)
    height, width = rgb.shape[:2]
    user_face = mask_box(face_mask, height, width, "face_mask")
    user_lip = mask_box(lip_mask, height, width, "lip_mask")

    faces = models.detector.detect(rgb)
    face = faces[0] if faces else None
    if len(faces) > 1:
        log.info("EmoCAST: %d faces in %s; using the largest (%.0fx%.0f px)", len(faces), name,
                 face.box[2] - face.box[0], face.box[3] - face.box[1])
    if face is None:
        if not allow_no_face:
            raise ValueError(f"No face found in {name} ({width}x{height}). Use a frontal portrait with a clearly "
                             f"visible face, or enable allow_no_face to animate the whole image without identity "
                             f"(zero face embedding), as the official code does.")
        if not isinstance(models.detector, NoFaceDetector):  # masks-only: no face is what was asked for
            log.warning("EmoCAST: no face in %s; using the whole image and a zero face embedding", name)
    embedding = models.embedder.embed(rgb, face.keypoints) if face is not None else no_face_embedding()

    crop = _crop_geometry(face, user_face, width, height, crop_scale, size)
    crop_rgb = crop_pixels(rgb, crop)
    if min(crop.width, crop.height) < size / 2:
        log.warning("EmoCAST: the face crop is only %dx%d px and is upscaled to %d²; a larger portrait looks sharper",
                    crop.width, crop.height, size)
    face_in_crop = None
    if face is not None:
        face_in_crop = Face(face.box - [crop.x0, crop.y0, crop.x0, crop.y0], face.score,
                            face.keypoints - [crop.x0, crop.y0])
    face_ext, lip_ext, source = _landmark_extents(crop_rgb, face_in_crop, models)

    if face_ext is None:
        face_box, lip_box = (0, 0, crop.width, crop.height), None
    else:
        face_box = expand_region(face_ext, crop.width, crop.height, face_expand_ratio)
        lip_box = expand_region(lip_ext, crop.width, crop.height, LIP_EXPAND_RATIO)
    if user_face is not None:
        face_box, source = _user_box(user_face, crop, "face_mask"), source + "+user-face"
    if user_lip is not None:
        lip_box, source = _user_box(user_lip, crop, "lip_mask"), source + "+user-lip"
    log.info("EmoCAST: portrait crop %s of %dx%d, boxes from %s", crop.box, width, height, source)

    masks = portrait_masks(face_box, lip_box, crop.height, crop.width, size)
    image_01 = resize_hwc(crop_rgb, (size, size)).clamp(0, 1)
    return Portrait(
        image=(image_01 * 2 - 1).permute(2, 0, 1)[None].contiguous(),
        image_01=image_01,
        face_embedding=embedding,
        face_region=masks.face_region,
        mask_levels=masks.levels,
        crop=crop,
        source_image=rgb,
        landmark_source=source,
        face_box=face_box,
        lip_box=lip_box,
        face=face,
        face_blur=masks.face_blur,
        lip_blur=masks.lip_blur,
    )
