"""Training FLOPs of a transformer, the formula ``bench/flops.py`` measures runs with and ``tests/unit/planning``
checks against ``torch.utils.flop_counter``.

For a micro-batch: 6 x N x T + 12 x L x H x sum(len^2), N the layer stack's parameters (the embedding tables are
lookups), T its tokens, L layers, H the hidden size and ``len`` each sequence's length: the forward and backward of
the matrix products (6 N T) and of attention's two products, which 6 N T leaves out. A forward alone is a third.
"""

from __future__ import annotations


def training_flops(params: float, layers: int, hidden: int, tokens: float, squared_lengths: float) -> float:
    """FLOPs of a forward and backward pass over ``tokens`` tokens whose sequence lengths' squares sum to ``squared_lengths``."""
    return 6 * params * tokens + 12 * layers * hidden * squared_lengths


def forward_flops(params: float, layers: int, hidden: int, tokens: float, squared_lengths: float) -> float:
    """FLOPs of a forward pass alone (evaluation): a third of ``training_flops``."""
    return training_flops(params, layers, hidden, tokens, squared_lengths) / 3
