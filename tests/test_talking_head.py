"""Whole-video generation: clip chaining, seeding, trimming and progress, on a tiny model and VAE."""
import pytest
import torch
from diffusers import AutoencoderKL

from emocast_core.audio.features import AudioFeatures
from emocast_core.config import EmoCASTConfig
from emocast_core.deterministic_weights import fill_deterministic
from emocast_core.models import EmoCASTNet
from emocast_core.pipeline import (
    DiffusersVAECodec, TalkingHeadRequest, clip_conditioning, denoise_clip, generate_talking_head, iter_talking_head,
    make_scheduler, write_reference,
)

CFG = EmoCASTConfig.tiny()
SIZE = 64  # pixels; 8x8 latents


@pytest.fixture(scope="module")
def net():
    return fill_deterministic(EmoCASTNet(CFG)).eval()


def _factor8_codec():
    torch.manual_seed(0)
    return DiffusersVAECodec(AutoencoderKL(
        block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=32, layers_per_block=1,
    ).eval())


@pytest.fixture(scope="module")
def codec():
    return _factor8_codec()


def make_request(frames=20, seed=7, steps=2):
    g = torch.Generator().manual_seed(0)
    padded = -(-frames // 16) * 16
    audio = AudioFeatures(torch.randn(padded, CFG.audio_layers, CFG.audio_channels, generator=g), frames, 25.0)
    levels = [tuple(torch.rand(1, (8 >> l) ** 2, generator=g) for _ in range(3)) for l in range(4)]
    region = torch.zeros(1, 3, SIZE, SIZE)
    region[..., 16:48, 20:44] = 1
    return TalkingHeadRequest(
        reference=torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1,
        face_embedding=torch.randn(1, CFG.face_embed_dim, generator=g),
        face_region=region, mask_levels=levels, audio=audio,
        text_cond=torch.randn(1, 77, CFG.cross_attention_dim, generator=g),
        text_uncond=torch.randn(1, 77, CFG.cross_attention_dim, generator=g),
        steps=steps, seed=seed,
    )


def _clip(net, codec, req, c, motion, noise):
    cond = clip_conditioning(net, req.text_cond, req.text_uncond, req.face_embedding,
                             req.audio.clip_windows(c).unsqueeze(0), req.mask_levels, req.face_region)
    latents = denoise_clip(net, make_scheduler(), noise, motion, cond, req.steps, req.guidance)
    return codec.decode(latents[0].transpose(0, 1))


def test_clips_chain_on_the_last_two_frames(net, codec):
    req = make_request()
    progress = []
    video = generate_talking_head(net, codec, req, on_step=lambda done, total: progress.append((done, total)))
    assert video.shape == (20, SIZE, SIZE, 3) and video.dtype == torch.uint8
    assert progress == [(i, 4) for i in range(1, 5)]

    # Replay by hand: clip 0 sees the reference as both motion frames, clip 1 the last two frames.
    gen = torch.Generator().manual_seed(req.seed)
    ref = codec.encode(req.reference)
    noise0 = torch.randn(1, 4, 16, 8, 8, generator=gen)
    noise1 = torch.randn(1, 4, 16, 8, 8, generator=gen)
    clip0 = _clip(net, codec, req, 0, torch.cat([ref, ref, ref]), noise0)
    motion1 = torch.cat([ref, codec.encode(clip0[-2:] * 2 - 1)])
    clip1 = _clip(net, codec, req, 1, motion1, noise1)
    expected = (torch.cat([clip0, clip1]).permute(0, 2, 3, 1) * 255).round()[:20]
    assert (video.float() - expected).abs().max() <= 1  # uint8 rounding only


def test_the_clips_one_at_a_time_are_the_whole_video(net, codec):
    req = make_request(frames=37, steps=1)
    clips = list(iter_talking_head(net, codec, req))
    assert [len(c) for c in clips] == [16, 16, 5]
    assert torch.equal(torch.cat(clips), generate_talking_head(net, codec, req))


def test_seed_decides_the_noise(net, codec):
    a = generate_talking_head(net, codec, make_request(frames=5, seed=1, steps=1))
    b = generate_talking_head(net, codec, make_request(frames=5, seed=1, steps=1))
    c = generate_talking_head(net, codec, make_request(frames=5, seed=2, steps=1))
    assert a.shape[0] == 5  # trimmed to the audio's frame count
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_interrupt_stops_between_steps(net, codec):
    class Stop(Exception):
        pass

    def on_step(done, total):
        if done == 1:
            raise Stop

    with pytest.raises(Stop):
        generate_talking_head(net, codec, make_request(frames=5, steps=3), on_step=on_step)


def test_bad_requests(net, codec):
    req = make_request(frames=5, steps=0)
    with pytest.raises(ValueError, match="steps"):
        generate_talking_head(net, codec, req)
    req = make_request(frames=5)
    req.reference = torch.zeros(1, 3, 64, 96)
    with pytest.raises(ValueError, match="square"):
        generate_talking_head(net, codec, req)


def test_per_frame_emotion(net, codec):
    req = make_request(frames=5, steps=1)
    constant = generate_talking_head(net, codec, req)
    req.emotion_per_frame = req.text_cond[0].expand(16, -1, -1)
    same = generate_talking_head(net, codec, req)
    assert (same.float() - constant.float()).abs().max() <= 1
    other = torch.randn(1, 77, CFG.cross_attention_dim, generator=torch.Generator().manual_seed(5))
    req.emotion_per_frame = torch.cat([req.text_cond.expand(8, -1, -1), other.expand(8, -1, -1)])
    changed = generate_talking_head(net, codec, req)
    assert not torch.equal(changed, constant)
    req.emotion_per_frame = req.emotion_per_frame[:10]
    with pytest.raises(ValueError, match="per-frame emotion covers 10 frames"):
        generate_talking_head(net, codec, req)


def test_a_factor_4_model_runs_on_16x16_latents_and_mismatches_are_named():
    """A model trained on a factor-4 autoencoder (the demo's) takes a 16x16 latent grid from a 64² portrait;
    a VAE, or masks, on another grid is refused with what to change instead of a shape error deep inside."""
    from emocast_core.face import portrait_masks

    cfg4 = CFG.with_(face_locator_channels=(16, 32, 64))
    assert (CFG.latent_factor, cfg4.latent_factor) == (8, 4)
    net4 = fill_deterministic(EmoCASTNet(cfg4)).eval()
    torch.manual_seed(0)
    vae4 = AutoencoderKL(
        block_out_channels=(32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=4, norm_num_groups=32, layers_per_block=1,
    ).eval()
    req = make_request(frames=5)
    req.mask_levels = portrait_masks((16, 8, 48, 56), (24, 36, 40, 48), SIZE, SIZE, SIZE, latent_factor=4).levels
    assert [m[0].shape[-1] for m in req.mask_levels] == [256, 64, 16, 4]
    frames = generate_talking_head(net4, DiffusersVAECodec(vae4), req)
    assert frames.shape == (5, SIZE, SIZE, 3) and frames.dtype == torch.uint8

    with pytest.raises(ValueError, match="downsamples by 4: use the VAE it was trained with"):
        generate_talking_head(net4, _factor8_codec(), req)
    req8 = make_request(frames=5)  # masks on the 8x8 grid
    with pytest.raises(ValueError, match=r"16x16 latent grid needs 256.*mask_levels_for\(4\)"):
        generate_talking_head(net4, DiffusersVAECodec(vae4), req8)
    req8.reference = torch.zeros(1, 3, 80, 80)
    with pytest.raises(ValueError, match="divisible by 32"):
        generate_talking_head(net4, DiffusersVAECodec(vae4), req8)



def test_work_kept_for_a_clip_gives_the_numbers_of_computing_it_every_step(net):
    """The EAA and its keys and values, the reference and motion token gathers are made once per clip
    (clip_cache) and reused: bit for bit the same."""
    req = make_request(frames=16)
    cond = clip_conditioning(net, req.text_cond, req.text_uncond, req.face_embedding,
                             req.audio.clip_windows(0).unsqueeze(0), req.mask_levels, req.face_region)
    g = torch.Generator().manual_seed(3)
    motion = torch.randn(3, 4, 8, 8, generator=g)
    bank = write_reference(net, motion, cond.text_face, 16)
    x1, x2 = (torch.randn(2, 4, 16, 8, 8, generator=g) for _ in range(2))
    args = (cond.text_face, cond.audio, cond.emotion, cond.masks, cond.face_features, bank, (1.0, 1.0, 1.0))
    cache = {}
    with torch.no_grad():
        net.denoising_unet(x1, torch.tensor(999), *args, cache)  # the first step fills it
        kept = net.denoising_unet(x2, torch.tensor(500), *args, cache)
        fresh = net.denoising_unet(x2, torch.tensor(500), *args)
    blocks = [m for n, m in net.denoising_unet.named_modules() if n.endswith("transformer_blocks.0")
              and ".audio_modules." in n]
    assert set(blocks) <= set(cache) and "readers" in cache and torch.equal(kept, fresh)
    assert {kind for kind, *_ in (k for k in cache if isinstance(k, tuple))} == {"reference", "motion"}
