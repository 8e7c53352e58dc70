"""CLIP tokenisation exactly as the official inference calls it.

Official: `tokenizer(prompt, max_length=77, padding="max_length")`, no
truncation, so a prompt over 77 tokens crashes inside CLIP's position
embeddings.  We count first and raise a clear error
instead, and never truncate silently.
"""
import torch

MAX_TOKENS = 77          # CLIP's context length, start and end tokens included
CLIP_VOCAB_SIZE = 49408  # openai/clip-vit-large-patch14 BPE vocabulary


def check_tokenizer(tokenizer, where: str) -> None:
    """Assert `tokenizer` is CLIP's BPE tokenizer, padding with its end token.

    A hub id that failed offline can yield a near-empty tokenizer without any
    error, and a tokenizer that pads with another id than openai CLIP-L's
    `<|endoftext|>` would change every padded position of the embedding.
    """
    size = len(tokenizer)
    if size != CLIP_VOCAB_SIZE:
        raise ValueError(f"{where}: tokenizer has {size} tokens, CLIP's has {CLIP_VOCAB_SIZE}; "
                         "it is not the CLIP-L tokenizer (vocab.json + merges.txt of clip-vit-large-patch14).")
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    if pad != eos:
        raise ValueError(f"{where}: tokenizer pads with id {pad}, but CLIP-L pads with its end token {eos} "
                         "(pad_token '<|endoftext|>'); fix tokenizer_config.json / special_tokens_map.json.")
    if tokenizer("")["input_ids"] != [bos, eos]:
        raise ValueError(f"{where}: tokenizer does not frame text with start/end tokens {bos}/{eos}.")


def count_tokens(tokenizer, text: str) -> int:
    """Number of CLIP tokens of `text`, start and end tokens included."""
    return len(tokenizer(text)["input_ids"])


def token_ids(tokenizer, text: str) -> torch.Tensor:
    """[1, 77] int64 ids of `text`, end-token padded; ValueError over 77 tokens."""
    n = count_tokens(tokenizer, text)
    if n > MAX_TOKENS:
        start = text if len(text) <= 80 else text[:80] + "…"
        raise ValueError(f"emotion prompt is {n} CLIP tokens long (start and end tokens included), "
                         f"the limit is {MAX_TOKENS}: shorten it. Prompt ({len(text):,} characters): {start!r}")
    ids = tokenizer(text, max_length=MAX_TOKENS, padding="max_length")["input_ids"]
    assert len(ids) == MAX_TOKENS, f"tokenizer padded to {len(ids)}, not {MAX_TOKENS}"
    return torch.tensor([ids], dtype=torch.long)
