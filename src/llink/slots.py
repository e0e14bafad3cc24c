"""Stage B: turn one aligned vector into K soft slots and inject them into a prompt.

The slots replace the input embeddings at the K placeholder positions the prompt builder
reserved; the decoder sees them as ordinary context. Norms are matched to the decoder's median
input-embedding norm so the frozen decoder treats them as native tokens.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SlotExpander(nn.Module):
    def __init__(self, hidden: int, k: int, target_norm: float = 1.0, init_noise: float = 0.02):
        super().__init__()
        self.k, self.hidden = k, hidden
        # Parameter-free LayerNorm + learned gain on the aligned vector (as the authors did): the
        # expander sees a well-scaled input whatever the teacher's normalisation was.
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.gain = nn.Parameter(torch.ones(()))
        self.proj = nn.Linear(hidden, k * hidden)
        # Start with every slot a copy of the aligned vector plus a little noise: a Stage A
        # projector's output is then what the decoder first sees, not random directions.
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(hidden).repeat(k, 1) + init_noise * torch.randn(k * hidden, hidden))
            self.proj.bias.zero_()
        self.slot_bias = nn.Parameter(init_noise * torch.randn(k, hidden))
        # The slot scaler: one learned log-norm, initialised to the median embedding norm.
        self.log_scale = nn.Parameter(torch.tensor(float(target_norm)).log())

    def forward(self, aligned: torch.Tensor) -> torch.Tensor:
        """[B, hidden] -> [B, K, hidden] with every slot's norm equal to the learned scale."""
        x = self.gain * self.norm(aligned.float())
        slots = self.proj(x).view(-1, self.k, self.hidden) + self.slot_bias
        return F.normalize(slots, dim=-1) * self.log_scale.exp()


def median_embedding_norm(embeddings: nn.Embedding) -> float:
    return float(embeddings.weight.detach().float().norm(dim=-1).median())


def inject(embeds: torch.Tensor, slot_mask: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Replace the rows of embeds [B, T, H] where slot_mask [B, T] is True with slots [B, K, H]
    (in order). Every row must hold exactly K slot positions."""
    b, k, _ = slots.shape
    counts = slot_mask.sum(1)
    if not bool((counts == k).all()):
        raise ValueError(f"each prompt must reserve exactly {k} slot positions, found {counts.tolist()}")
    out = embeds.clone()
    out[slot_mask] = slots.reshape(b * k, -1).to(embeds.dtype)
    return out


def chunk_targets(token_ids: list[list[int]], embeddings: nn.Embedding, k: int) -> torch.Tensor:
    """[N, K, H]: for each English sentence, the mean input embedding of each of K contiguous
    chunks of its tokens (a sentence shorter than K repeats tokens), i.e. what K slots would
    look like if they were the sentence's own words squeezed into K positions."""
    w = embeddings.weight.detach().float()
    out = torch.zeros(len(token_ids), k, w.shape[1])
    for i, ids in enumerate(token_ids):
        n = len(ids)
        t = torch.tensor(ids)
        for j in range(k):
            lo, hi = (j * n) // k, ((j + 1) * n) // k
            out[i, j] = w[t[lo:hi]].mean(0) if hi > lo else w[t[min(lo, n - 1)]]
    return out


@torch.no_grad()
def fit_expander(expander: SlotExpander, aligned: torch.Tensor, targets: torch.Tensor, ridge: float = 1.0) -> float:
    """Initialise the expander by ridge regression from aligned vectors to `targets` [N, K, H]
    (see chunk_targets); returns the fraction of target variance explained (R^2).

    A closed-form start: before any gradient step the slots already resemble the embeddings of
    the English words, which a frozen decoder knows how to read.
    """
    x = expander.norm(aligned.float()).double()
    n, h = x.shape
    y = targets.reshape(n, -1).double()
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    w = torch.linalg.solve(xc.T @ xc + ridge * n * torch.eye(h, dtype=x.dtype) / h, xc.T @ yc)  # [H, K*H]
    b = ym - xm @ w
    pred = xc @ w + ym
    r2 = 1.0 - float((pred - y).pow(2).sum() / yc.pow(2).sum())
    expander.gain.fill_(1.0)
    expander.proj.weight.copy_(w.T.float())
    expander.proj.bias.copy_(b.float())
    expander.slot_bias.zero_()
    return r2
