"""Task heads: one per classification dataset, one shared ranking head, one shared span head."""

from __future__ import annotations

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """Dense-tanh-dropout-projection over a pooled sentence vector (also used for regression).

    Args:
        hidden_size: encoder width.
        num_outputs: classes (1 for regression, 1 for the ranking head's score).
        dropout: dropout before each projection.
    """

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(x))


class SpanHead(nn.Module):
    """Start and end logits for every token.

    Args:
        hidden_size: encoder width.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(hidden)
