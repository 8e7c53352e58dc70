"""LoRA fine-tuning of EmoCAST: training cache, progressive stages, emotion-aware sampling, trainer.

Plain PyTorch + peft (+ accelerate for the headless multi-GPU entry,
`python -m training.train`); nothing here imports ComfyUI.  Definitions of the
stages, the sampling and the condition dropout: training/README.md.
"""
