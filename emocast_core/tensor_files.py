"""Reading tensors from a file a user gave: the one path every weights file takes.

Only `safetensors` and `torch.load(weights_only=True)` read files, so no file can
run code. Whatever goes wrong is said in words that name the file and what was
found: missing, empty, truncated, not a weights file, or holding pickled
objects other than tensors (refused; nothing in it ran).
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class WeightsFileError(ValueError):
    """The file exists but cannot be read as weights; the message says why."""


def read_tensors(path: str | os.PathLike, what: str = "weights file",
                 error: type[WeightsFileError] = WeightsFileError) -> tuple[dict, dict[str, str]]:
    """(tensors or nested dict from a torch file, metadata) of `path`, a .safetensors or a torch file.

    `what` names the file's role in messages, e.g. "LoRA file" or "wav2vec2 weights"; a file
    that exists but cannot be read raises `error` (a WeightsFileError).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path.name}")
    size = _nonempty_size(path, what, error)
    if path.suffix == ".safetensors":
        return _read_safetensors(path, what, size, error)
    return _read_torch(path, what, size, error), {}


def check_safetensors(path: str | os.PathLike, what: str = "weights file") -> None:
    """Read only the header of a .safetensors file, for files another library loads (transformers),
    so an empty or truncated one gets the same words as everywhere else."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    size = _nonempty_size(path, what, WeightsFileError)
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except SafetensorError as err:
        raise _safetensors_error(path, what, size, err, WeightsFileError) from None


def onnx_session(ort, path: str | os.PathLike, what: str, options, providers: list[str]):
    """An onnxruntime InferenceSession of `path`; a broken file gets the same words as a weights file."""
    path = Path(path)
    size = _nonempty_size(path, what, WeightsFileError)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own pybind exception types
        raise WeightsFileError(f"{what} {path.name} ({size:,} bytes) is truncated (an interrupted download) or "
                               f"not a valid ONNX model: {_clean(str(err))}") from None


def _read_safetensors(path: Path, what: str, size: int, error: type[WeightsFileError]) -> tuple[dict, dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except SafetensorError as err:
        raise _safetensors_error(path, what, size, err, error) from None


def _nonempty_size(path: Path, what: str, error: type[WeightsFileError]) -> int:
    size = path.stat().st_size
    if size == 0:
        raise error(f"{what} {path.name} is empty (0 bytes): download or save it again")
    return size


def _safetensors_error(path: Path, what: str, size: int, err: Exception,
                       error: type[WeightsFileError]) -> WeightsFileError:
    """What safetensors' header complaint means, in words."""
    text = str(err)
    if "too small" in text or "incomplete" in text.lower() or "EOF" in text:
        found = "truncated (an interrupted download or save)"
    else:
        found = "not a valid safetensors file"
    return error(f"{what} {path.name} ({size:,} bytes) is {found}: {_clean(text)}")


def _read_torch(path: Path, what: str, size: int, error: type[WeightsFileError]):
    try:
        # Only the zip format (torch >= 1.6) can be memory-mapped; the legacy one is read whole.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Weights only" in str(err):
            raise error(
                f"{what} {path.name} holds pickled objects other than tensors; it was refused and nothing in it "
                "ran. Use a .safetensors copy, or a .pth that holds only tensors, from a source you trust"
            ) from None
        raise error(f"{what} {path.name} ({size:,} bytes) is truncated (an interrupted download) or not a "
                    f"torch weights file: {_clean(str(err))}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise error(
            f"{what} {path.name} ({size:,} bytes) could not be read as a torch file; it may be truncated (an "
            f"interrupted download) or not a weights file: {_clean(str(err))}"
        ) from None


def _clean(text: str, limit: int = 300) -> str:
    text = " ".join(_ANSI.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
