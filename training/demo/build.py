"""Build the demo model from nothing: synthetic videos -> encoders -> training cache -> tiny EmoCAST.

    python -m training.demo.build [--work DIR] [--out demo_model] [--steps-scale 1.0] [--device cuda]
                                  [--latent-factor 8|4] [--stop-after STAGE] [--init-from MODEL_DIR]
                                  [--stages STAGE ...] [--lr-scale S] [--audio-proj-hidden W]

Every step writes its result once and is skipped when the result exists, so an
interrupted build resumes where it stopped (the EmoCAST stages also resume from
their checkpoints).  The work folder holds the videos, the cache and the
checkpoints; `--out` receives what ships: the model file (with its autoencoder
bundled), the text and audio encoder folders and the card's numbers.  `--device`
trains the autoencoder and the EmoCAST stages there (the small encoders and the
cache stay on the CPU); batches and noise come from CPU generators on any device,
and a build may resume on another device than it started on.  `--init-from` continues
an earlier demo model instead of starting from nothing: its networks are where the
stages start, and its autoencoder and encoders are kept (the networks were trained on
their latents and tokens), so only the stages train.  `--audio-proj-hidden` sets AudioProj's hidden width; with `--init-from` of another width
AudioProj starts afresh and the other networks continue (the lipsync stage, which trains
AudioProj, must be one of the stages).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .face_drawing import render
from ..objective import ConditionDropout, ObjectiveConfig
from ..prepare_sources import frames_at, read_audio
from ..stages import STAGE_ORDER
from .synthetic_faces import make_dataset, sample_identity, still_params
from . import AUDIO_DIR, MODEL_FILE, TEXT_DIR, encoders
from .data import prepare_synthetic
from ..runner import run_stage
from .pretrain import init_from_scratch, open_full_stage, progress_log

if __package__ and __package__.count(".") >= 2:  # inside the pack (see training/_core.py)
    from ...emocast_core.audio import load_wav2vec2, normalize_waveform, prepare_waveform
    from ...emocast_core.config import EmoCASTConfig
    from ...emocast_core.models import EmoCASTNet
    from ...emocast_core.pipeline import DiffusersVAECodec
    from ...emocast_core.text import load_clip_text
    from ...emocast_core.weights import atomic_save, load_checkpoint, save_net
else:
    from emocast_core.audio import load_wav2vec2, normalize_waveform, prepare_waveform
    from emocast_core.config import EmoCASTConfig
    from emocast_core.models import EmoCASTNet
    from emocast_core.pipeline import DiffusersVAECodec
    from emocast_core.text import load_clip_text
    from emocast_core.weights import atomic_save, load_checkpoint, save_net

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "demo_model"
DEFAULT_WORK = Path.home() / ".cache" / "comfyui-emocast" / "demo-build"
SEED = 0
DATA = dict(clips=480, identities=160, seed=SEED, size=64)
STEPS = dict(text=600, audio=300, autoencoder=2000, autoencoder_detail=3000)
# The autoencoder trains in two phases: the layout (every third frame), then the thin lines that carry the
# expression (every second frame; heavier mouth and eye band, an edge term, from the first phase's weights).
AUTOENCODER_PHASES = {
    "autoencoder": dict(every=3, seed=SEED, lr=1e-3, band_weight=4.0, edge_weight=0.0),
    "autoencoder_detail": dict(every=2, seed=SEED + 1, lr=5e-4, band_weight=8.0, edge_weight=1.0),
}


DEMO_WIDTHS = (32, 32, 64, 64)  # the UNets' block_out_channels (the shipped model's)
# A build from nothing's (the shipped model's is 128, widened later with --audio-proj-hidden); the audio tokens
# stay as wide as the text's (the EAA mixes them)
DEMO_AUDIO_PROJ_HIDDEN = 32


def demo_config(latent_factor: int = 8, block_out_channels: tuple[int, ...] = DEMO_WIDTHS,
                audio_proj_hidden: int = DEMO_AUDIO_PROJ_HIDDEN) -> EmoCASTConfig:
    """The official model's code at demo width (every width the official model fixes is shrunk too), for the
    autoencoder of that factor (encoders.AUTOENCODERS); `block_out_channels` widens the UNets (a wider build),
    `audio_proj_hidden` AudioProj's two hidden layers."""
    ae = encoders.AUTOENCODERS[latent_factor]
    config = EmoCASTConfig.tiny().with_(
        block_out_channels=tuple(block_out_channels), layers_per_block=1, in_channels=ae["latent_channels"],
        out_channels=ae["latent_channels"], cross_attention_dim=encoders.TEXT_HIDDEN,
        audio_token_dim=32, audio_channels=encoders.AUDIO_HIDDEN, audio_layers=encoders.AUDIO_LAYERS,
        audio_proj_hidden=audio_proj_hidden, eaa_head_dim=8, face_embed_dim=512,
    )
    if latent_factor == 4:
        # The FaceLocator halves its input to the 16x16 grid.  2 heads, not SD's 8 (4 numbers wide at width 32):
        # at 16x16 a CPU step spent 68 % in attention, whose kernel's cost grows with the heads; 2.5x faster.
        config = config.with_(face_locator_channels=ae["block_out_channels"], num_heads=2, eaa_head_dim=32)
    assert config.latent_factor == latent_factor
    return config


