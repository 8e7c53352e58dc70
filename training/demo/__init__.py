"""The embedded demo model: a tiny EmoCAST and its small encoders, trained by the pack on the synthetic set.

    python -m training.demo.build OUT      # everything, from the synthetic videos to demo_model/

`encoders.py` trains the three small helpers (autoencoder, wav2vec2-layout audio
encoder, CLIP-layout text encoder), `data.py` turns the synthetic videos into a
training cache with dataset preparation, `pretrain.py` runs the progressive
stages on all weights of a stage's module group, and `build.py` ties them together.
`baseline.py` trains a plain per-frame UNet on a build's cache: the yardstick the
toy benchmark compares the demo model with (`toybench --baseline`).
It is a demo: the official weights are the real product.
"""

# The shipped folder is a ComfyUI models/ layout: point extra_model_paths.yaml at it, or copy its folders.
MODEL_FILE = "emocast/emocast_demo.safetensors"
TEXT_DIR = "text_encoders/emocast-demo-text"
AUDIO_DIR = "wav2vec2/emocast-demo-audio"
