"""ComfyUI V3 adapters for EmoCAST.

One module per concern; each node only translates ComfyUI types and calls
`emocast_core`.  A node is listed in `NODE_CLASSES` only once it really works.
"""
from comfy_api.latest import ComfyExtension, io

from . import model_folders  # noqa: F401  (registers the pack's model folders)
from .apply_lora import ApplyEmoCASTLoRA
from .audio_encode import AudioEmotiveEncode
from .emotion_prompt import EmotionPromptEncode
from .load_model import LoadEmoCAST
from .portrait_prep import EmoCASTPortraitPrep
from .sampler import EmoCASTSampler
from .sampler_video import EmoCASTSamplerToVideo
from .train_dataset import EmoCASTPrepareDataset
from .train_lora import EmoCASTSaveLoRA, EmoCASTTrainLoRA
from .video_combine import VideoCombine

NODE_CLASSES: list[type[io.ComfyNode]] = [
    LoadEmoCAST,
    ApplyEmoCASTLoRA,
    EmoCASTPortraitPrep,
    EmotionPromptEncode,
    AudioEmotiveEncode,
    EmoCASTSampler,
    EmoCASTSamplerToVideo,
    VideoCombine,
    EmoCASTPrepareDataset,
    EmoCASTTrainLoRA,
    EmoCASTSaveLoRA,
]


class EmoCASTExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES)


async def comfy_entrypoint() -> EmoCASTExtension:
    return EmoCASTExtension()
