"""Use ComfyUI's CLIP input (the CLIP-L of an SD1.5/SDXL/Flux checkpoint) as EmoCAST's text encoder.

ComfyUI's own CLIPTextEncode would not give the official E_text: it parses
"(word:1.2)" weights and "embedding:" names, may stop at the penultimate
layer (CLIPSetLastLayer, or SDXL's default), and splits long prompts into
chunks.  We bypass all of that: the CLIP's own Hugging Face tokenizer with
the official call, then the CLIP-L transformer forced to its last layer.
"""
import logging

import torch

import comfy.model_management as mm

from ..emocast_core.text import MAX_TOKENS, check_tokenizer, load_clip_text
from .model_folders import resolve_model_dir

log = logging.getLogger(__name__)

USE_CLIP = "(use clip input)"
CLIP_L_HIDDEN = 768  # what the EmoCAST UNet cross-attends to; tests shrink it


class ComfyClipTextEncoder:
    """`emocast_core.text.TextEncoder` over a ComfyUI `comfy.sd.CLIP` object."""

    name = "clip input (CLIP-L)"

    def __init__(self, clip, expected_hidden: int | None = 768):
        self.clip = clip
        # SD1 keeps CLIP-L as `clip_l`; SDXL, SD3 and Flux do too, beside other encoders.
        self.te = getattr(clip.cond_stage_model, "clip_l", None)
        sd_tokenizer = getattr(clip.tokenizer, "clip_l", None)
        if self.te is None or sd_tokenizer is None or not hasattr(self.te, "set_clip_options"):
            raise ValueError(f"the clip input ({type(clip.cond_stage_model).__name__}) holds no CLIP-L text "
                             "encoder. Connect the CLIP of an SD1.5 checkpoint, or choose a text_encoder folder.")
        self.tokenizer = sd_tokenizer.tokenizer
        check_tokenizer(self.tokenizer, "clip input")
        hidden = self.te.transformer.get_input_embeddings().weight.shape[1]
        if expected_hidden is not None and hidden != expected_hidden:
            raise ValueError(f"the clip input's CLIP-L has hidden size {hidden}, EmoCAST needs {expected_hidden}.")
        if getattr(clip, "layer_idx", None) is not None:
            log.info("EmoCAST: ignoring CLIPSetLastLayer(%s) on the clip input; EmoCAST uses the final layer.",
                     clip.layer_idx)

    @torch.no_grad()
    def encode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """[B,77] ids → [B,77,H] fp32 on CPU: final layer, no attention mask."""
        assert ids.shape[-1] == MAX_TOKENS
        self.clip.load_model()  # applies CLIP LoRA patches, moves to the load device
        te = self.te
        saved = te.enable_attention_masks, te.zero_out_masked
        # layer None → "last": the output after the final LayerNorm.  ComfyUI
        # resets these options itself before every encode; we restore them too.
        # execution_device: ComfyUI's dynamic-VRAM patcher (0.7+ on NVIDIA) may leave
        # the weights on the offload device and run wherever this names (older
        # ComfyUI ignores the option and runs where the weights are).
        te.set_clip_options({"layer": None, "execution_device": self.clip.patcher.load_device})
        te.enable_attention_masks, te.zero_out_masked = False, False
        try:
            if te.layer != "last":
                raise ValueError(f"the clip input's CLIP-L cannot be set to its last layer (layer={te.layer!r}).")
            z = te([[int(i) for i in row] for row in ids])[0]
        finally:
            te.enable_attention_masks, te.zero_out_masked = saved
            te.reset_clip_options()
        return z.float().cpu()


def text_encoder_for(text_encoder: str, clip):
    """The text source a node chose: a models/text_encoders folder, else the connected ComfyUI CLIP."""
    if text_encoder != USE_CLIP:
        path = resolve_model_dir("text_encoders", text_encoder, input_name="text_encoder")
        # Any width: small demo models bring their own encoder; the sampler checks it against the model.
        return load_clip_text(path, device=mm.text_encoder_device(), dtype=torch.float32, expected_hidden=None)
    if clip is None:
        raise ValueError(f"clip: not connected, and text_encoder is {USE_CLIP!r}. Connect a CLIP (e.g. from "
                         "Load Checkpoint with SD1.5) or choose a folder of models/text_encoders/ in text_encoder.")
    return ComfyClipTextEncoder(clip, expected_hidden=CLIP_L_HIDDEN)
