"""Where the pack looks for model files inside ComfyUI's `models/` folder.

| folder name   | default location                     | holds                                           |
|---------------|--------------------------------------|-------------------------------------------------|
| emocast       | models/emocast/                      | net.pth or a converted *.safetensors            |
| wav2vec2      | models/wav2vec2/<name>/              | Hugging Face folders (wav2vec2-base-960h)       |
| text_encoders | models/text_encoders/<name>/         | Hugging Face CLIP text folders (clip-vit-large-patch14) |
| insightface   | models/insightface/models/antelopev2/| scrfd_10g_bnkps.onnx, glintr100.onnx            |
| mediapipe     | models/mediapipe/                    | face_landmarker_v2_with_blendshapes.task        |
| audio_separator | models/audio_separator/            | Kim_Vocal_2.onnx                                |

Registered at import so `folder_paths.get_folder_paths(...)` and
`extra_model_paths.yaml` work for all of them.
"""
import os

import folder_paths

from ..emocast_core.audio import SEPARATOR_FILE
from ..emocast_core.face import DETECTOR_FILE, LANDMARKER_FILE
from .safe_paths import entry_name, inside, shown

EMOCAST_WEIGHT_EXTENSIONS = {".pth", ".safetensors"}
NO_MODEL = "(no wav2vec2 folder in models/wav2vec2)"
NONE_FOUND = "(none found: put antelopev2 in models/insightface/models/)"

_FOLDERS = {
    "emocast": EMOCAST_WEIGHT_EXTENSIONS,
    "wav2vec2": set(),
    "insightface": set(),
    "mediapipe": {".task"},
    "audio_separator": {".onnx"},
}

for _name, _exts in _FOLDERS.items():
    _default = os.path.join(folder_paths.models_dir, _name)
    if _name in folder_paths.folder_names_and_paths:
        paths, exts = folder_paths.folder_names_and_paths[_name]
        if _default not in paths:
            paths.append(_default)
        folder_paths.folder_names_and_paths[_name] = (paths, exts | _exts if exts else exts)
    else:
        folder_paths.folder_names_and_paths[_name] = ([_default], set(_exts))


def _model_dirs(folder_name: str, marker: str):
    """(name, path) of each sub-folder of the registered folders that holds `marker`."""
    roots = folder_paths.get_folder_paths(folder_name)
    for root in roots:
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if os.path.isfile(os.path.join(path, marker)):
                yield entry, path


def list_model_dirs(folder_name: str, marker: str = "config.json") -> list[str]:
    """Sub-folders (Hugging Face layout) of a model folder that contain `marker`."""
    return sorted({name for name, _ in _model_dirs(folder_name, marker)})


def resolve_model_dir(folder_name: str, name: str, marker: str = "config.json", input_name: str = "model") -> str:
    """Full path of sub-folder `name` of `folder_name` (one the list offers), or a clear error."""
    entry_name(name, input_name, f"models/{folder_name}/")
    for candidate, path in _model_dirs(folder_name, marker):
        if candidate == name:
            return path
    raise FileNotFoundError(
        f"{input_name}: no folder {shown(name)} with {marker} in models/{folder_name}/ (or the folders "
        f"extra_model_paths.yaml adds to it). Put the Hugging Face folder there and refresh; see README "
        "'Model files'."
    )


def resolve_model_file(folder_name: str, name: str, input_name: str) -> str:
    """Full path of file `name` (as ComfyUI lists it, sub-folders allowed) inside `folder_name`'s folders."""
    path = folder_paths.get_full_path(folder_name, name) if isinstance(name, str) and name else None
    if path is None or not inside(path, folder_paths.get_folder_paths(folder_name)):
        raise FileNotFoundError(f"{input_name}: no file {shown(name)} in models/{folder_name}/ (or the folders "
                                "extra_model_paths.yaml adds to it); choose one from the list and refresh")
    return path


def wav2vec_folder(name: str) -> str:
    """The wav2vec2 folder chosen in a wav2vec_model input, or how to get one."""
    if name == NO_MODEL or not list_model_dirs("wav2vec2"):
        roots = ", ".join(folder_paths.get_folder_paths("wav2vec2"))
        raise FileNotFoundError(
            "wav2vec_model: no wav2vec2 model found. Download the Hugging Face folder facebook/wav2vec2-base-960h "
            "(config.json, model.safetensors or pytorch_model.bin, preprocessor_config.json) into "
            f"models/wav2vec2/wav2vec2-base-960h/ (searched: {roots}), then refresh the page."
        )
    return resolve_model_dir("wav2vec2", name, input_name="wav2vec_model")


def separator_path() -> str:
    """The vocal separator model (Kim_Vocal_2.onnx) in models/audio_separator/, or a clear error."""
    path = folder_paths.get_full_path("audio_separator", SEPARATOR_FILE)
    if path is None:
        roots = ", ".join(folder_paths.get_folder_paths("audio_separator"))
        raise FileNotFoundError(f"separate_vocals: {SEPARATOR_FILE} not found (searched: {roots}). Download it "
                                "(UVR MDX-Net, MIT) into models/audio_separator/, or turn separate_vocals off.")
    return path


def _insightface_candidates():
    """(name, path) of folders holding the SCRFD file: <root>/models/<name>/ (InsightFace's own layout) and
    <root>/<name>/ (a root that already points at a models/ folder)."""
    for root in folder_paths.get_folder_paths("insightface"):
        for base in (os.path.join(root, "models"), root):
            if not os.path.isdir(base):
                continue
            for name in sorted(os.listdir(base)):
                if os.path.isfile(os.path.join(base, name, DETECTOR_FILE)):
                    yield name, os.path.join(base, name)


def list_insightface_dirs() -> list[str]:
    names = sorted({name for name, _ in _insightface_candidates()})
    return names or [NONE_FOUND]


def resolve_insightface_dir(name: str) -> str:
    for candidate, path in _insightface_candidates():
        if candidate == name:
            return path
    roots = ", ".join(folder_paths.get_folder_paths("insightface"))
    raise FileNotFoundError(f"insightface_dir: no InsightFace folder {shown(name)} with {DETECTOR_FILE} under "
                            f"models/insightface/models/ (searched {roots}). Put the antelopev2 pack "
                            "(scrfd_10g_bnkps.onnx, glintr100.onnx) in "
                            f"ComfyUI/models/insightface/models/antelopev2/ and refresh.")


def find_landmarker(insightface_dir: str) -> str | None:
    """MediaPipe's landmarker file in models/mediapipe/, else beside the InsightFace files (the official layout)."""
    path = folder_paths.get_full_path("mediapipe", LANDMARKER_FILE)
    if path:
        return path
    beside = os.path.join(insightface_dir, LANDMARKER_FILE)
    return beside if os.path.isfile(beside) else None
