"""Architecture configuration of EmoCAST's networks.

The UNet part comes from an SD1.5 `unet/config.json`; EmoCAST adds fixed-width
parts (text/audio token widths, the emotive audio attention, the projections,
the FaceLocator).  Every such width is a field whose default is the official
value, so a small demo model can shrink them while the official and the
parity ("reduced") configurations keep them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

# The SD1.5 `unet/config.json` values EmoCAST's two UNets are built from.
SD15_UNET_CONFIG = {
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": 8,  # SD1.5 means "8 heads" here (diffusers' naming quirk)
    "cross_attention_dim": 768,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
}


@dataclass(frozen=True)
class EmoCASTConfig:
    # --- SD1.5 UNet topology (both UNets) ---
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    num_heads: int = 8
    in_channels: int = 4
    out_channels: int = 4
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    downsample_padding: int = 1
    # --- token widths fixed by the official model ---
    cross_attention_dim: int = 768  # text (CLIP-L) and face tokens
    text_tokens: int = 77
    face_tokens: int = 4
    audio_token_dim: int = 768
    audio_tokens: int = 32
    # --- emotive audio attention (EAA): 8 heads x 80 in the official model ---
    eaa_head_dim: int = 80
    # --- motion modules (AnimateDiff v2 "Vanilla") ---
    motion_max_len: int = 32
    motion_blocks: int = 2  # Temporal_Self x 2
    # --- AudioProj: [5 window, 12 layers, 768] per frame -> 32 x 768 tokens ---
    audio_window: int = 5
    audio_layers: int = 12
    audio_channels: int = 768
    audio_proj_hidden: int = 512
    # --- ImageProj: ArcFace 512 -> 4 x 768 ---
    face_embed_dim: int = 512
    # --- FaceLocator internal channels; its output width is block_out_channels[0] ---
    face_locator_channels: tuple[int, ...] = (16, 32, 64, 128)
    face_locator_in_channels: int = 3
    # --- what the official inference does with its blocks ---
    motion_frames: int = 2
    clip_length: int = 16

    def __post_init__(self):
        if len(self.block_out_channels) != 4:
            raise ValueError("EmoCAST uses the SD1.5 topology: exactly 4 block_out_channels")

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.block_out_channels[0]

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell: the FaceLocator halves the face box once per channel step, to the latent grid
        of the VAE the model was trained with (8, SD's VAE, officially)."""
        return 2 ** (len(self.face_locator_channels) - 1)

    def down_block_channels(self) -> list[tuple[int, int]]:
        """(in, out) channels of the 4 down blocks, in the SD1.5 UNet's order."""
        ch = self.block_out_channels
        return [(ch[max(i - 1, 0)], ch[i]) for i in range(4)]

    def up_block_channels(self) -> list[tuple[int, int, int]]:
        """(skip in, out, previous block's out) channels of the 4 up blocks (diffusers' naming)."""
        rev = list(reversed(self.block_out_channels))
        return [(rev[min(i + 1, 3)], rev[i], rev[max(i - 1, 0)]) for i in range(4)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EmoCASTConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown EmoCAST config keys: {sorted(unknown)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kw)

    @classmethod
    def from_sd15_unet_config(cls, unet_config: dict | str | Path, **overrides) -> "EmoCASTConfig":
        """Build from an SD1.5-style `unet/config.json` (dict or path) plus EmoCAST fields."""
        if not isinstance(unet_config, dict):
            unet_config = json.loads(Path(unet_config).read_text())
        if list(unet_config.get("down_block_types", SD15_UNET_CONFIG["down_block_types"])) != SD15_UNET_CONFIG[
            "down_block_types"
        ] or list(unet_config.get("up_block_types", SD15_UNET_CONFIG["up_block_types"])) != SD15_UNET_CONFIG[
            "up_block_types"
        ]:
            raise ValueError("the UNet config is not of the SD1.5 topology EmoCAST is built on")
        heads = unet_config.get("attention_head_dim", 8)
        if not isinstance(heads, int):
            raise ValueError(f"attention_head_dim must be one int (SD1.5 uses 8), got {heads!r}")
        base = dict(
            block_out_channels=tuple(unet_config.get("block_out_channels", SD15_UNET_CONFIG["block_out_channels"])),
            layers_per_block=unet_config.get("layers_per_block", 2),
            num_heads=heads,
            in_channels=unet_config.get("in_channels", 4),
            out_channels=unet_config.get("out_channels", 4),
            norm_num_groups=unet_config.get("norm_num_groups", 32),
            norm_eps=unet_config.get("norm_eps", 1e-5),
            flip_sin_to_cos=unet_config.get("flip_sin_to_cos", True),
            freq_shift=unet_config.get("freq_shift", 0),
            downsample_padding=unet_config.get("downsample_padding", 1),
            cross_attention_dim=unet_config.get("cross_attention_dim", 768),
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def official(cls) -> "EmoCASTConfig":
        """The released model (SD1.5 widths)."""
        return cls.from_sd15_unet_config(SD15_UNET_CONFIG)

    @classmethod
    def reduced(cls) -> "EmoCASTConfig":
        """The parity-fixture model: SD1.5 with block_out_channels (32, 64, 96, 96)."""
        return cls.from_sd15_unet_config({**SD15_UNET_CONFIG, "block_out_channels": [32, 64, 96, 96]})

    @classmethod
    def tiny(cls) -> "EmoCASTConfig":
        """The reduced UNet with every fixed width shrunk too: the official key set at test size."""
        return cls.reduced().with_(
            cross_attention_dim=64, audio_token_dim=64, audio_channels=64, audio_layers=2, audio_proj_hidden=32,
            eaa_head_dim=8, face_embed_dim=32,
        )

    def with_(self, **changes) -> "EmoCASTConfig":
        return replace(self, **changes)
