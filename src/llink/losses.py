"""Training losses for Stage A (alignment) and Stage B (slot usage), plus the gathers they need.

Every similarity here is a cosine: vectors are L2-normalised inside the loss, so callers may
pass raw projector outputs and raw teacher states.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "gather_with_grad",
    "gather_no_grad",
    "TeacherQueue",
    "info_nce",
    "direction_loss",
    "log_norm_loss",
    "usage_contrast",
    "temperature_at",
    "answer_loss",
    "answer_logits",
    "answer_ce",
    "token_kl",
]


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class _GatherWithGrad(torch.autograd.Function):
    # Own Function (public collectives only): torch.distributed.nn.functional.all_gather is
    # deprecated, and its gloo backward goes through all_to_all.

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        # Every rank's loss may depend on this shard: sum their gradients, keep our rows.
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate every rank's ``x`` along dim 0, in rank order; identity on one process.

    The backward sums, over ranks, the gradient each rank's loss sends to this shard. When every
    rank computes the same loss over the gathered batch, the shard's gradient is therefore
    world_size x the single-loss gradient, which DDP's gradient averaging cancels exactly (the
    open_clip "replace own slice" trick comes out 1/world_size too small instead). All ranks
    must pass the same shape (use drop_last).
    """
    if _world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate every rank's ``x`` along dim 0 without autograd (for queue updates)."""
    if _world_size() == 1:
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


class TeacherQueue:
    """FIFO ring buffer of teacher vectors (fp16) with one int64 pair id per entry.

    Vectors are L2-normalised before storage by default: the contrastive loss only uses their
    direction, and a unit vector cannot overflow fp16 (raw decoder states have outlier
    dimensions). The ids let the loss mask queue entries that are the query's own pair or a
    duplicate string. Storage is allocated on the first enqueue, on that batch's device.
    """

    def __init__(self, size: int = 32768, *, normalize: bool = True):
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.size = int(size)
        self.normalize = normalize
        self.vectors: Tensor | None = None  # [size, d] fp16
        self.ids: Tensor | None = None  # [size] int64, -1 where empty
        self.ptr = 0  # next slot to overwrite
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    @torch.no_grad()
    def enqueue(self, vectors: Tensor, ids: Tensor) -> None:
        vectors = vectors.detach()
        ids = torch.as_tensor(ids, dtype=torch.int64, device=vectors.device).reshape(-1)
        if vectors.ndim != 2 or ids.numel() != vectors.shape[0]:
            raise ValueError(
                f"enqueue needs vectors [n, d] and n ids, got {tuple(vectors.shape)} and {ids.numel()}"
            )
        if self.vectors is None:
            self.vectors = torch.zeros(self.size, vectors.shape[1], dtype=torch.float16, device=vectors.device)
            self.ids = torch.full((self.size,), -1, dtype=torch.int64, device=vectors.device)
        elif vectors.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"queue holds {self.vectors.shape[1]}-d vectors, got {vectors.shape[1]}-d")
        if self.normalize:
            vectors = F.normalize(vectors.float(), dim=-1)
        # A batch larger than the queue: only its newest entries would survive anyway.
        vectors, ids = vectors[-self.size :], ids[-self.size :]
        n = vectors.shape[0]
        slots = (self.ptr + torch.arange(n, device=self.vectors.device)) % self.size
        self.vectors[slots] = vectors.to(self.vectors.device, torch.float16)
        self.ids[slots] = ids.to(self.ids.device)
        self.ptr = (self.ptr + n) % self.size
        self.filled = min(self.size, self.filled + n)

    def get(self) -> tuple[Tensor, Tensor]:
        """Filled entries as (float32 [n, d], int64 [n]), in storage order (not age order)."""
        if self.vectors is None:
            return torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64)
        return self.vectors[: self.filled].float(), self.ids[: self.filled].clone()

    def to(self, device) -> "TeacherQueue":
        if self.vectors is not None:
            self.vectors, self.ids = self.vectors.to(device), self.ids.to(device)
        return self

    def state_dict(self) -> dict:
        return {
            "size": torch.tensor(self.size),
            "ptr": torch.tensor(self.ptr),
            "filled": torch.tensor(self.filled),
            "normalize": torch.tensor(self.normalize),
            "vectors": None if self.vectors is None else self.vectors.cpu(),
            "ids": None if self.ids is None else self.ids.cpu(),
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"checkpoint queue size {int(state['size'])} != configured {self.size}")
        device = self.vectors.device if self.vectors is not None else "cpu"
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
        self.normalize = bool(state.get("normalize", self.normalize))
        v, i = state["vectors"], state["ids"]
        self.vectors = None if v is None else v.to(device, torch.float16).clone()
        self.ids = None if i is None else i.to(device, torch.int64).clone()