def _words(values) -> str:
    """Values as they are typed after a command-line flag (messages say what to pass)."""
    return " ".join(map(str, values))


def check_widths(widths) -> tuple[int, ...]:
    """--block-out-channels as a tuple, or a SystemExit that says what is wrong before anything runs."""
    widths = tuple(widths)
    if len(widths) != 4 or any(w < 32 or w % 32 for w in widths):
        raise SystemExit(f"--block-out-channels {_words(widths)}: give four widths, each a multiple of "
                         "32 (the UNets' GroupNorm has 32 groups), e.g. 32 64 64 64")
    return widths


def check_audio_proj_hidden(width: int) -> int:
    if width < 1:
        raise SystemExit(f"--audio-proj-hidden {width}: give AudioProj's hidden width, at least 1 (a build from "
                         f"nothing uses {DEMO_AUDIO_PROJ_HIDDEN})")
    return width


DEMO_CONFIG = demo_config(8)  # the default build's (the shipped model is demo_config(4, audio_proj_hidden=128))
# Toybench and demo clips are one to three 16-frame clips, and the first continues from the reference:
# train that case often (motion frames replaced by the reference latent).
# Half the time, too: motion frames show the clip's own expression, so with them the model can copy the
# emotion instead of reading the prompt; at 0.25 the demo model ignored the text (emotion ~2x chance).
OBJECTIVE = ObjectiveConfig(dropout=ConditionDropout(motion=0.5))
# stage: (steps, batch, learning rate)
STAGE_PLAN = {"appearance": (2500, 16, 5e-4), "lipsync": (1200, 4, 5e-4), "emotion": (1000, 4, 5e-4)}
AUTOENCODER_FILES = {"autoencoder": "autoencoder_coarse.safetensors", "autoencoder_detail": "autoencoder.safetensors"}


def read_labels(videos: Path) -> list[dict]:
    return [json.loads(line) for line in (videos / "labels.jsonl").read_text().splitlines() if line.strip()]


def synthetic_videos(work: Path, data: dict) -> Path:
    videos = work / "videos"
    if not (videos / "labels.jsonl").is_file():
        make_dataset(videos, data["clips"], data["seed"], data["size"], identities=data["identities"])
    return videos


@contextlib.contextmanager
def _timed(record: dict, name: str):
    t0 = time.time()
    yield
    record.setdefault("wall_seconds", {})[name] = round(time.time() - t0, 1)


@contextlib.contextmanager
def _folder_once(folder: Path):
    """Yield a scratch folder that becomes `folder` only when the block completes (an interrupted
    write never looks finished); skipped (yields None) when `folder` exists."""
    if folder.is_dir():
        yield None
        return
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    yield tmp
    tmp.rename(folder)


