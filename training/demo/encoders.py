"""The demo model's three small encoders, trained here on the synthetic set.

- autoencoder: a diffusers `AutoencoderKL` trained to reconstruct the set's frames,
  with the mouth and the eye-and-brow band weighted 4x.  Two recipes
  (`AUTOENCODERS`): factor 8 as SD's VAE but 8 latent channels (8x8 latents at 64²;
  4 channels blur the eyes and brows that carry the expression), the default build's;
  and factor 4 with 4 channels (16x16 latents), the shipped demo model's, which keeps
  the one-pixel brows that 8x8 cells lose (toy benchmark round trip, emotion: 0.73 ->
  0.86 / 0.91 on training / held-out phrasings), at 4x the latent positions for the
  diffusion model to learn.  Afterwards its
  latent space is rescaled so that latents x 0.18215 have unit spread, the scale
  the pipeline uses for SD's VAE.
- audio encoder: a `Wav2Vec2Model` (2 layers, 32 wide) trained to predict the
  speech's mouth envelope per video frame through the pack's own wav2vec2 forward
  (`emocast_core.audio.wav2vec`), so that its features carry loudness and timing.
- text encoder: a `CLIPTextModel` (2 layers, 32 wide, CLIP's BPE vocabulary and 77
  positions) trained to tell the eight emotions from the training captions.  A
  CLIP-layout encoder trained here rather than a PyPI sentence encoder: it loads
  through the same text path as CLIP-L (ComfyUI's tokenizer, 77-token rule), and
  the held-out phrasings reuse the training vocabulary in new sentence structures.

Each is saved as a Hugging Face folder that the pack's loaders read.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

if __package__ and __package__.count(".") >= 2:  # inside the pack (see training/_core.py)
    from ...emocast_core.audio import wav2vec
else:
    from emocast_core.audio import wav2vec
from ..sampling import EMOTIONS
from .synthetic_captions import captions

TEXT_HIDDEN, AUDIO_HIDDEN, AUDIO_LAYERS = 32, 32, 2


def _autoencoder(blocks: tuple, latent_channels: int) -> dict:
    return dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(blocks),
                up_block_types=("UpDecoderBlock2D",) * len(blocks), block_out_channels=blocks, layers_per_block=1,
                latent_channels=latent_channels, norm_num_groups=16, sample_size=64)


# latent factor -> AutoencoderKL config (each block but the last halves the image)
AUTOENCODERS = {8: _autoencoder((16, 32, 64, 64), 8), 4: _autoencoder((16, 32, 64), 4)}
AUTOENCODER = AUTOENCODERS[8]  # the default build's (--latent-factor 8)
EYE_BAND_64 = (15, 31, 14, 50)  # y0, y1, x0, x1 of the eyes and brows in a 64² drawn face
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def _log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- autoencoder
def _image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def train_autoencoder(frames: np.ndarray, mouth_boxes: np.ndarray, steps: int, seed: int = 0, batch: int = 16,
                      lr: float = 1e-3, init: dict | None = None, band_weight: float = 4.0,
                      edge_weight: float = 0.0, device: str | torch.device = "cpu", config: dict = AUTOENCODER):
    """frames uint8 [N, S, S, 3], mouth_boxes [N, 4] (y0, y1, x0, x1) -> trained AutoencoderKL (eval).

    The loss is L1 + L2 per pixel, `band_weight` times heavier on the mouth and the eye-and-brow band.
    `edge_weight` adds the L1 error of horizontal and vertical pixel differences (same weights):
    brows, lids and lip lines are one or two pixels thin, so plain pixel losses learn them last.
    `init`: a state dict to continue from (the build's detail phase starts from its coarse phase).
    `config`: an `AUTOENCODERS` entry.  `device` trains there (batches and noise still come from CPU
    generators); the result is on the CPU.
    """
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(**config)
    if init is not None:
        vae.load_state_dict(init)
    vae.to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    size = frames.shape[1]
    weight = torch.ones(len(frames), 1, size, size)  # on the CPU: rows are picked per batch
    b = [round(v * size / 64) for v in EYE_BAND_64]
    weight[:, :, b[0]:b[1], b[2]:b[3]] = band_weight  # eyes and brows: the expression
    for i, (y0, y1, x0, x1) in enumerate(mouth_boxes):
        weight[i, :, y0:y1, x0:x1] = band_weight  # the mouth: lip sync and expression
    g = torch.Generator().manual_seed(seed)
    vae.train()
    for step in range(steps):
        idx = torch.randint(len(frames), (batch,), generator=g)
        x = (torch.from_numpy(frames[idx.numpy()]).permute(0, 3, 1, 2).float() / 127.5 - 1).to(device)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g).to(device)
        rec = vae.decode(z).sample
        w = weight[idx].to(device)
        err = (rec - x).abs() + (rec - x) ** 2
        loss = (err * w).mean() + 1e-6 * post.kl().mean()
        if edge_weight:
            (ry, rx), (xy, xx) = _image_gradients(rec), _image_gradients(x)
            loss = loss + edge_weight * (((ry - xy).abs() * w[..., 1:, :]).mean()
                                         + ((rx - xx).abs() * w[..., :, 1:]).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            _log(f"autoencoder step {step + 1}/{steps} loss {loss.item():.4f}")
    vae.eval().requires_grad_(False)
    return vae.cpu()


@torch.no_grad()
def calibrate_latent_scale(vae, frames: np.ndarray, target_scale: float) -> float:
    """Rescale the latent space so latents x target_scale have unit std; returns the factor applied."""
    x = torch.from_numpy(frames[:: max(1, len(frames) // 512)]).permute(0, 3, 1, 2).float() / 127.5 - 1
    std = float((vae.encode(x).latent_dist.mean * target_scale).std())
    k = 1.0 / std
    c = vae.config.latent_channels
    vae.quant_conv.weight[:c] *= k  # the mean half of (mean, logvar)
    vae.quant_conv.bias[:c] *= k
    vae.quant_conv.bias[c:] += 2 * float(np.log(k))  # the std scales with the mean
    vae.post_quant_conv.weight /= k
    return k


# ---------------------------------------------------------------- audio encoder
def audio_encoder_config():
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=AUDIO_HIDDEN, num_hidden_layers=AUDIO_LAYERS, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=False,
        feat_extract_norm="group", hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, vocab_size=32,
    )


def train_audio_encoder(clips: list[tuple[torch.Tensor, np.ndarray]], steps: int, seed: int = 0, lr: float = 2e-3):
    """clips: (normalised 16 kHz mono waveform [N], mouth envelope per 25 fps frame [T]) -> Wav2Vec2Model (eval).

    The features go through the pack's wav2vec2 forward (CNN -> frame rate -> encoder); a linear
    probe on every layer's output predicts the envelope, as AudioProj will read all layers.
    """
    from transformers import Wav2Vec2Model

    wav = wav2vec
    torch.manual_seed(seed)
    model = Wav2Vec2Model(audio_encoder_config())
    probe = torch.nn.Linear(AUDIO_HIDDEN * AUDIO_LAYERS, 1)
    params = list(model.parameters()) + list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        total = 0.0
        opt.zero_grad(set_to_none=True)
        for k in torch.randint(len(clips), (4,), generator=g).tolist():
            x, env = clips[k]
            hidden = wav.encode_frames(model, wav.to_frames(wav.cnn_features(model, x), len(env)))  # [T, L, H]
            pred = probe(hidden.reshape(len(env), -1))[:, 0]
            loss = F.mse_loss(pred, torch.as_tensor(env, dtype=torch.float32)) / 4
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            _log(f"audio encoder step {step + 1}/{steps} loss {total:.4f}")
    return model.eval().requires_grad_(False)


def save_audio_encoder(model, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000},
        indent=1))


# ---------------------------------------------------------------- text encoder
def text_encoder_config():
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=77, projection_dim=TEXT_HIDDEN,
                          attention_dropout=0.0, dropout=0.0)


def train_text_encoder(tokenizer_dir: Path, steps: int, seed: int = 0, lr: float = 3e-3):
    """A CLIPTextModel whose token states tell the eight emotions apart (training captions only)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    texts, labels = [], []
    for c, emotion in enumerate(EMOTIONS):
        for text in captions(emotion, "train"):
            texts.append(text)
            labels.append(c)
    ids = tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
    labels = torch.tensor(labels)
    torch.manual_seed(seed)
    model = CLIPTextModel(text_encoder_config())
    head = torch.nn.Linear(TEXT_HIDDEN, len(EMOTIONS))
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(ids), (64,), generator=g)
        states = model(input_ids=ids[idx]).last_hidden_state  # [B, 77, H]: every position carries the class
        logits = head(states).mean(1)
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            _log(f"text encoder step {step + 1}/{steps} loss {loss.item():.4f}")
    model.eval().requires_grad_(False)
    return model, head.eval().requires_grad_(False), tokenizer


@torch.no_grad()
def text_accuracy(model, head, tokenizer, split: str) -> float:
    hits = total = 0
    for c, emotion in enumerate(EMOTIONS):
        texts = captions(emotion, split)
        ids = tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
        pred = head(model(input_ids=ids).last_hidden_state).mean(1).argmax(-1)
        hits += int((pred == c).sum())
        total += len(texts)
    return hits / total


def save_text_encoder(model, tokenizer_dir: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(folder, safe_serialization=True)  # half the bytes; loaders cast to fp32
    model.float()
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, folder / name)
