"""Stage B: turn a text's aligned vector(s) into K soft slots and inject them into a prompt.

The slots replace the input embeddings at the K placeholder positions the prompt builder
reserved; the decoder sees them as ordinary context. Norms are matched to the decoder's median
input-embedding norm so the frozen decoder treats them as native tokens.

Two slot sources (`LLINKConfig.slot_source`):
- `pooled` (the paper's): one mean-pooled vector, expanded to K slots by one linear map. Whatever
  the mean washes out (word order, digits, names) cannot reach the decoder.
- `segments`: the encoder's token states split into K contiguous spans; each span's mean goes
  through the same Stage A projector, then one shared map per slot (plus the pooled vector as
  context). Slot j then carries the j-th part of the text.
- `resampler`: K learned queries cross-attend over the projected token states (at most
  `positions` of them: a longer text is read as that many contiguous span means), Perceiver /
  Q-Former style; each query starts as the pooled vector, so slot 0 carries the Stage A vector.
K may differ per text (`PromptConfig.k_rule`): slot tensors are padded to the largest K and each
prompt says how many of them it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

SOURCES = ("pooled", "segments", "resampler")


class SlotExpander(nn.Module):
    """`pooled`: [B, hidden] -> [B, K, hidden]; with a K rule, K is the rule's maximum and a text
    with fewer slots reads the first ones."""

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


class SegmentExpander(nn.Module):
    """`segments`: span vectors [B, K, hidden] (each projected by Stage A) and the pooled aligned
    vector [B, hidden] -> [B, K, hidden]. One map shared by every slot, so a text of any K uses
    the same weights; a learned bias per slot index says where in the text a slot sits."""

    def __init__(self, hidden: int, k: int, target_norm: float = 1.0, init_noise: float = 0.02):
        super().__init__()
        self.k, self.hidden = k, hidden
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.gain = nn.Parameter(torch.ones(()))
        self.proj = nn.Linear(hidden, hidden)
        # The pooled vector as context for every slot; zero at first, so training starts from
        # the spans alone (each already in the space Stage A aligned).
        self.context = nn.Linear(hidden, hidden, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(hidden) + init_noise * torch.randn(hidden, hidden))
            self.proj.bias.zero_()
            self.context.weight.zero_()
        self.slot_bias = nn.Parameter(init_noise * torch.randn(k, hidden))
        self.log_scale = nn.Parameter(torch.tensor(float(target_norm)).log())

    def forward(self, spans: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        k = spans.shape[1]
        x = self.gain * self.norm(spans.float())
        slots = self.proj(x) + self.context(self.norm(pooled.float())).unsqueeze(1) + self.slot_bias[:k]
        return F.normalize(slots, dim=-1) * self.log_scale.exp()


def _heads(hidden: int) -> int:
    """Attention heads of ~64 dimensions that divide `hidden` (tiny test models get one)."""
    h = max(1, hidden // 64)
    while hidden % h:
        h -= 1
    return h


class _CrossBlock(nn.Module):
    """Pre-norm cross-attention + MLP, both residual with their output layers zeroed: a fresh
    block is the identity, so an untrained resampler gives every slot the pooled vector."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp = (nn.LayerNorm(hidden) for _ in range(3))
        self.attn = nn.MultiheadAttention(hidden, _heads(hidden), batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
        with torch.no_grad():
            self.attn.out_proj.weight.zero_()
            self.attn.out_proj.bias.zero_()
            self.mlp[2].weight.zero_()
            self.mlp[2].bias.zero_()

    def forward(self, h: torch.Tensor, states: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(states)
        h = h + self.attn(self.norm_q(h), kv, kv, key_padding_mask=pad, need_weights=False)[0]
        return h + self.mlp(self.norm_mlp(h))


class Resampler(nn.Module):
    """`resampler`: projected token states [B, N, hidden] (mask [B, N], True where real) and the
    pooled aligned vector [B, hidden] -> [B, K, hidden]. Query j starts as the pooled vector plus
    a learned offset (zero for slot 0) and gathers what it needs from the tokens."""

    def __init__(self, hidden: int, k: int, target_norm: float = 1.0, init_noise: float = 0.02, layers: int = 1,
                 positions: int = 32):
        super().__init__()
        self.k, self.hidden, self.positions = k, hidden, positions
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.gain = nn.Parameter(torch.ones(()))
        queries = init_noise * torch.randn(k, hidden)
        queries[0] = 0.0
        self.queries = nn.Parameter(queries)
        self.blocks = nn.ModuleList(_CrossBlock(hidden) for _ in range(layers))
        self.proj = nn.Linear(hidden, hidden)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(hidden))
            self.proj.bias.zero_()
        self.log_scale = nn.Parameter(torch.tensor(float(target_norm)).log())

    def forward(self, states: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        h = (self.gain * self.norm(pooled.float())).unsqueeze(1) + self.queries
        states = self.norm(states.float())
        pad = ~mask.to(states.device, torch.bool)
        for block in self.blocks:
            h = block(h, states, pad)
        return F.normalize(self.proj(h), dim=-1) * self.log_scale.exp()


def pad_states(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_i, H] tensors -> ([N, max n, H] zero-padded, mask [N, max n], True where real)."""
    out = pad_slots(rows)
    lengths = torch.tensor([r.shape[0] for r in rows])
    return out, torch.arange(out.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)


@dataclass
class Injection:
    """What LLINK puts in the prompts of a batch of texts: slots [N, K_max, H] (row i's first k[i]
    are read) and each text's verbatim hints (None without the hint pathway). A control that feeds
    text i another text's injection reorders all three together (`take`)."""

    slots: torch.Tensor
    k: list[int]
    hints: list[list[str] | None]

    def __len__(self) -> int:
        return len(self.k)

    def take(self, order, hints_of: "Injection | None" = None) -> "Injection":
        """Rows in `order`; with hints_of, the hints stay those of `hints_of` (slots-only control)."""
        order = [int(i) for i in order]
        hints = list(hints_of.hints) if hints_of is not None else [self.hints[i] for i in order]
        return Injection(self.slots[torch.tensor(order, dtype=torch.long)], [self.k[i] for i in order], hints)

    def zeroed(self) -> "Injection":
        return Injection(torch.zeros_like(self.slots), list(self.k), list(self.hints))

    def prompt_kwargs(self) -> list[dict]:
        """Per text, what PromptBuilder.chat takes besides the instruction: its K and hints."""
        return [{"k": k, "hints": h} for k, h in zip(self.k, self.hints)]

    def prompts(self, builder, instruction: str, **kw) -> list:
        """One prompt per text, each reserving its own K and carrying its own hints."""
        return [builder.chat(instruction, k=k, hints=h, **kw) for k, h in zip(self.k, self.hints)]

    def prompt(self, builder, i: int, instruction: str, **kw):
        return builder.chat(instruction, k=self.k[i], hints=self.hints[i], **kw)


def median_embedding_norm(embeddings: nn.Embedding) -> float:
    return float(embeddings.weight.detach().float().norm(dim=-1).median())


def inject(embeds: torch.Tensor, slot_mask: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Replace the rows of embeds [B, T, H] where slot_mask [B, T] is True with slots [B, K, H]:
    row b's n_b slot positions take its first n_b slots, in order (K per text: a padded slot
    tensor). A prompt reserving more positions than there are slots is an error."""
    b, k, _ = slots.shape
    counts = slot_mask.sum(1)
    if len(counts) != b or not bool(((counts >= 1) & (counts <= k)).all()):
        raise ValueError(f"each prompt must reserve between 1 and {k} slot positions, found {counts.tolist()}")
    used = torch.arange(k, device=slots.device).unsqueeze(0) < counts.to(slots.device).unsqueeze(1)
    out = embeds.clone()
    out[slot_mask] = slots[used].to(embeds.dtype)
    return out


def pad_slots(rows: list[torch.Tensor]) -> torch.Tensor:
    """[k_i, H] tensors -> [N, max k, H], zero past each row's k (never read: see inject)."""
    k = max(r.shape[0] for r in rows)
    out = rows[0].new_zeros(len(rows), k, rows[0].shape[-1])
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


def chunk_targets(token_ids: list[list[int]], embeddings: nn.Embedding, k) -> torch.Tensor:
    """[N, K, H]: for each English sentence, the mean input embedding of each of K contiguous
    chunks of its tokens (a sentence shorter than K repeats tokens), i.e. what K slots would
    look like if they were the sentence's own words squeezed into K positions. `k` is one K for
    all, or one per sentence (rows past a sentence's own K are zero)."""
    w = embeddings.weight.detach().float()
    ks = [k] * len(token_ids) if isinstance(k, int) else list(k)
    out = torch.zeros(len(token_ids), max(ks, default=1), w.shape[1])
    for i, (ids, ki) in enumerate(zip(token_ids, ks)):
        n = len(ids)
        t = torch.tensor(ids)
        for j in range(ki):
            lo, hi = (j * n) // ki, ((j + 1) * n) // ki
            out[i, j] = w[t[lo:hi]].mean(0) if hi > lo else w[t[min(lo, n - 1)]]
    return out


def _ridge(x: torch.Tensor, y: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(W, b, R^2) of the ridge regression y ~ x W + b, in float64."""
    x, y = x.double(), y.double()
    n, h = x.shape
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    w = torch.linalg.solve(xc.T @ xc + ridge * n * torch.eye(h, dtype=x.dtype) / h, xc.T @ yc)
    pred = xc @ w + ym
    return w, ym - xm @ w, 1.0 - float((pred - y).pow(2).sum() / yc.pow(2).sum())


@torch.no_grad()
def fit_expander(expander: SlotExpander, aligned: torch.Tensor, targets: torch.Tensor, ridge: float = 1.0) -> float:
    """Initialise the expander by ridge regression from aligned vectors to `targets` [N, K, H]
    (see chunk_targets); returns the fraction of target variance explained (R^2).

    A closed-form start: before any gradient step the slots already resemble the embeddings of
    the English words, which a frozen decoder knows how to read.
    """
    x = expander.norm(aligned.float())
    w, b, r2 = _ridge(x, targets.reshape(len(x), -1), ridge)
    expander.gain.fill_(1.0)
    expander.proj.weight.copy_(w.T.float())
    expander.proj.bias.copy_(b.float())
    expander.slot_bias.zero_()
    return r2


@torch.no_grad()
def fit_segment_expander(expander: SegmentExpander, spans: torch.Tensor, k: list[int], targets: torch.Tensor,
                         ridge: float = 1.0) -> float:
    """The same closed-form start for `segments`: one shared map from each projected span [N, K, H]
    (row i's first k[i]) to the embedding mean of the matching chunk of the English (targets,
    chunk_targets with the same k). Returns R^2."""
    used = torch.arange(spans.shape[1]).unsqueeze(0) < torch.tensor(k).unsqueeze(1)
    w, b, r2 = _ridge(expander.norm(spans.float())[used], targets[used], ridge)
    expander.gain.fill_(1.0)
    expander.proj.weight.copy_(w.T.float())
    expander.proj.bias.copy_(b.float())
    expander.context.weight.zero_()
    expander.slot_bias.zero_()
    return r2


@torch.no_grad()
def fit_resampler(resampler: Resampler, aligned: torch.Tensor, targets: torch.Tensor, ridge: float = 1.0) -> float:
    """The closed-form start for `resampler`: its output map fitted from the pooled vector (what
    every fresh query holds) to the mean embedding of the English sentence (targets [N, H],
    chunk_targets with k=1). The queries then learn, from the tokens, what differs per slot."""
    w, b, r2 = _ridge(resampler.norm(aligned.float()), targets, ridge)
    resampler.gain.fill_(1.0)
    resampler.proj.weight.copy_(w.T.float())
    resampler.proj.bias.copy_(b.float())
    return r2
