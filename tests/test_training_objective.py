"""The loss: Min-SNR weights at zero terminal SNR, draws, and what each condition dropout removes."""
import pytest
import torch

from emocast_core.pipeline.scheduler import make_scheduler
from tests.training_helpers import cache, tiny_net
from training.dataset import ClipCache
from training.objective import ConditionDropout, EmoCASTObjective, ObjectiveConfig, draw, min_snr_weight
from training.sampling import WindowKey


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = ClipCache(cache(tmp_path_factory.mktemp("objective_cache")), frames=2, sample_margin=3)
    batch = data.collate([data[WindowKey(0, 1)], data[WindowKey(1, 2)]])
    return EmoCASTObjective(tiny_net()), batch


def test_min_snr_weight_is_finite_and_one_at_zero_snr():
    ac = make_scheduler().alphas_cumprod
    assert ac[999] == 0  # zero terminal SNR
    t = torch.arange(1000)
    w = min_snr_weight(ac, t, 5.0)
    assert torch.isfinite(w).all() and (w > 0).all() and (w <= 1).all()
    assert w[999] == 1
    snr = ac[10] / (1 - ac[10])
    assert torch.isclose(w[10], 5.0 / (snr + 1))  # clipped at gamma where SNR is high


def test_draws_are_seeded_and_follow_the_ratios():
    cfg = ObjectiveConfig(dropout=ConditionDropout(image=0.5, audio=0.1, text=0.0, motion=1.0))
    a = draw((4000, 4, 1, 2, 2), cfg, torch.Generator().manual_seed(0))
    b = draw((4000, 4, 1, 2, 2), cfg, torch.Generator().manual_seed(0))
    assert torch.equal(a.noise, b.noise) and torch.equal(a.timesteps, b.timesteps)
    assert a.timesteps.min() >= 0 and a.timesteps.max() <= 999
    assert abs(a.drop_image.float().mean() - 0.5) < 0.03 and abs(a.drop_audio.float().mean() - 0.1) < 0.02
    assert not a.drop_text.any() and a.drop_motion.all()
    # Noise offset: a shared shift per (sample, channel) of std 0.05.
    offset = a.noise.mean(dim=(2, 3, 4)) - draw((4000, 4, 1, 2, 2), ObjectiveConfig(noise_offset=0.0, dropout=cfg.dropout),
                                                 torch.Generator().manual_seed(0)).noise.mean(dim=(2, 3, 4))
    assert 0.04 < offset.std() < 0.06


def _loss(objective, batch, drop: dict, **changes) -> float:
    batch = {**batch, **changes}
    cfg = ObjectiveConfig(dropout=ConditionDropout(0, 0, 0, 0))
    draws = draw(tuple(batch["latents"].shape), cfg, torch.Generator().manual_seed(3))
    draws.timesteps = torch.tensor([200, 700])
    for name, value in drop.items():
        setattr(draws, f"drop_{name}", torch.tensor([value, value]))
    with torch.no_grad():
        return float(objective(batch, draws))


@pytest.mark.parametrize("condition, inputs", [
    ("image", ("ref_latent", "face_embedding", "face_region")),
    ("audio", ("audio",)),
    ("motion", ("motion_latents",)),
])
def test_a_dropped_condition_no_longer_matters(setup, condition, inputs):
    objective, batch = setup
    for key in inputs:
        other = torch.randn_like(batch[key])
        assert _loss(objective, batch, {condition: False}, **{key: other}) != _loss(objective, batch, {condition: False})
        assert _loss(objective, batch, {condition: True}, **{key: other}) == _loss(objective, batch, {condition: True})


def test_text_dropout_replaces_only_the_tea_text(setup):
    objective, batch = setup
    dropped = _loss(objective, batch, {"text": True})  # TEA reads the "" embedding
    assert dropped != _loss(objective, batch, {"text": False})
    # The EAA query still reads the prompt (as in the sampler's unconditional half).
    assert _loss(objective, batch, {"text": True}, text=torch.randn_like(batch["text"])) != dropped


def test_mixed_image_dropout_in_one_batch(setup):
    objective, batch = setup
    cfg = ObjectiveConfig()
    draws = draw(tuple(batch["latents"].shape), cfg, torch.Generator().manual_seed(0))
    draws.drop_image = torch.tensor([True, False])
    with torch.no_grad():
        assert torch.isfinite(objective(batch, draws))


def test_records_of_older_runs_load_when_they_used_the_plain_objective():
    cfg = ObjectiveConfig(noise_offset=0.1)
    old = {**cfg.to_dict(), "lip_weight": 1.0, "dropout": {**cfg.to_dict()["dropout"], "motion_fill": "reference"}}
    assert ObjectiveConfig.from_dict(old) == cfg
    with pytest.raises(ValueError, match="lip_weight=4.0 is no longer supported"):
        ObjectiveConfig.from_dict({**old, "lip_weight": 4.0})
    with pytest.raises(ValueError, match="motion_fill='zeros'"):
        ObjectiveConfig.from_dict({**old, "dropout": {"motion_fill": "zeros"}})