def text_encoder(out: Path, tokenizer_dir: Path, record: dict, scale: float) -> None:
    steps = max(1, round(STEPS["text"] * scale))
    with _folder_once(out / TEXT_DIR) as folder:
        if folder is None:
            return
        with _timed(record, "text_encoder"):
            model, head, tok = encoders.train_text_encoder(tokenizer_dir, steps, SEED)
            record["text_encoder"] = {"steps": steps,
                                      "caption_accuracy_train": encoders.text_accuracy(model, head, tok, "train"),
                                      "caption_accuracy_heldout": encoders.text_accuracy(model, head, tok, "heldout")}
            encoders.save_text_encoder(model, tokenizer_dir, folder)
    print("text encoder:", record["text_encoder"], flush=True)


def audio_encoder(out: Path, videos: Path, labels: list[dict], record: dict, scale: float) -> None:
    if (out / AUDIO_DIR).is_dir():
        return
    clips = []
    for lab in labels:
        samples, rate = read_audio(videos / lab["file"])
        mono = prepare_waveform(samples, rate, 25.0, lab["file"])
        n = lab["frames"] * 16000 // 25
        clips.append((normalize_waveform(mono[:n]), np.asarray(lab["envelope"], np.float32)))
    steps = max(1, round(STEPS["audio"] * scale))
    with _timed(record, "audio_encoder"), _folder_once(out / AUDIO_DIR) as folder:
        model = encoders.train_audio_encoder(clips, steps, SEED)
        encoders.save_audio_encoder(model, folder)
    record["audio_encoder"] = {"steps": steps}


def training_frames(videos: Path, labels: list[dict], every: int = 3) -> tuple[np.ndarray, np.ndarray]:
    frames, boxes = [], []
    for lab in labels:
        with contextlib.closing(frames_at(videos / lab["file"])) as it:
            for k, rgb in enumerate(it):
                if k % every == 0:
                    frames.append(rgb)
                    boxes.append(lab["mouth_box"])
    return np.stack(frames), np.asarray(boxes)


def autoencoder(work: Path, videos: Path, labels: list[dict], record: dict, scale: float, device="cpu",
                latent_factor: int = 8):
    """The two phases of AUTOENCODER_PHASES, each written once (a file that exists is complete)."""
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file, save_file

    state = None
    for phase, recipe in AUTOENCODER_PHASES.items():
        path = work / AUTOENCODER_FILES[phase]
        if path.is_file():
            state = load_file(str(path))
            continue
        recipe = dict(recipe)
        frames, boxes = training_frames(videos, labels, every=recipe.pop("every"))
        steps = max(1, round(STEPS[phase] * scale))
        with _timed(record, phase):
            vae = encoders.train_autoencoder(frames, boxes, steps, init=state, device=device,
                                             config=encoders.AUTOENCODERS[latent_factor], **recipe)
            rescale = encoders.calibrate_latent_scale(vae, frames, 0.18215)
        record[phase] = {"steps": steps, "frames": len(frames), "latent_rescale": rescale, **recipe,
                         "device": str(device)}
        state = {k: v.contiguous() for k, v in vae.state_dict().items()}
        atomic_save(lambda tmp: save_file(state, tmp), path)
    vae = AutoencoderKL(**encoders.AUTOENCODERS[latent_factor])
    vae.load_state_dict(state)
    return vae.eval().requires_grad_(False)


def training_cache(work: Path, out: Path, videos: Path, vae, record: dict) -> Path:
    """Dataset preparation (resumable: complete clips are kept) into <work>/cache."""
    cache = work / "cache"
    t0 = time.time()
    report = prepare_synthetic(videos, cache, DiffusersVAECodec(vae), load_wav2vec2(str(out / AUDIO_DIR)),
                               load_clip_text(str(out / TEXT_DIR), expected_hidden=None))
    if report.skipped:
        raise RuntimeError("dataset preparation skipped videos:\n" + report.summary())
    if report.prepared:
        walls = record.setdefault("wall_seconds", {})
        walls["cache"] = round(walls.get("cache", 0.0) + time.time() - t0, 1)
    record["cache"] = {"clips": len(report.prepared) + len(report.existing)}
    return cache


def neutral_face(identity_seed: int, size: int = DATA["size"]) -> torch.Tensor:
    """An identity's neutral still face [1, 3, S, S] in [-1, 1]: the portrait the demo's users give."""
    face = render(sample_identity(identity_seed), still_params("neutral"), size)[0]
    return torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1


