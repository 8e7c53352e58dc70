"""The pack's own socket types, declared once: what one node hands to the next."""
from comfy_api.latest import io

EmoCASTModel = io.Custom("EMOCAST_MODEL")  # Load EmoCAST -> sampler, LoRA, training
Portrait = io.Custom("EMOCAST_PORTRAIT")  # Portrait Prep -> sampler
AudioFeatures = io.Custom("EMOCAST_AUDIO")  # Audio Encode -> sampler
Emotion = io.Custom("EMOCAST_EMOTION")  # Emotion Prompt -> sampler
Dataset = io.Custom("EMOCAST_DATASET")  # Prepare Training Data -> Train LoRA
Trainer = io.Custom("EMOCAST_TRAINER")  # Train LoRA -> next stage, Save LoRA
LoraModel = io.Custom("LORA_MODEL")  # core's LoRA socket: Train LoRA -> Apply EmoCAST LoRA
LossMap = io.Custom("LOSS_MAP")  # core's loss socket: Train LoRA -> Plot Loss Graph
