"""EmoCAST Video Combine: IMAGE frames (+ AUDIO) to an mp4 in the output folder.

Saves like core SaveVideo (same naming, same `prompt`/`workflow` metadata),
previews the file in the node and also returns it as VIDEO, so core
SaveVideo / GetVideoComponents can take it further.
"""
import comfy.model_management
import comfy.utils
from comfy_api.latest import InputImpl, io, ui

from ..emocast_core.video import write_mp4
from .safe_paths import check_filename_prefix
from .video_files import first_audio, output_mp4, video_metadata

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
        wave, rate = first_audio(audio)
        check_filename_prefix(filename_prefix)
        frames, height, width = (int(n) for n in images.shape[:3])
        path, result = output_mp4(filename_prefix, width, height)

        bar = comfy.utils.ProgressBar(frames)

        def on_frame(done: int, total: int) -> None:
            # Raising here aborts the encode; the writer removes its partial file.
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)

        write_mp4(path, images, fps, audio=wave, sample_rate=rate, quality=quality,
                  metadata=video_metadata(cls.hidden), frame_callback=on_frame)
        return io.NodeOutput(InputImpl.VideoFromFile(path), ui=ui.PreviewVideo([result]))
