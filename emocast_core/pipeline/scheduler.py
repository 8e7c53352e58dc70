"""The official sampler: DDIM, v-prediction, linear betas rescaled to zero terminal SNR, trailing spacing."""
from diffusers import DDIMScheduler

OFFICIAL_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="linear",  # not SD's scaled_linear
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=1,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
)


def make_scheduler(**overrides) -> DDIMScheduler:
    return DDIMScheduler(**{**OFFICIAL_SCHEDULER_CONFIG, **overrides})