@torch.no_grad()
def neutral_reference(codec, identity_seed: int, size: int = DATA["size"]) -> torch.Tensor:
    """Latent [C, h, w] of an identity's neutral still face: the reference the demo's users give."""
    return codec.encode(neutral_face(identity_seed, size))[0].contiguous()


@torch.no_grad()
def neutral_references(cache: Path, labels: list[dict], vae) -> dict[str, torch.Tensor]:
    """Clip id -> latent of its identity's neutral still face (the reference the demo's users give)."""
    from safetensors.torch import load_file, save_file

    path = cache / "neutral_references.safetensors"
    if path.is_file():
        return load_file(str(path))
    codec, refs, by_identity = DiffusersVAECodec(vae), {}, {}
    for lab in labels:
        seed = lab["identity_seed"]
        if seed not in by_identity:
            by_identity[seed] = neutral_reference(codec, seed)
        refs[Path(lab["file"]).stem] = by_identity[seed].clone()
    save_file(refs, str(path))
    return refs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def earlier_model(folder: Path, out: Path, latent_factor: int):
    """(networks, autoencoder, record entry) of the earlier demo model in `folder` (a models layout like
    demo_model/), in fp32, checked to be a demo model of `latent_factor` that `out` would not overwrite."""
    path = folder / MODEL_FILE
    if folder.resolve() == out.resolve():
        raise SystemExit(f"--init-from {folder}: the same folder as --out would overwrite the model the build "
                         "starts from; write to another --out and copy it over when the build ends")
    missing = [str(folder / p) for p in (MODEL_FILE, TEXT_DIR, AUDIO_DIR) if not (folder / p).exists()]
    if missing:
        raise SystemExit(f"--init-from {folder}: not a demo model folder (missing {', '.join(missing)})")
    net, vae = load_checkpoint(path, dtype=torch.float32)
    if vae is None:
        raise SystemExit(f"--init-from {folder}: {path} has no bundled autoencoder, so it is not a demo model")
    if net.config != demo_config(latent_factor, net.config.block_out_channels, net.config.audio_proj_hidden):
        raise SystemExit(f"--init-from {folder}: its networks are not demo_config({latent_factor}) (latent factor "
                         f"{net.config.latent_factor}); pass the --latent-factor it was built with")
    earlier = folder / "build_record.json"
    entry = {"model": str(path), "sha256": _sha256(path),
             "record": json.loads(earlier.read_text()) if earlier.is_file() else None}
    return net, vae.requires_grad_(False), entry


def with_audio_proj(net: EmoCASTNet, hidden: int) -> EmoCASTNet:
    """`net` with AudioProj afresh (seeded) at `hidden` wide and every other weight kept."""
    torch.manual_seed(SEED)
    wider = EmoCASTNet(net.config.with_(audio_proj_hidden=hidden))
    kept = {name: w for name, w in net.state_dict().items() if not name.startswith("audioproj.")}
    missing, unexpected = wider.load_state_dict(kept, strict=False)
    assert not unexpected and all(name.startswith("audioproj.") for name in missing), (missing, unexpected)
    return wider


