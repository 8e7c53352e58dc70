"""The embedded demo model and its world: a tiny EmoCAST and its small encoders, trained by the pack on a
synthetic set of drawn talking faces, and the toy benchmark that scores it.

    python -m training.demo.build --tokenizer ComfyUI/comfy/sd1_tokenizer [--work DIR] [--out demo_model]

builds one from nothing: synthetic videos, encoders, training cache, the three stages (`--tokenizer` is
any CLIP tokenizer folder; `--work` defaults to ~/.cache/comfyui-emocast/demo-build, `--out` to the
repository's demo_model/).  The shipped model's exact commands are in demo_model/README.md.

The synthetic set: `synthetic_faces.py` (drawn portraits speaking in the eight MEAD emotions, drawn by
`face_drawing.py`), `speech.py` (espeak-ng sentences and their mouth envelope), `synthetic_captions.py`;
`synthetic.py` makes a small synthetic training cache for tests.  The build: `encoders.py` trains the
three small helpers (autoencoder, wav2vec2-layout audio encoder, CLIP-layout text encoder), `data.py`
turns the synthetic videos into a training cache with dataset preparation, `pretrain.py` runs the
progressive stages on all weights of a stage's module group, and `build.py` ties them together
(`bench.py` times its stages).  Scoring: `toybench.py` with `toy_metrics.py`, `generate.py` (the demo
model as a generator), and `baseline.py`, a plain per-frame UNet trained on a build's cache, the
yardstick the benchmark compares the demo model with (`toybench --baseline`).  `figure.py` draws the
README's picture; `assets.py` makes the demo workflow's inputs.
It is a demo: the official weights are the real product.
"""

# The shipped folder is a ComfyUI models/ layout: point extra_model_paths.yaml at it, or copy its folders.
MODEL_FILE = "emocast/emocast_demo.safetensors"
TEXT_DIR = "text_encoders/emocast-demo-text"
AUDIO_DIR = "wav2vec2/emocast-demo-audio"
