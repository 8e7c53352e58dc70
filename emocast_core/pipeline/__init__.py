"""Sampling: the official scheduler, CFG conditioning and the per-clip denoising loop."""
from .clip_sampler import denoise_clip, write_reference
from .conditioning import ClipConditioning, clip_conditioning
from .emocast_pipeline import EmoCASTPipeline
from .scheduler import OFFICIAL_SCHEDULER_CONFIG, make_scheduler
from .talking_head import TalkingHeadRequest, generate_talking_head, iter_talking_head
from .vae import SD_LATENT_SCALE, SD_VAE_ARCHITECTURE, DiffusersVAECodec, LatentCodec

__all__ = ["ClipConditioning", "DiffusersVAECodec", "EmoCASTPipeline", "LatentCodec", "OFFICIAL_SCHEDULER_CONFIG", "SD_LATENT_SCALE",
           "SD_VAE_ARCHITECTURE",
           "TalkingHeadRequest", "clip_conditioning", "denoise_clip", "generate_talking_head", "iter_talking_head",
           "make_scheduler",
           "write_reference"]
