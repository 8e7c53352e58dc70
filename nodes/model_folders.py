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

EMOCAST_WEIGHT_EXTENSIONS = {".pth", ".safetensors"}

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


def list_model_dirs(folder_name: str, marker: str = "config.json") -> list[str]:
    """Sub-folders (Hugging Face layout) of a model folder that contain `marker`."""
    found = []
    for root in folder_paths.get_folder_paths(folder_name):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            if os.path.isfile(os.path.join(root, entry, marker)):
                found.append(entry)
    return sorted(set(found))


def resolve_model_dir(folder_name: str, name: str, marker: str = "config.json") -> str:
    """Full path of sub-folder `name` of `folder_name`, or a clear error."""
    searched = folder_paths.get_folder_paths(folder_name)
    for root in searched:
        path = os.path.join(root, name)
        if os.path.isfile(os.path.join(path, marker)):
            return path
    raise FileNotFoundError(
        f"Model folder '{name}' (with {marker}) not found under models/{folder_name}/ "
        f"(searched: {', '.join(searched)}). Put the Hugging Face folder there; see README 'Model files'."
    )