def demo_model(work: Path, out: Path, cache: Path, refs: dict, vae, record: dict, scale: float, save,
               device="cpu", config: EmoCASTConfig = DEMO_CONFIG, stop_after: str | None = None,
               start: EmoCASTNet | None = None, only: tuple[str, ...] = STAGE_ORDER,
               lr_scale: float = 1.0) -> Path | None:
    """The three stages in turn, then the model file; None when `stop_after` names a stage (the build
    resumes from its checkpoints, possibly with another --steps-scale: a longer stage restarts its
    learning-rate schedule warm from where it stood).  `start`: the networks to continue (--init-from)
    instead of a random initialisation of `config`; each stage's schedule starts afresh from them.  `only`: the
    stages that train (the others keep `start`'s weights); `lr_scale` scales every stage's learning rate."""
    net = start
    if net is None:
        torch.manual_seed(SEED)  # every weight no stage trains keeps this initialisation
        net = EmoCASTNet(config)
        init_from_scratch(net)
    stages = record.setdefault("stages", {})
    for stage in STAGE_ORDER:
        if stage in only:
            steps, batch, lr = STAGE_PLAN[stage]
            steps, lr = max(1, round(steps * scale)), lr * lr_scale
            folder = work / "stages" / stage
            trainer = open_full_stage(net, cache, stage, folder, batch, lr, SEED, total_steps=steps,
                                      warmup=max(1, steps // 20), objective=OBJECTIVE, references=refs,
                                      device=device)
            try:
                if trainer.step < steps:
                    run_stage(trainer, steps, folder, every=50, keep=1,
                              on_step=progress_log(stage, steps, 50, lambda m: print(m, flush=True)))
                    stages[stage] = {"steps": steps, "batch": batch, "lr": lr, "frames": trainer.data.frames,
                                     "device": str(device),  # the one that finished it, if it resumed elsewhere
                                     "wall_seconds": round(trainer.wall_seconds, 1)}  # every session's share
                    save()
            finally:
                trainer.close()
        if stage == stop_after:
            return None
    path = out / MODEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_net(net.cpu().eval(), path, dtype=torch.float16, vae=vae)
    return path


def check_device(name: str) -> torch.device:
    """--device as a torch.device, or a SystemExit that says what is wrong before anything runs."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise SystemExit(f"--device {name!r}: not a torch device ({e}); use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: this torch sees no CUDA GPU (torch {torch.__version__}); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {name}: the demo build trains on cpu or cuda only")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SystemExit(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.demo.build", description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="videos, cache and checkpoints")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the shipped files go")
    ap.add_argument("--tokenizer", type=Path, required=True, help="a CLIP tokenizer folder (vocab.json, merges.txt)")
    ap.add_argument("--steps-scale", type=float, default=1.0,
                    help="scale every step count (below 1: smoke tests; above 1: a longer build)")
    ap.add_argument("--clips", type=int, default=DATA["clips"], help="synthetic videos (smoke tests: fewer)")
    ap.add_argument("--device", default="cpu", help="where the autoencoder and the stages train: cpu, cuda, cuda:1")
    ap.add_argument("--stop-after", choices=STAGE_ORDER,
                    help="end the build after this EmoCAST stage (run again without it, same --work, to go on)")
    ap.add_argument("--latent-factor", type=int, choices=sorted(encoders.AUTOENCODERS), default=8,
                    help="the autoencoder's downsampling: 8 (8x8 latents, the quicker build) or 4 (16x16, keeps "
                         "the brows, needs longer training; the shipped demo's)")
    ap.add_argument("--init-from", type=Path, metavar="MODEL_DIR",
                    help="continue an earlier demo model (a folder like demo_model/): the stages start from its "
                         "networks and train again; its autoencoder and encoders are kept")
    ap.add_argument("--stages", nargs="+", choices=STAGE_ORDER, default=list(STAGE_ORDER), metavar="STAGE",
                    help="with --init-from: train only these stages (the others keep the earlier model's weights)")
    ap.add_argument("--lr-scale", type=float, default=1.0,
                    help="scale every stage's learning rate (a continuation that fine-tunes: e.g. 0.2)")
    ap.add_argument("--audio-proj-hidden", type=int, metavar="WIDTH",
                    help=f"AudioProj's hidden width (default: the --init-from model's, else "
                         f"{DEMO_AUDIO_PROJ_HIDDEN}); with --init-from of another width AudioProj starts afresh at "
                         "this one and the other networks continue, so --stages must include lipsync")
    args = ap.parse_args(argv)
    args.stages = [stage for stage in STAGE_ORDER if stage in args.stages]
    if args.stages != list(STAGE_ORDER) and args.init_from is None:
        raise SystemExit(f"--stages {_words(args.stages)}: a build from nothing trains every stage; "
                         "pass --init-from to continue a model with some of them")
    if not args.lr_scale > 0:
        raise SystemExit(f"--lr-scale {args.lr_scale}: must be above 0")
    if args.audio_proj_hidden is not None:
        args.audio_proj_hidden = check_audio_proj_hidden(args.audio_proj_hidden)
    device = check_device(args.device)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    record_path = args.work / "record.json"
    data = {**DATA, "clips": args.clips, "identities": max(1, args.clips // 3)}
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"seed": SEED, "data": data}
    factor = record.setdefault("latent_factor", args.latent_factor)
    if factor != args.latent_factor:
        raise SystemExit(f"--latent-factor {args.latent_factor}: the build in {args.work} was started with "
                         f"{factor}; pass --latent-factor {factor} to resume it, or use another --work folder")
    start = vae = None
    if args.init_from is not None:
        earlier = record.get("init_from")
        if earlier is None and record_path.is_file():
            raise SystemExit(f"--init-from {args.init_from}: the build in {args.work} was started from nothing; "
                             "use another --work folder to continue a model")
        start, vae, entry = earlier_model(args.init_from, args.out, factor)
        if earlier is not None and earlier["sha256"] != entry["sha256"]:
            raise SystemExit(f"--init-from {args.init_from}: the build in {args.work} continues another model "
                             f"({earlier['model']}); use another --work folder")
        if args.audio_proj_hidden not in (None, start.config.audio_proj_hidden):
            if "lipsync" not in args.stages:
                raise SystemExit(f"--audio-proj-hidden {args.audio_proj_hidden}: AudioProj starts afresh at this "
                                 f"width (--init-from {args.init_from}'s is {start.config.audio_proj_hidden}) and "
                                 "only the lipsync stage trains it; add lipsync to --stages")
            start = with_audio_proj(start, args.audio_proj_hidden)
            entry["audio_proj_kept"] = False
        record["init_from"] = entry
    elif "init_from" in record:
        raise SystemExit(f"the build in {args.work} continues {record['init_from']['model']}: pass --init-from "
                         "with that model's folder to resume it")
    widths = tuple(start.config.block_out_channels) if start is not None else DEMO_WIDTHS
    hidden = start.config.audio_proj_hidden if start is not None else args.audio_proj_hidden or DEMO_AUDIO_PROJ_HIDDEN
    # a stage's checkpoint holds its learning rate and its networks' shapes, so a resume must train what the
    # build started with (a plan older than an option had its default)
    asked = {"stages": args.stages, "lr_scale": args.lr_scale, "block_out_channels": list(widths),
             "audio_proj_hidden": hidden}
    plan = record.setdefault("plan", asked)
    plan.setdefault("block_out_channels", list(DEMO_WIDTHS))
    plan.setdefault("audio_proj_hidden", DEMO_AUDIO_PROJ_HIDDEN)
    if plan.get("lip_weight", 1.0) == 1.0:  # an option of earlier builds, always 1 in the shipped ones
        plan.pop("lip_weight", None)
    if plan != asked:
        def flags(p):
            return (f"--stages {_words(p['stages'])} --lr-scale {p['lr_scale']} "
                    f"--audio-proj-hidden {p['audio_proj_hidden']}")
        raise SystemExit(f"{flags(asked)}: the build in {args.work} was started with {flags(plan)}; pass those to "
                         "resume it, or use another --work folder")
    if args.init_from is not None:
        for sub in (TEXT_DIR, AUDIO_DIR):  # the networks are (or were) trained on these encoders' tokens
            if not (args.out / sub).is_dir():
                shutil.copytree(args.init_from / sub, args.out / sub)

    def save():
        tmp = record_path.with_suffix(".partial")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(record_path)

    videos = synthetic_videos(args.work, data)
    labels = read_labels(videos)
    text_encoder(args.out, args.tokenizer, record, args.steps_scale)
    save()
    audio_encoder(args.out, videos, labels, record, args.steps_scale)
    save()
    if vae is None:  # an --init-from model keeps its own autoencoder
        vae = autoencoder(args.work, videos, labels, record, args.steps_scale, device, factor)
    save()
    cache = training_cache(args.work, args.out, videos, vae, record)
    save()
    refs = neutral_references(cache, labels, vae)
    path = demo_model(args.work, args.out, cache, refs, vae, record, args.steps_scale, save, device,
                      demo_config(factor, widths, hidden), args.stop_after, start, tuple(args.stages), args.lr_scale)
    save()
    if path is None:
        print(f"stopped after the {args.stop_after} stage; run again without --stop-after to go on", flush=True)
        return
    (args.out / "build_record.json").write_text(json.dumps(record, indent=1))
    print(f"demo model: {path}", flush=True)


if __name__ == "__main__":
    main()
