"""The tabular network: embeddings for categorical columns plus an MLP, optionally wide-and-deep.

Deep part: each categorical index goes through its own embedding (width
min(max_dim, round(1.6 * cardinality ** 0.56)), the fast.ai rule of thumb), concatenated with the
standardised numeric columns, then Linear-ReLU-Dropout layers and one output unit. Wide part
(wide-and-deep): a linear model over the numeric columns plus one learned weight per category,
added to the deep output. The output is a logit (binary) or the prediction (regression).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    numeric: int
    cardinalities: tuple[int, ...]
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    max_embedding_dim: int = 16
    wide: bool = False

    def embedding_dims(self) -> tuple[int, ...]:
        return tuple(max(1, min(self.max_embedding_dim, round(1.6 * c ** 0.56))) for c in self.cardinalities)


class TabularNet(nn.Module):
    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        dims = config.embedding_dims()
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(config.cardinalities, dims))
        width = config.numeric + sum(dims)
        layers: list[nn.Module] = []
        for hidden in config.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.deep = nn.Sequential(*layers)
        if config.wide:
            self.wide_numeric = nn.Linear(config.numeric, 1, bias=False) if config.numeric else None
            self.wide_categorical = nn.ModuleList(nn.Embedding(c, 1) for c in config.cardinalities)
            for embedding in self.wide_categorical:
                nn.init.zeros_(embedding.weight)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        out = self.deep(torch.cat(parts, dim=1)).squeeze(1)
        if self.config.wide:
            if self.wide_numeric is not None:
                out = out + self.wide_numeric(numeric).squeeze(1)
            for i, emb in enumerate(self.wide_categorical):
                out = out + emb(categorical[:, i]).squeeze(1)
        return out
