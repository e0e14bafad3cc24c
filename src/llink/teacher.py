"""The Stage A target: the frozen decoder's representation of a sentence.

SPEC §6: on a 135M decoder the paper's teacher (last layer, after the final norm, at the
placeholder) is nearly the same vector for every sentence, so the teacher is a *setting*:
layer (index or "final"), pooling (placeholder | mean over the sentence tokens) and
normalisation (none | per-dimension z-score with statistics from train, saved in the artifact |
the same z-score about a mean that moves with log length, `zscore_length`: mean-pooled states of a
long paragraph drift toward the decoder's average state, so one mean fitted on short strings leaves
every paragraph sharing that direction).
"""

from __future__ import annotations


import re
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .batching import same_length_batches
from .lineage import version
from .cache import RowStore
from .decoders import Decoder
from .errors import LlinkError
from .prompts import PromptBuilder

POOLINGS = ("placeholder", "mean")
NORMS = ("none", "zscore", "zscore_length")


@dataclass(frozen=True)
class TeacherSpec:
    layer: int | str = 4  # 0 = input embeddings, i = output of block i, "final" = after the final norm
    pooling: str = "mean"
    norm: str = "zscore"

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise LlinkError(f"teacher pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.norm not in NORMS:
            raise LlinkError(f"teacher norm must be one of {NORMS}, got {self.norm!r}")
        if not (self.layer == "final" or (isinstance(self.layer, int) and self.layer >= 0)):
            raise LlinkError(f"teacher layer must be a non-negative integer or 'final', got {self.layer!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"layer={self.layer},pooling={self.pooling},norm={self.norm}"


PRESETS = {"paper": TeacherSpec(layer="final", pooling="placeholder", norm="none")}


def parse_teacher(value: str | dict | TeacherSpec) -> TeacherSpec:
    """'paper', or 'layer=8,pooling=mean,norm=zscore' (missing keys take the defaults)."""
    if isinstance(value, TeacherSpec):
        return value
    if isinstance(value, dict):
        return TeacherSpec(**value)
    value = value.strip()
    if value in PRESETS:
        return PRESETS[value]
    kw: dict = {}
    for part in filter(None, value.split(",")):
        m = re.fullmatch(r"\s*(layer|pooling|norm)\s*=\s*(\S+)\s*", part)
        if not m:
            raise LlinkError(f"cannot parse teacher setting {part!r}: use 'paper' or 'layer=8,pooling=mean,norm=zscore'")
        k, v = m.groups()
        kw[k] = int(v) if k == "layer" and v.isdigit() else v
    return TeacherSpec(**kw)


def _check_layer(decoder: Decoder, layer) -> None:
    if layer != "final" and layer > decoder.num_layers:
        raise LlinkError(f"teacher layer {layer} does not exist: the decoder has {decoder.num_layers} layers")


class _Stop(Exception):
    pass


@torch.inference_mode()
def extract(
    decoder: Decoder,
    builder: PromptBuilder,
    texts: Sequence[str],
    layers: Sequence[int | str],
    poolings: Sequence[str] = POOLINGS,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[tuple, np.ndarray]:
    """Pooled states for every (layer, pooling) in one forward pass per batch (no LM head).

    The pass stops after the deepest block it needs, so an early-layer teacher costs a fraction
    of a full forward.
    """
    for layer in layers:
        _check_layer(decoder, layer)
    base = decoder.model.get_decoder() if hasattr(decoder.model, "get_decoder") else decoder.model.model
    blocks = base.layers
    deepest = decoder.num_layers if "final" in layers else max(int(x) for x in layers)
    placeholder = decoder.placeholder_vector().to(decoder.device)
    encoded = [builder.teacher(t) for t in texts]
    batches = same_length_batches([len(e[0]) for e in encoded], batch_size)  # see llink.batching: no padding
    out = {(l, p): np.zeros((len(texts), decoder.hidden_size), np.float32) for l in layers for p in poolings}
    captured: dict[int, torch.Tensor] = {}

    def hook(i):
        def fn(_module, _inp, output):
            captured[i + 1] = output[0] if isinstance(output, tuple) else output
            if i + 1 == deepest and "final" not in layers:
                raise _Stop

        return fn

    handles = [blocks[i].register_forward_hook(hook(i)) for i in range(deepest)]
    bar = tqdm(total=len(texts), desc="teacher", unit="sent", disable=not progress or len(texts) < 2 * batch_size)
    try:
        with decoder.adapter(None):  # teachers are always the frozen decoder's, whatever adapter is active
            for idx, n_real in batches:
                batch = [encoded[i] for i in idx]
                ids = torch.tensor([b[0] for b in batch], dtype=torch.long)
                sent = torch.zeros(ids.shape, dtype=torch.float32)
                ph = torch.tensor([b[2] for b in batch], dtype=torch.long)
                for j, (_tid, pos, _p) in enumerate(batch):
                    sent[j, pos] = 1.0
                ids, sent = ids.to(decoder.device), sent.to(decoder.device)
                emb = decoder.embeddings(ids).clone()
                emb[torch.arange(len(batch)), ph] = placeholder.to(emb.dtype)
                captured.clear()
                captured[0] = emb
                if deepest > 0:  # a layer-0 teacher is the input embeddings: no forward pass at all
                    try:
                        res = base(inputs_embeds=emb, use_cache=False)  # one length, nothing padded: causal alone
                        captured["final"] = res.last_hidden_state
                    except _Stop:
                        pass
                for layer in layers:
                    h = captured[layer].float()
                    for pooling in poolings:
                        if pooling == "placeholder":
                            v = h[torch.arange(len(batch)), ph.to(h.device)]
                        else:
                            v = (h * sent.unsqueeze(-1)).sum(1) / sent.sum(1, keepdim=True).clamp_min(1)
                        out[(layer, pooling)][idx[:n_real]] = v[:n_real].cpu().numpy()
                bar.update(n_real)
    finally:
        for h in handles:
            h.remove()
        bar.close()
    return out


def cached_states(
    decoder: Decoder,
    builder: PromptBuilder,
    texts: Sequence[str],
    layers: Sequence[int | str],
    poolings: Sequence[str] = POOLINGS,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[tuple, np.ndarray]:
    """`extract` through the on-disk cache: rows keyed by decoder + chat template + prompt
    settings + layer + pooling + text, so only unseen (text, setting) pairs are computed, and
    those in one pass for every setting that misses them."""
    texts = list(texts)
    base = dict(decoder=decoder.id, template=decoder.chat_template, prompt=builder.cfg.to_dict())
    tags = version("batching", "teacher")  # llink.lineage: a changed extraction is a new namespace
    stores = {(l, p): RowStore("teacher", **base, layer=l, pooling=p, tags=tags) for l in layers for p in poolings}
    fresh: dict[tuple, dict[str, np.ndarray]] = {}

    def compute(lp):
        def fn(missing: list[str]) -> np.ndarray:
            todo = [t for t in missing if t not in fresh.get(lp, {})]
            if todo:  # one forward pass fills every requested setting for these texts
                for key, arr in extract(decoder, builder, todo, list(layers), list(poolings), batch_size, progress).items():
                    fresh.setdefault(key, {}).update(zip(todo, arr))
            return np.stack([fresh[lp][t] for t in missing])

        return fn

    return {lp: store.get(texts, compute(lp)) for lp, store in stores.items()}


def pooled_lengths(builder: PromptBuilder, texts: Sequence[str]) -> np.ndarray:
    """How many tokens each text's teacher pools over (the `zscore_length` regressor)."""
    return np.array([len(builder.teacher(t)[1]) for t in texts], dtype=np.float32)


def lengths_for(spec: "TeacherSpec", builder: PromptBuilder, texts: Sequence[str]) -> np.ndarray | None:
    """The pooled lengths `normalise` needs for this spec (None unless its norm is `zscore_length`)."""
    return pooled_lengths(builder, texts) if spec.norm == "zscore_length" else None


@dataclass
class TeacherStats:
    """Per-dimension mean/std from train: what `zscore` divides by, saved with the artifact.
    With `slope` (norm `zscore_length`) the mean is mean + slope * log(pooled tokens)."""

    mean: np.ndarray
    std: np.ndarray
    slope: np.ndarray | None = None

    @classmethod
    def fit(cls, states: np.ndarray, lengths: np.ndarray | None = None) -> "TeacherStats":
        if lengths is None:
            return cls(states.mean(0).astype(np.float32), (states.std(0) + 1e-6).astype(np.float32))
        log_n = np.log(np.maximum(np.asarray(lengths, np.float64), 1.0))
        if np.ptp(log_n) == 0:
            raise LlinkError("teacher norm 'zscore_length' needs training texts of more than one length")
        design = np.stack([np.ones_like(log_n), log_n], 1)
        coef, *_ = np.linalg.lstsq(design, states.astype(np.float64), rcond=None)
        resid = states - design @ coef
        return cls(coef[0].astype(np.float32), (resid.std(0) + 1e-6).astype(np.float32), coef[1].astype(np.float32))

    def apply(self, states: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        if self.slope is None:
            return ((states - self.mean) / self.std).astype(np.float32)
        if lengths is None or len(lengths) != len(states):
            raise LlinkError("teacher norm 'zscore_length' needs the pooled token count of every text")
        log_n = np.log(np.maximum(np.asarray(lengths, np.float32), 1.0))[:, None]
        return ((states - self.mean - log_n * self.slope) / self.std).astype(np.float32)


def fit_stats(spec: TeacherSpec, states: np.ndarray, lengths: np.ndarray | None = None) -> TeacherStats | None:
    """The statistics `normalise` needs for this spec, fitted on train (None for norm 'none')."""
    if spec.norm == "none":
        return None
    return TeacherStats.fit(states, lengths if spec.norm == "zscore_length" else None)


def check_stats(spec: TeacherSpec, stats: TeacherStats) -> None:
    """Statistics carry a length term exactly when the norm is `zscore_length`."""
    if (stats.slope is not None) != (spec.norm == "zscore_length"):
        raise LlinkError(f"teacher statistics {'with' if stats.slope is not None else 'without'} a length term do not fit norm {spec.norm!r}")


def normalise(spec: TeacherSpec, states: np.ndarray, stats: TeacherStats | None, lengths: np.ndarray | None = None) -> np.ndarray:
    if spec.norm == "none":
        return states.astype(np.float32)
    if stats is None:
        raise LlinkError(f"teacher norm {spec.norm!r} needs statistics computed on the training split")
    check_stats(spec, stats)
    return stats.apply(states, lengths)


def teacher_vectors(decoder, builder, spec: TeacherSpec, texts, stats: TeacherStats | None = None, **kw) -> np.ndarray:
    states = cached_states(decoder, builder, texts, [spec.layer], [spec.pooling], **kw)[(spec.layer, spec.pooling)]
    return normalise(spec, states, stats, lengths_for(spec, builder, texts))
