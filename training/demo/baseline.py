"""A plain conditional UNet on a demo build's cache: the yardstick the demo model's scores are read against.

    python -m training.demo.baseline --work WORK --model demo_model --out BASELINE [--steps 2000]
    python -m training.demo.toybench --model demo_model --baseline BASELINE --steps 10

The demo model's aims were set against "a plain conditional UNet trained 30
minutes on CPU" on a set like ours.  This trains one on the very cache the tiny EmoCAST
trained on (WORK/cache of the model's build: the latents of the model's
autoencoder, its audio and text features), so the toy benchmark compares the two
on equal terms: same data, autoencoder, encoders, objective and sampler.

One frame at a time through diffusers' UNet2DConditionModel: the noisy latent and
the reference's latent stacked as channels; the five-frame audio window (as
AudioProj reads it) through an MLP into a vector added to the timestep embedding
and four cross-attention tokens beside the caption's text tokens.  No ReferenceNet,
temporal layers or motion frames.  The objective is the stages' (v-prediction on the
official zero-terminal-SNR schedule, Min-SNR weighting, noise offset); CFG's
unconditional half drops the audio and the text together.  It is a yardstick, not a
demo: the pack's demo model is the tiny EmoCAST.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

from ..objective import min_snr_weight
from . import MODEL_FILE
from .build import _sha256, neutral_reference
from .generate import DemoModel

if __package__ and __package__.count(".") >= 2:  # inside the pack (see training/_core.py)
    from ...emocast_core.audio import encode_audio
    from ...emocast_core.audio.windows import frame_windows
    from ...emocast_core.pipeline.scheduler import make_scheduler
    from ...emocast_core.weights import atomic_save
else:
    from emocast_core.audio import encode_audio
    from emocast_core.audio.windows import frame_windows
    from emocast_core.pipeline.scheduler import make_scheduler
    from emocast_core.weights import atomic_save

WEIGHTS, RECORD, STATE = "baseline.safetensors", "baseline.json", "baseline_state.pt"
# 2.5 M parameters on 16x16 latents; on this 2-core CPU (two threads) about 0.57 s per step of 32 frames.
# Condition dropout per frame: audio and text together (CFG's unconditional half), or one of them alone.
PLAN = dict(widths=(32, 64, 64), context=64, audio_tokens=4, batch=32, lr=5e-4, seed=0,
            drop_both=0.1, drop_audio=0.05, drop_text=0.05)


class PlainUNet(torch.nn.Module):
    def __init__(self, latent_channels: int, audio_shape: tuple[int, int], text_dim: int,
                 context: int = PLAN["context"], audio_tokens: int = PLAN["audio_tokens"]):
        super().__init__()
        self.tokens, self.context = audio_tokens, context
        self.unet = UNet2DConditionModel(
            in_channels=2 * latent_channels, out_channels=latent_channels,
            block_out_channels=PLAN["widths"], layers_per_block=2,
            norm_num_groups=32, cross_attention_dim=context, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            class_embed_type="projection", projection_class_embeddings_input_dim=context)
        self.text = torch.nn.Linear(text_dim, context)
        self.audio = torch.nn.Sequential(
            torch.nn.Linear(5 * audio_shape[0] * audio_shape[1], 256), torch.nn.SiLU(), torch.nn.Linear(256, 256),
            torch.nn.SiLU(), torch.nn.Linear(256, (audio_tokens + 1) * context))

    def forward(self, x, t, reference, audio_window, text):
        """x, reference [B,C,h,w]; audio_window [B,5,L,H] (zeros when dropped); text [B,77,D]."""
        a = self.audio(audio_window.flatten(1)).view(len(x), self.tokens + 1, self.context)
        tokens = torch.cat([self.text(text), a[:, 1:]], 1)
        return self.unet(torch.cat([x, reference], 1), t, encoder_hidden_states=tokens, class_labels=a[:, 0]).sample


def load_clips(work: Path, model: DemoModel) -> list[dict]:
    """The build's cached clips; refuses a cache that `model`'s autoencoder did not make.
    Each clip's "targets" are what the network learns to denoise: the cached latents."""
    cache = work / "cache"
    refs_path, labels_path = cache / "neutral_references.safetensors", work / "videos" / "labels.jsonl"
    if not refs_path.is_file() or not labels_path.is_file():
        raise FileNotFoundError(f"--work {work}: no demo build work folder (cache/neutral_references.safetensors "
                                "and videos/labels.jsonl; python -m training.demo.build writes them)")
    refs = load_file(str(refs_path))
    labels = [json.loads(line) for line in labels_path.read_text().splitlines() if line.strip()]
    first = labels[0]
    name = Path(first["file"]).stem
    # The build's own reference of the first clip, redone with --model's autoencoder, must match the cached one.
    mine = neutral_reference(model.codec, first["identity_seed"], refs[name].shape[-1] * model.net.config.latent_factor)
    if mine.shape != refs[name].shape or (mine - refs[name].float()).abs().max() > 0.05:
        raise ValueError(f"--work {work}: its cache holds another autoencoder's latents than --model's; "
                         "pass the work folder of that model's build")
    clips = []
    for name, ref in sorted(refs.items()):
        t = load_file(str(cache / name / "tensors.safetensors"))
        clips.append(dict(targets=t["latents"].float(), windows=frame_windows(t["audio"].float()), text=t["text"].float(),
                          reference=ref.float()))
    return clips


