"""Video output: frames + audio to mp4 (H.264/AAC via PyAV) and back."""
from .inputs import frame_rate
from .reader import DecodedVideo, read_mp4
from .writer import X264_PRESETS, Mp4Stream, write_mp4

__all__ = ["DecodedVideo", "Mp4Stream", "X264_PRESETS", "frame_rate", "read_mp4", "write_mp4"]
