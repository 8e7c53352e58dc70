"""The emocast_core names training uses, imported relatively inside the pack.

`training` runs both as a sub-package of the pack (ComfyUI nodes) and as a
top-level package (`python -m training.train` from the repo root, tests); in
the second case `..emocast_core` would reach above the top level, so the core
is imported as the sibling top-level package it then is.
"""
# ruff: noqa: F401
if __package__ and "." in __package__:
    from ..emocast_core.config import EmoCASTConfig
    from ..emocast_core.deterministic_weights import fill_deterministic
    from ..emocast_core.models import EmoCASTNet, ReferenceBank
    from ..emocast_core.models.attention_processors import ReferenceReadProcessor, ReferenceWriteProcessor
    from ..emocast_core.pipeline.scheduler import make_scheduler
    from ..emocast_core.text.presets import PRESET_NAMES, preset_name
    from ..emocast_core.weights import atomic_save, load_net, read_safetensors
else:
    from emocast_core.config import EmoCASTConfig
    from emocast_core.deterministic_weights import fill_deterministic
    from emocast_core.models import EmoCASTNet, ReferenceBank
    from emocast_core.models.attention_processors import ReferenceReadProcessor, ReferenceWriteProcessor
    from emocast_core.pipeline.scheduler import make_scheduler
    from emocast_core.text.presets import PRESET_NAMES, preset_name
    from emocast_core.weights import atomic_save, load_net, read_safetensors
