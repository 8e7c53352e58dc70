"""onnxruntime as an optional dependency: imported on first use, sessions cached per file.

The ONNX files are only run (never unpickled or converted).
"""
from __future__ import annotations

import logging
import os

import torch

from ..tensor_files import onnx_session

log = logging.getLogger(__name__)

_SESSIONS: dict = {}


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise ModuleNotFoundError(
            "EmoCAST face ID (SCRFD + ArcFace) needs onnxruntime, which is not installed in ComfyUI's Python: "
            "run `pip install onnxruntime` (CPU) or `pip install onnxruntime-gpu` (NVIDIA CUDA) there and restart "
            "ComfyUI.", name="onnxruntime") from e
    return onnxruntime


def providers(prefer_cuda: bool) -> list[str]:
    """CUDA first when asked for and offered by this onnxruntime build; always CPU as the fallback."""
    ort = require_onnxruntime()
    available = ort.get_available_providers()
    chosen = ["CUDAExecutionProvider"] if prefer_cuda and "CUDAExecutionProvider" in available else []
    return chosen + ["CPUExecutionProvider"]


def session(path: str, prefer_cuda: bool = False):
    """An InferenceSession for `path`, reused while the file is unchanged."""
    ort = require_onnxruntime()
    stat = os.stat(path)
    wanted = tuple(providers(prefer_cuda))
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size, wanted)
    if key not in _SESSIONS:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise to users
        options.intra_op_num_threads = torch.get_num_threads()  # share torch's budget instead of adding a pool
        _SESSIONS[key] = onnx_session(ort, path, "face model", options, list(wanted))
        log.info("EmoCAST: loaded %s with %s", os.path.basename(path), _SESSIONS[key].get_providers()[0])
    return _SESSIONS[key]


def clear_cache() -> None:
    _SESSIONS.clear()
