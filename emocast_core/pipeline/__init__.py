"""Sampling: the official scheduler, CFG conditioning and the per-clip denoising loop."""
from .clip_sampler import denoise_clip, write_reference
from .conditioning import ClipConditioning, clip_conditioning
from .scheduler import OFFICIAL_SCHEDULER_CONFIG, make_scheduler

__all__ = ["ClipConditioning", "OFFICIAL_SCHEDULER_CONFIG", "clip_conditioning", "denoise_clip", "make_scheduler",
           "write_reference"]
