"""MediaPipe face mesh, optional: the FaceLandmarker task (official) or the legacy solution.

- FaceLandmarker with `face_landmarker_v2_with_blendshapes.task` when the file is given:
  the official landmarker;
- otherwise, or when the task cannot run (a wrong file; mediapipe 0.10.x's C++ side
  rejects task graphs built with protobuf ≥ 5), `mp.solutions.face_mesh`, whose small weights ship inside the mediapipe
  wheel (works offline; the same 468-point topology, so the same indices);
- no meshes when mediapipe cannot be imported or finds no face: the caller falls back.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

log = logging.getLogger(__name__)

MAX_FACES = 4  # several candidates, so the caller can pick the one that matches SCRFD's face


def _import():
    try:
        import mediapipe as mp
        return mp, None
    except Exception as e:  # noqa: BLE001 - a broken install (protobuf, numpy ABI) must not stop the node
        return None, f"{type(e).__name__}: {e}"


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray((rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def _task_meshes(mp, image: np.ndarray, task_path: str) -> list:
    vision = mp.tasks.vision
    options = vision.FaceLandmarkerOptions(base_options=mp.tasks.BaseOptions(model_asset_path=task_path),
                                           running_mode=vision.RunningMode.IMAGE, num_faces=MAX_FACES)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    return [[(p.x, p.y) for p in face] for face in result.face_landmarks]


def _legacy_meshes(face_mesh, image: np.ndarray) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # protobuf's `label` deprecation inside mediapipe
        with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=MAX_FACES, refine_landmarks=False,
                                min_detection_confidence=0.5) as mesh:
            result = mesh.process(image)
    return [[(p.x, p.y) for p in face.landmark] for face in (result.multi_face_landmarks or [])]


def face_meshes(rgb: torch.Tensor, task_path: str | None = None) -> tuple[list[np.ndarray], str]:
    """RGB [H, W, 3] in 0..1 -> (list of [N, 2] point arrays in pixels, source name).

    The source is "mediapipe-task", "mediapipe-face-mesh", or "unavailable: <why>".
    """
    mp, err = _import()
    if mp is None:
        return [], f"unavailable: mediapipe cannot be imported ({err})"
    image = _to_uint8(rgb)
    h, w = image.shape[:2]
    if task_path:
        try:
            meshes = _task_meshes(mp, image, task_path)
            return [np.asarray(m, dtype=np.float64) * [w, h] for m in meshes], "mediapipe-task"
        except Exception as e:  # noqa: BLE001 - wrong file, or mediapipe's C++ side refusing this protobuf
            why = ("mediapipe 0.10.x runs landmarker tasks only with protobuf<5" if isinstance(e, TypeError) else
                   "expected MediaPipe's face_landmarker_v2_with_blendshapes.task")
            log.warning("EmoCAST: MediaPipe could not run %s (%s: %s; %s); using the legacy face mesh instead",
                        task_path, type(e).__name__, str(e).splitlines()[0][:120], why)
    try:
        solution = mp.solutions.face_mesh
    except AttributeError:  # newer mediapipe releases dropped the legacy solutions
        return [], "unavailable: this mediapipe has no legacy face_mesh; add the landmarker .task file"
    meshes = _legacy_meshes(solution, image)
    return [np.asarray(m, dtype=np.float64) * [w, h] for m in meshes], "mediapipe-face-mesh"
