"""Saving videos like core SaveVideo: names in the output folder, `prompt`/`workflow` metadata, the AUDIO to mux."""
import os

import folder_paths
from comfy.cli_args import args
from comfy_api.latest import io, ui


def output_mp4(filename_prefix: str, width: int, height: int) -> tuple[str, "ui.SavedResult"]:
    """The next free `<prefix>_<counter>_.mp4` in the output folder, and its entry for the node's preview."""
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, folder_paths.get_output_directory(), width, height)
    file = f"{name}_{counter:05}_.mp4"
    return os.path.join(folder, file), ui.SavedResult(file, subfolder, io.FolderType.output)


def first_audio(audio):
    """(waveform [C,N], sample_rate) of batch item 0 of an AUDIO, or (None, None)."""
    if audio is None:
        return None, None
    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    if waveform is None or waveform.ndim != 3 or waveform.shape[0] == 0:
        shape = None if waveform is None else list(waveform.shape)
        raise ValueError(f"audio: expected an AUDIO with waveform [B,C,N] and B >= 1, got {shape}; connect an "
                         "AUDIO output such as Load Audio's, or leave the input empty")
    return waveform[0], audio.get("sample_rate")


def video_metadata(hidden):
    """Same keys and encoding as core SaveVideo: UI workflow fields + API `prompt`."""
    if args.disable_metadata or hidden is None:  # None: called outside the executor
        return None
    metadata = dict(hidden.extra_pnginfo or {})
    if hidden.prompt is not None:
        metadata["prompt"] = hidden.prompt
    return metadata or None
