"""EmoCAST Sampler to Video: the official sampling loop, each clip written to an mp4 as soon as it is made.

Memory stays that of one clip whatever the audio's length (frames never pile up
as an IMAGE batch); the mp4 (H.264 + AAC, the speech muxed) appears under its final
name only when complete.  The VIDEO output goes on to core Save Video, Get Video
Components or any other VIDEO node.
"""
from __future__ import annotations

from comfy_api.latest import InputImpl, io, ui

from ..emocast_core.video import Mp4Stream
from .safe_paths import check_filename_prefix
from .sampling import Sampling, sampling_inputs, trimmed_audio
from .video_files import first_audio, output_mp4, video_metadata


class EmoCASTSamplerToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="EmoCASTSamplerToVideo",
            display_name="EmoCAST Sampler to Video",
            category="EmoCAST/sampling",
            description="Generates the talking-portrait video like EmoCAST Sampler and writes each 16-frame clip "
                        "straight into an mp4 with the speech, so any audio length fits in memory.",
            inputs=[
                *sampling_inputs(),
                io.String.Input("filename_prefix", default="EmoCAST/talking",
                                tooltip="Output path prefix inside the ComfyUI output folder; a counter and "
                                        ".mp4 are appended."),
                io.Int.Input("quality", default=19, min=0, max=51, step=1,
                             tooltip="H.264 CRF: lower is better and larger; 17-23 is typical."),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="The saved mp4 as a VIDEO.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model, portrait, audio_features, emotion, seed, steps, cfg, pose_weight, face_weight,
                lip_weight, paste_back, feather, filename_prefix, quality, vae=None) -> io.NodeOutput:
        check_filename_prefix(filename_prefix)
        run = Sampling(model, portrait, audio_features, emotion, seed, steps, cfg,
                       (pose_weight, face_weight, lip_weight), paste_back, feather, vae)
        width, height = run.frame_size
        frames, fps = audio_features.num_frames, audio_features.fps
        wave, rate = first_audio(trimmed_audio(audio_features, frames, fps))
        path, result = output_mp4(filename_prefix, width, height)
        # Leaving the block by an error or an interrupt removes the partial file: nothing is left half-written.
        with Mp4Stream(path, fps, width, height, total_frames=frames, audio=wave, sample_rate=rate,
                       quality=quality, metadata=video_metadata(cls.hidden)) as video:
            for clip in run.clips():
                video.write(clip)
        return io.NodeOutput(InputImpl.VideoFromFile(path), ui=ui.PreviewVideo([result]))
