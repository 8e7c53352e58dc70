"""Datasets, progressive stages and the LoRA trainer for EmoCAST."""