def _same_id(a: Tensor, b: Tensor) -> Tensor:
    return a.reshape(-1, 1) == b.reshape(1, -1)


def info_nce(
    q: Tensor,
    k: Tensor,
    temperature: float,
    *,
    queue: Tensor | None = None,
    queue_ids: Tensor | None = None,
    q_ids: Tensor | None = None,
    k_ids: Tensor | None = None,
    hard_k: int | None = 256,
    symmetric: bool = True,
) -> Tensor:
    """InfoNCE on cosine similarities; q[i] and k[i] are the positive pair.

    q->k: each query scores the in-batch keys plus the queue (teacher vectors). With ``hard_k``
    and a queue longer than that, each query keeps only its own hard_k most similar queue
    entries (per-query mining; the authors ranked by batch-mean similarity, which serves most
    queries badly). k->q (when ``symmetric``): in-batch only, since the queue holds teacher-side
    vectors alone. The result is the mean of the two directions.

    False negatives are masked to -inf: in-batch entry j != i when it shares q_ids or k_ids with
    pair i (duplicate Khmer or English string), and any queue entry whose id equals pair i's key
    id (k_ids, falling back to q_ids). Simplest use: one group id per pair, duplicates of either
    side merged, passed as q_ids (or both). The positive itself is never masked, so the loss stays
    finite even if the current batch was already enqueued.
    """
    # Similarities in fp32: at temperature 0.01 bf16 logits would be too coarse.
    qn = F.normalize(q.float(), dim=-1)
    kn = F.normalize(k.float(), dim=-1)
    b = qn.shape[0]
    if kn.shape[0] != b:
        raise ValueError(f"q and k must pair up row by row, got {qn.shape[0]} and {kn.shape[0]} rows")
    target = torch.arange(b, device=qn.device)
    eye = torch.eye(b, dtype=torch.bool, device=qn.device)

    fn = torch.zeros(b, b, dtype=torch.bool, device=qn.device)
    for ids in (q_ids, k_ids):
        if ids is not None:
            fn |= _same_id(torch.as_tensor(ids, device=qn.device), torch.as_tensor(ids, device=qn.device))
    fn &= ~eye

    logits = (qn @ kn.T / temperature).masked_fill(fn, float("-inf"))
    parts = [logits]
    if queue is not None and queue.shape[0] > 0:
        qk = F.normalize(queue.detach().float().to(qn.device), dim=-1)
        ql = qn @ qk.T / temperature
        own = k_ids if k_ids is not None else q_ids
        if own is not None and queue_ids is not None:
            own = torch.as_tensor(own, device=qn.device)
            ql = ql.masked_fill(_same_id(own, torch.as_tensor(queue_ids, device=qn.device)), float("-inf"))
        if hard_k is not None and ql.shape[1] > hard_k:
            # Selection is not differentiable, the selected logits are.
            ql = ql.topk(hard_k, dim=1).values
        parts.append(ql)
    loss = F.cross_entropy(torch.cat(parts, dim=1), target)
    if symmetric:
        # fn is symmetric, so logits.T carries the same false-negative mask.
        loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
    return loss


def direction_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean (1 - cosine): matches directions, leaves norms to log_norm_loss."""
    return (1.0 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()


def log_norm_loss(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Mean squared difference of log L2 norms (scale-free, so it works at any hidden size)."""
    lp = pred.float().norm(dim=-1).clamp_min(eps).log()
    lt = target.float().norm(dim=-1).clamp_min(eps).log()
    return (lp - lt).pow(2).mean()