def _batch(clips, generator, size):
    picks = [clips[i] for i in torch.randint(len(clips), (size,), generator=generator).tolist()]
    frames = [int(torch.randint(len(c["targets"]), (1,), generator=generator)) for c in picks]
    return (torch.stack([c["targets"][f] for c, f in zip(picks, frames)]),
            torch.stack([c["reference"] for c in picks]),
            torch.stack([c["windows"][f] for c, f in zip(picks, frames)]),
            torch.stack([c["text"] for c in picks]))


def _net_for(clips) -> PlainUNet:
    c = clips[0]
    return PlainUNet(c["targets"].shape[1], tuple(c["windows"].shape[-2:]), c["text"].shape[-1])


def _log(message: str) -> None:
    print(message, flush=True)


def train(work: Path, model_dir: Path, out: Path, steps: int, save_every: int = 200, log=_log) -> dict:
    """Train (or resume, from out/baseline_state.pt) to `steps`; writes the weights and the record."""
    state = torch.load(out / STATE, weights_only=True) if (out / STATE).is_file() else None
    model = DemoModel.load(model_dir)
    clips = load_clips(work, model)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(PLAN["seed"])
    net = _net_for(clips)
    opt = torch.optim.AdamW(net.parameters(), lr=PLAN["lr"], weight_decay=1e-2)
    gen = torch.Generator().manual_seed(PLAN["seed"])
    step, wall = 0, 0.0
    if state is not None:
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        step, wall = int(state["step"]), float(state["wall_seconds"])
        log(f"resuming the baseline at step {step}")
    empty = model.encode_caption("")
    sched = make_scheduler()
    t0, losses = time.perf_counter() - wall, []

    def save():
        state = dict(net=net.state_dict(), optimizer=opt.state_dict(), generator=gen.get_state(), step=step,
                     wall_seconds=time.perf_counter() - t0)
        atomic_save(lambda p: torch.save(state, p), out / STATE)

    while step < steps:
        x0, ref, audio, text = _batch(clips, gen, PLAN["batch"])
        u = torch.rand(len(x0), generator=gen)
        both = u < PLAN["drop_both"]
        drop_audio = both | ((u >= 1 - PLAN["drop_audio"] - PLAN["drop_text"]) & (u < 1 - PLAN["drop_text"]))
        drop_text = both | (u >= 1 - PLAN["drop_text"])
        audio = torch.where(drop_audio[:, None, None, None], torch.zeros_like(audio), audio)
        text = torch.where(drop_text[:, None, None], empty.expand_as(text), text)
        noise = torch.randn(x0.shape, generator=gen) + 0.05 * torch.randn(*x0.shape[:2], 1, 1, generator=gen)
        t = torch.randint(len(sched.alphas_cumprod), (len(x0),), generator=gen)
        pred = net(sched.add_noise(x0, noise, t), t, ref, audio, text)
        err = F.mse_loss(pred, sched.get_velocity(x0, noise, t), reduction="none").mean((1, 2, 3))
        loss = (min_snr_weight(sched.alphas_cumprod, t, 5.0) * err).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % save_every == 0 or step == steps:
            save()
            log(f"baseline step {step}/{steps} loss {np.mean(losses[-save_every:]):.4f}")
    atomic_save(lambda p: save_file(net.state_dict(), p), out / WEIGHTS)
    record = dict(model_sha256=_sha256(Path(model_dir) / MODEL_FILE), steps=step,
                  wall_seconds=round(time.perf_counter() - t0, 1), threads=torch.get_num_threads(),
                  plan=PLAN, clips=len(clips), parameters=sum(p.numel() for p in net.parameters()),
                  audio_shape=list(clips[0]["windows"].shape[-2:]), text_dim=clips[0]["text"].shape[-1],
                  latent_channels=clips[0]["targets"].shape[1])
    (out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return record


class Baseline:
    """A trained baseline as a toybench generator, sampled as the demo model is (DDIM, CFG, seed)."""

    def __init__(self, folder: str | Path, model: DemoModel, model_dir: str | Path):
        folder = Path(folder)
        if not (folder / WEIGHTS).is_file():
            raise FileNotFoundError(f"--baseline {folder}: no {WEIGHTS} (train one with python -m "
                                    "training.demo.baseline)")
        rec = json.loads((folder / RECORD).read_text())
        if rec["model_sha256"] != _sha256(Path(model_dir) / MODEL_FILE):
            raise ValueError(f"--baseline {folder} was trained on another demo model's latents and features than "
                             f"--model {model_dir}'s: pass the model it was trained with")
        self.net = PlainUNet(rec["latent_channels"], tuple(rec["audio_shape"]), rec["text_dim"]).eval()
        self.net.load_state_dict(load_file(str(folder / WEIGHTS)))
        self.model = model

    @torch.no_grad()
    def generate(self, portrait: np.ndarray, audio: np.ndarray, sample_rate: int, caption: str) -> np.ndarray:
        m = self.model
        image = torch.from_numpy(np.ascontiguousarray(portrait)).permute(2, 0, 1)[None].float() / 127.5 - 1
        reference = m.codec.encode(image)
        features = encode_audio(m.wav2vec, torch.from_numpy(np.asarray(audio, np.float32))[None], sample_rate)
        frames = features.num_frames
        windows = frame_windows(features.hidden_states.float())[:frames]
        sched = make_scheduler()
        sched.set_timesteps(m.steps)
        latents = torch.randn((frames, *reference.shape[1:]), generator=torch.Generator().manual_seed(m.seed))
        both = dict(reference=reference.expand(2 * frames, -1, -1, -1),
                    audio_window=torch.cat([windows, torch.zeros_like(windows)]),
                    text=torch.cat([m.encode_caption(caption).expand(frames, -1, -1),
                                    m.encode_caption("").expand(frames, -1, -1)]))
        for t in sched.timesteps:
            cond, uncond = self.net(torch.cat([latents, latents]), t.expand(2 * frames), **both).chunk(2)
            latents = sched.step(uncond + m.guidance * (cond - uncond), t, latents).prev_sample
        frames = m.codec.decode(latents)  # 0..1
        return (frames.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.demo.baseline", description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="the work folder of --model's build (its videos and cache)")
    ap.add_argument("--model", required=True, help="the demo model folder whose autoencoder and encoders to use")
    ap.add_argument("--out", required=True, help="where the baseline's weights, record and resumable state go")
    ap.add_argument("--steps", type=int, default=2000, help="training steps of 32 frames (default 2000)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps {args.steps}: must be at least 1")
    try:
        record = train(Path(args.work), Path(args.model), Path(args.out), args.steps)
    except (FileNotFoundError, ValueError) as e:
        ap.error(str(e))
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
