"""Which model files the face pipeline needs and where users put them.

The core takes paths; the node layer resolves ComfyUI's model folders.
"""
from __future__ import annotations

import os

DETECTOR_FILE = "scrfd_10g_bnkps.onnx"
RECOGNISER_FILE = "glintr100.onnx"
LANDMARKER_FILE = "face_landmarker_v2_with_blendshapes.task"
ANTELOPE_FILES = (DETECTOR_FILE, RECOGNISER_FILE)
WHERE = ("ComfyUI/models/insightface/models/antelopev2/ (the InsightFace 'antelopev2' pack that other face "
         "nodes use; only scrfd_10g_bnkps.onnx and glintr100.onnx are needed)")


def antelope_paths(folder: str) -> tuple[str, str]:
    """(detector, recogniser) paths inside an antelopev2-style folder, or a FileNotFoundError naming what's missing."""
    if not folder or not os.path.isdir(folder):
        raise FileNotFoundError(f"InsightFace model folder not found: {folder!r}. Put {', '.join(ANTELOPE_FILES)} "
                                f"in {WHERE}.")
    missing = [f for f in ANTELOPE_FILES if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise FileNotFoundError(f"Missing {', '.join(missing)} in {folder}. Put {', '.join(ANTELOPE_FILES)} in "
                                f"{WHERE}.")
    return tuple(os.path.join(folder, f) for f in ANTELOPE_FILES)
