"""EmoCAST as a plain PyTorch library: models, audio, text, face, pipeline, weights.

Nothing in this package imports ComfyUI.
"""
__version__ = "0.1.0"
