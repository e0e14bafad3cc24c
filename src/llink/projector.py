"""Stage A projector: encoder vector -> decoder hidden space (in -> 4*in -> hidden)."""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_mult: int = 4, dropout: float = 0.1):
        super().__init__()
        # e5 cosines are bunched (~0.85 for unrelated sentences): centring on the training mean
        # removes the shared direction before the MLP sees it. Set by `fit_centre`, saved as a buffer.
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_mult * in_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_mult * in_dim, out_dim),
            nn.LayerNorm(out_dim),
        )
        self.in_dim, self.out_dim = in_dim, out_dim

    @torch.no_grad()
    def fit_centre(self, x: torch.Tensor) -> None:
        self.in_mean.copy_(x.float().mean(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - self.in_mean)
