"""The training step's loss: v-prediction with Min-SNR weighting and condition dropout.

Per sample (Hallo's recipe, on the official sampler's noise schedule):
- t ~ U{0..999}; noise = N(0, I) + 0.05 * N(0, I) per (sample, channel) ("noise offset");
- x_t = add_noise(x_0, noise, t) and target v = get_velocity(x_0, noise, t) on the
  official DDIM config (linear betas rescaled to zero terminal SNR);
- loss = mean_b  w(t_b) * mean(|v_pred - v|^2),  w = min(SNR+1, gamma) / (SNR+1), gamma 5.
  With zero terminal SNR, t = 999 has SNR 0: the v form gives w = 1 there.  (The
  epsilon form min(SNR, gamma)/SNR would be 0/0; it is not used.)

The ReferenceNet runs on (reference, motion 1, motion 2) of each sample at t = 0
and every frame of the sample reads its own reference (`ReferenceBank.per_sample`).

Condition dropout, drawn independently per sample, makes a dropped condition
look exactly as the sampler's unconditional CFG half sees it:
- image  (0.05): no reference-attention reading, face tokens = ImageProj(zeros),
  FaceLocator features zeroed (the official stage-1 `uncond_ratio` zeroed the
  face embedding, stage-2 `uncond_img_ratio` skipped the reference);
- audio  (0.05): audio tokens zeroed after AudioProj (`uncond_audio_ratio`);
- text   (0.05): TEA text -> the "" embedding; the EAA query keeps the prompt,
  as in the sampler's unconditional half (the official configs had no text dropout);
- motion (0.05): motion frames replaced by the reference latent, which is what
  the sampler feeds the first clip (the official `start_ratio` zeroed the motion
  pixels).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from ._core import EmoCASTNet, ReferenceBank, make_scheduler

NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True)
class ConditionDropout:
    image: float = 0.05
    audio: float = 0.05
    text: float = 0.05
    motion: float = 0.05

    def __post_init__(self):
        for name in ("image", "audio", "text", "motion"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"dropout.{name} must be a probability in [0, 1], got {p}")


@dataclass(frozen=True)
class ObjectiveConfig:
    noise_offset: float = 0.05
    snr_gamma: float = 5.0
    dropout: ConditionDropout = field(default_factory=ConditionDropout)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ObjectiveConfig":
        d, dropout = dict(d), dict(d.get("dropout", {}))
        d.pop("dropout", None)
        # Files written before two unused options were dropped still load when they hold the plain values.
        for where, key, plain in ((d, "lip_weight", 1.0), (dropout, "motion_fill", "reference")):
            if where.get(key, plain) != plain:
                raise ValueError(f"objective: {key}={where[key]!r} is no longer supported; "
                                 f"this pack trains with {key}={plain!r} only")
            where.pop(key, None)
        return cls(dropout=ConditionDropout(**dropout), **d)


@dataclass
class Draws:
    """Everything random in one step: drawn on the CPU from the trainer's generator."""

    timesteps: torch.Tensor  # long [B]
    noise: torch.Tensor  # like the target latents
    drop_image: torch.Tensor  # bool [B]
    drop_audio: torch.Tensor
    drop_text: torch.Tensor
    drop_motion: torch.Tensor

    def to(self, device) -> "Draws":
        return Draws(**{k: v.to(device) for k, v in vars(self).items()})


def draw(shape: tuple, cfg: ObjectiveConfig, generator: torch.Generator) -> Draws:
    """Draws for target latents of `shape` [B, C, F, h, w] (fixed draw order: resumable)."""
    b, c = shape[:2]
    timesteps = torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), generator=generator)
    noise = torch.randn(shape, generator=generator)
    if cfg.noise_offset:
        noise = noise + cfg.noise_offset * torch.randn((b, c) + (1,) * (len(shape) - 2), generator=generator)
    d = cfg.dropout
    u = torch.rand(4, b, generator=generator)
    return Draws(timesteps, noise, u[0] < d.image, u[1] < d.audio, u[2] < d.text, u[3] < d.motion)


def min_snr_weight(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR+1, gamma)/(SNR+1) for v-prediction; finite for every t, SNR = 0 included."""
    ac = alphas_cumprod.to(timesteps.device)[timesteps].double()
    snr = ac / (1 - ac)  # 1 - ac >= beta_0 > 0
    return (torch.clamp(snr + 1, max=gamma) / (snr + 1)).float()


def _where(mask: torch.Tensor, dropped, kept: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.reshape((-1,) + (1,) * (kept.dim() - 1)), dropped, kept)


class EmoCASTObjective(nn.Module):
    """`forward(batch, draws) -> loss`; a module so DDP can wrap the whole step."""

    def __init__(self, net: EmoCASTNet, config: ObjectiveConfig | None = None):
        super().__init__()
        self.net = net
        self.config = config or ObjectiveConfig()
        self.scheduler = make_scheduler()

    def forward(self, batch: dict, draws: Draws) -> torch.Tensor:
        net, cfg = self.net, self.config
        x0 = batch["latents"]
        b, _, frames = x0.shape[:3]
        ref = batch["ref_latent"]
        motion = batch["motion_latents"]
        motion = _where(draws.drop_motion, ref.unsqueeze(1).expand_as(motion), motion)
        if motion.shape[1] != 2:
            raise ValueError(f"EmoCAST's reference bank takes exactly 2 motion frames, got {motion.shape[1]}")

        face_emb = _where(draws.drop_image, 0.0, batch["face_embedding"])
        text = _where(draws.drop_text, batch["uncond_text"].to(batch["text"].dtype), batch["text"])
        text_face = torch.cat([text, net.imageproj(face_emb).to(text.dtype)], dim=1)  # [B, 77 + 4, D]

        # ReferenceNet: rows (r, m1, m2) per sample, each with its sample's tokens.
        features = net.reference_unet(torch.cat([ref.unsqueeze(1), motion], 1).flatten(0, 1), 0,
                                      text_face.repeat_interleave(3, 0))
        bank = ReferenceBank.per_sample(features, b, frames)
        keep = ~draws.drop_image.cpu().repeat_interleave(frames)  # image dropout: those rows attend plainly
        bank = replace(bank, ref_rows=bank.ref_rows[keep], ref_source=bank.ref_source[keep],
                       plain_rows=torch.arange(b * frames)[~keep])

        audio = net.audioproj(batch["audio"])
        audio = _where(draws.drop_audio, 0.0, audio)
        # The face box is the same for every frame: run the locator once, expand over frames.
        face_features = net.face_locator(batch["face_region"].unsqueeze(2)).expand(-1, -1, frames, -1, -1)
        face_features = _where(draws.drop_image, 0.0, face_features)
        masks = [tuple(m.repeat_interleave(frames, 0) for m in level) for level in batch["mask_levels"]]

        t = draws.timesteps
        noisy = self.scheduler.add_noise(x0, draws.noise, t)
        target = self.scheduler.get_velocity(x0, draws.noise, t)
        v = net.denoising_unet(noisy, t, text_face, audio, batch["text"], masks, face_features, bank)
        per_sample = (v.float() - target.float()).pow(2).flatten(1).mean(1)
        weight = min_snr_weight(self.scheduler.alphas_cumprod, t, cfg.snr_gamma)
        return (per_sample * weight).mean()
