"""EmoCAST Video Combine: IMAGE frames (+ AUDIO) to an mp4 in the output folder.

Saves like core SaveVideo (same naming, same `prompt`/`workflow` metadata),
previews the file in the node and also returns it as VIDEO, so core
SaveVideo / GetVideoComponents can take it further.
"""
import os

import comfy.model_management
import comfy.utils
import folder_paths
from comfy.cli_args import args
from comfy_api.latest import InputImpl, io, ui

from ..emocast_core.video import write_mp4
from .safe_paths import check_filename_prefix

NODE_NAME = "EmoCAST Video Combine"


class VideoCombine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoCASTVideoCombine",
            display_name=NODE_NAME,
            category="EmoCAST/video",
            description="Encode frames (and optional audio) into an H.264/AAC mp4 in the output folder, "
                        "preview it, and pass it on as VIDEO.",
            inputs=[
                io.Image.Input("images", tooltip="Video frames as an IMAGE batch [T,H,W,3]. Odd widths or "
                               "heights are padded by one repeated edge pixel (H.264 needs even sizes)."),
                io.Float.Input("fps", default=25.0, min=1.0, max=120.0, step=0.01,
                               tooltip="Frames per second. EmoCAST generates 25 fps."),
                io.String.Input("filename_prefix", default="EmoCAST/talking",
                                tooltip="Output path prefix inside the ComfyUI output folder; a counter and "
                                        ".mp4 are appended. May contain %date% / %width% style fields."),
                io.Int.Input("quality", default=19, min=0, max=51, step=1,
                             tooltip="H.264 CRF: lower is better and larger. 0 is lossless (few browsers "
                                     "play it), 17-23 is typical."),
                io.Audio.Input("audio", optional=True,
                               tooltip="Optional soundtrack (first batch item). Trimmed or padded with "
                                       "silence to the video's length, encoded as AAC."),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="The saved mp4 as a VIDEO.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, fps, filename_prefix, quality, audio=None) -> io.NodeOutput:
        if getattr(images, "ndim", None) != 4:
            got = list(images.shape) if hasattr(images, "shape") else type(images).__name__
            raise ValueError(f"images: expected an IMAGE batch [T,H,W,3], got {got}; connect an IMAGE output "
                             "such as the sampler's images")
        wave, rate = _first_audio(audio)
        check_filename_prefix(filename_prefix)
        frames, height, width = (int(n) for n in images.shape[:3])
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), width, height)
        file = f"{name}_{counter:05}_.mp4"
        path = os.path.join(folder, file)

        bar = comfy.utils.ProgressBar(frames)

        def on_frame(done: int, total: int) -> None:
            # Raising here aborts the encode; the writer removes its partial file.
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)

        write_mp4(path, images, fps, audio=wave, sample_rate=rate, quality=quality,
                  metadata=_metadata(cls.hidden), frame_callback=on_frame)
        return io.NodeOutput(InputImpl.VideoFromFile(path),
                             ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


def _first_audio(audio):
    """(waveform [C,N], sample_rate) of batch item 0 of an AUDIO, or (None, None)."""
    if audio is None:
        return None, None
    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    if waveform is None or waveform.ndim != 3 or waveform.shape[0] == 0:
        shape = None if waveform is None else list(waveform.shape)
        raise ValueError(f"audio: expected an AUDIO with waveform [B,C,N] and B >= 1, got {shape}; connect an "
                         "AUDIO output such as Load Audio's, or leave the input empty")
    return waveform[0], audio.get("sample_rate")


def _metadata(hidden):
    """Same keys and encoding as core SaveVideo: UI workflow fields + API `prompt`."""
    if args.disable_metadata or hidden is None:  # None: called outside the executor
        return None
    metadata = dict(hidden.extra_pnginfo or {})
    if hidden.prompt is not None:
        metadata["prompt"] = hidden.prompt
    return metadata or None