def geometry_loss(pred: Tensor, source: Tensor) -> Tensor:
    """Mean squared difference between the batch's cosine-similarity matrices in the projected and
    in the encoder space (both centred on the batch mean, off the diagonal): a penalty on distorting
    the encoder's neighbourhoods, which hold for text the teacher targets never covered."""
    def sims(v: Tensor) -> Tensor:
        v = F.normalize(v.float() - v.float().mean(0, keepdim=True), dim=-1)
        return v @ v.T

    n = pred.shape[0]
    if n < 2:
        return pred.float().sum() * 0.0
    off = ~torch.eye(n, dtype=torch.bool, device=pred.device)
    return (sims(pred) - sims(source.to(pred.device)))[off].pow(2).mean()


def usage_contrast(loss_slots: Tensor, loss_zeroed: Tensor) -> Tensor:
    """relu(L_slots - L_zeroed): positive only when the injected slots fail to lower the loss.

    The authors' code computed relu(L_zeroed - L_slots), which penalises the model exactly when
    the slots help, i.e. it trained the decoder to ignore them. Gradients flow into both terms;
    detach loss_zeroed if the zeroed pass should not be pushed upward.
    """
    return torch.relu(loss_slots - loss_zeroed)


def temperature_at(step: int, total_steps: int, start: float, end: float) -> float:
    """Cosine anneal from ``start`` (step 0) to ``end`` (step >= total_steps)."""
    if total_steps <= 0:
        return float(end)
    t = min(max(step, 0), total_steps) / total_steps
    return float(end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t)))


def answer_logits(decoder, embeds: Tensor, attention_mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The decoder's next-token logits at the answer positions alone: (logits [N, V] fp32,
    targets [N], sel [B, T-1]), N the number of answer tokens (labels != IGNORE) in the batch.

    Position t predicts token t + 1, so row n of `logits` is read at the position just before
    answer token n. Rows come in row-major order (example by example, each answer token in order):
    two batches of the same examples with the same answer tokens behind different prompts (raw
    text or K slots, other lengths and padding) line up row for row. Logits are computed for the
    labelled positions alone: the prompt never materialises a vocabulary-sized row (49k x hidden per
    token on SmolLM2, ~20% of a forward pass).
    """
    body = decoder.model.get_decoder()
    if attention_mask is not None and bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all()):
        # Right padding only: causal attention already keeps every real token from seeing a pad,
        # and without an explicit mask SDPA takes its fused causal kernel instead of building a
        # [B, heads, T, T] mask (exactly the same loss; 1.2x faster at 160 tokens, 1.6x at 640).
        attention_mask = None
    h = body(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state
    from .prompts import IGNORE

    target = labels[:, 1:]
    sel = target != IGNORE
    logits = decoder.model.get_output_embeddings()(h[:, :-1][sel]).float()
    return logits, target[sel], sel


def answer_ce(logits: Tensor, targets: Tensor, sel: Tensor) -> Tensor:
    """Per-example mean cross-entropy [B] from answer_logits' (logits, targets, sel)."""
    ce = F.cross_entropy(logits, targets, reduction="none")
    rows = sel.nonzero()[:, 0]
    total = torch.zeros(sel.shape[0], dtype=ce.dtype, device=ce.device).index_add(0, rows, ce)
    return total / sel.sum(1).clamp_min(1).to(ce.dtype)


def answer_loss(decoder, embeds: Tensor, attention_mask: Tensor, labels: Tensor) -> Tensor:
    """Per-example mean cross-entropy over answer tokens only, shape [B] (see answer_logits)."""
    return answer_ce(*answer_logits(decoder, embeds, attention_mask, labels))


def token_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean over rows (tokens) of KL(p_teacher || p_student), p = softmax(logits / T) over the
    full vocabulary, times T^2 (so the gradient's scale does not depend on T; Hinton et al.).

    Rows pair up: row n of both is the next-token distribution for the same target token (see
    answer_logits). The teacher is a fixed target: no gradient reaches it. 0 when the logits are
    equal (up to a constant per row), > 0 otherwise.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits must pair up row by row, got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape[0] == 0:
        return student_logits.float().sum() * 0.0
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    return kl.mean() * (temperature * temperature)
