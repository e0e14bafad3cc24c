"""Content-keyed on-disk cache for encoder vectors, teacher states and converted models.

Every entry lives under a key that hashes *everything* that determines its content (model id,
data, settings, library versions), so a change to any of them is a cache miss, never a stale hit.
Writes are atomic (temp file + rename): a killed job leaves either the old entry or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def cache_root() -> Path:
    root = os.environ.get("LLINK_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "llink")
    return Path(root)


def models_root() -> Path:
    """Converted models (large, slow to make, keyed by content) live apart from data caches."""
    return Path(os.environ.get("LLINK_MODELS_DIR") or cache_root() / "models")


def key_of(**parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (order of keyword arguments ignored)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes (models are small enough here; cheaper than trusting mtimes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call write(tmp_path) then rename onto path, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> Path:
    from safetensors.numpy import save_file

    metadata = {"meta": json.dumps(meta or {}, default=str)}
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata=metadata))


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
        return {k: f.get_tensor(k) for k in f.keys()}, meta


_COUNTS: dict[str, dict[str, int]] = {}


def cache_counts() -> dict[str, dict[str, int]]:
    """Rows this process took from disk vs computed, per cache kind: how warm a run's caches were,
    which its wall times mean little without."""
    return {k: dict(v) for k, v in _COUNTS.items()}


def counts_since(before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    now = cache_counts()
    return {k: {n: v - before.get(k, {}).get(n, 0) for n, v in c.items()} for k, c in now.items()}


def _count(kind: str, keys: list, missing: list) -> None:
    count = _COUNTS.setdefault(kind, {"reused": 0, "computed": 0})
    count["computed"] += len(missing)
    count["reused"] += len(set(keys)) - len(missing)


def read_keyed(path: str | Path, key: str) -> dict | None:
    """The JSON result an earlier run wrote at `path`, if its "key" is `key` (else None): how a
    stage whose inputs did not change picks up its own output instead of recomputing it."""
    try:
        old = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) and old.get("key") == key else None


class RowStore:
    """Per-text vectors under one namespace (an encoder, or a decoder + teacher setting).

    Rows are keyed by a hash of their text, so any subset or superset of texts seen before is
    served from disk and only new texts are computed. Each fill writes one immutable shard
    (atomically), so concurrent or interrupted runs never corrupt what is there.
    """

    def __init__(self, kind: str, **namespace: Any):
        self.dir = cache_root() / kind / key_of(**namespace)
        self.kind, self.namespace = kind, namespace

    @staticmethod
    def row_key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def _index(self) -> tuple[dict[bytes, tuple[int, int]], list[np.ndarray]]:
        index, shards = {}, []
        for path in sorted(self.dir.glob("*.safetensors")) if self.dir.exists() else []:
            arrays, _ = load_arrays(path)
            shards.append(arrays["vectors"])
            for row, key in enumerate(arrays["keys"]):
                index[key.tobytes()] = (len(shards) - 1, row)
        return index, shards

    def get(self, texts: list[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Vectors for texts, calling compute(missing_unique_texts) only for unseen ones."""
        keys = [self.row_key(t) for t in texts]
        index, shards = self._index()
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in index))
        _count(self.kind, keys, missing)
        if missing:
            fresh = np.asarray(compute(missing), dtype=np.float32)
            new_keys = np.frombuffer(b"".join(self.row_key(t) for t in missing), dtype=np.uint8).reshape(-1, 16)
            name = hashlib.sha256(new_keys.tobytes()).hexdigest()[:20]
            save_arrays(self.dir / f"{name}.safetensors", {"keys": new_keys, "vectors": fresh}, self.namespace)
            shards.append(fresh)
            for row, t in enumerate(missing):
                index[self.row_key(t)] = (len(shards) - 1, row)
        return np.stack([shards[s][r] for s, r in (index[k] for k in keys)]) if texts else np.zeros((0, 0), np.float32)


class SpanStore:
    """Per-(text, k) matrices of k rows under one namespace: RowStore for ragged rows (an encoder's
    k span vectors of a text, `llink.encoders.encode_spans_cached`).

    A row is keyed by a hash of its text and k, so the same text with another k is another row.
    Each fill writes one immutable shard (atomically): keys [M, 16] uint8, offsets [M + 1] int64
    and vectors [sum of k, dim], row m being vectors[offsets[m]:offsets[m + 1]].
    """

    def __init__(self, kind: str, **namespace: Any):
        self.dir = cache_root() / kind / key_of(**namespace)
        self.kind, self.namespace = kind, namespace

    @staticmethod
    def row_key(text: str, k: int) -> bytes:
        return hashlib.blake2b(f"{int(k)}:{text}".encode("utf-8"), digest_size=16).digest()  # k has no ':', so no two pairs collide

    def _index(self) -> dict[bytes, np.ndarray]:
        index = {}
        for path in sorted(self.dir.glob("*.safetensors")) if self.dir.exists() else []:
            arrays, _ = load_arrays(path)
            off, vectors = arrays["offsets"], arrays["vectors"]
            for m, key in enumerate(arrays["keys"]):
                index[key.tobytes()] = vectors[off[m] : off[m + 1]]
        return index

    def get(self, texts: list[str], ks: list[int], compute: Callable[[list[str], list[int]], list[np.ndarray]]) -> list[np.ndarray]:
        """[k, dim] per (text, k), calling compute(missing_texts, missing_ks) only for unseen unique pairs."""
        pairs = list(zip(texts, ks, strict=True))
        keys = [self.row_key(t, k) for t, k in pairs]
        index = self._index()
        missing = list(dict.fromkeys(p for p, key in zip(pairs, keys) if key not in index))
        _count(self.kind, keys, missing)
        if missing:
            fresh = [np.asarray(a, dtype=np.float32) for a in compute([t for t, _ in missing], [k for _, k in missing])]
            if len(fresh) != len(missing) or any(a.ndim != 2 or len(a) != k for a, (_, k) in zip(fresh, missing)):
                raise ValueError(f"compute must return one [k, dim] array per (text, k); got shapes {[a.shape for a in fresh]}")
            new_keys = np.frombuffer(b"".join(self.row_key(t, k) for t, k in missing), dtype=np.uint8).reshape(-1, 16)
            offsets = np.cumsum([0] + [len(a) for a in fresh]).astype(np.int64)
            name = hashlib.sha256(new_keys.tobytes()).hexdigest()[:20]
            save_arrays(self.dir / f"{name}.safetensors", {"keys": new_keys, "offsets": offsets, "vectors": np.concatenate(fresh)}, self.namespace)
            index.update(zip((k.tobytes() for k in new_keys), fresh))
        return [index[k].copy() for k in keys]  # copies: a caller's edit must not reach other rows or the next get


class TextStore:
    """Per-prompt generated texts under one namespace (a generator + its settings).

    Like RowStore, but for strings: JSONL shards keyed by the prompt's hash. `get` computes the
    missing ones in chunks and writes each chunk as it finishes, so an interrupted job resumes.
    """

    def __init__(self, kind: str, **namespace: Any):
        self.dir = cache_root() / kind / key_of(**namespace)
        self.kind, self.namespace = kind, namespace

    def _index(self) -> dict[str, str]:
        index = {}
        for path in sorted(self.dir.glob("*.jsonl")) if self.dir.exists() else []:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    index[row["key"]] = row["text"]
        return index

    def get(self, prompts: list[str], compute: Callable[[list[str]], list[str]], chunk: int = 64) -> list[str]:
        keys = [RowStore.row_key(p).hex() for p in prompts]
        index = self._index()
        missing = list(dict.fromkeys(p for p, k in zip(prompts, keys) if k not in index))
        _count(self.kind, keys, missing)
        for s in range(0, len(missing), chunk):
            part = missing[s : s + chunk]
            texts = compute(part)
            rows = [{"key": RowStore.row_key(p).hex(), "text": t} for p, t in zip(part, texts)]
            body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            name = hashlib.sha256(body.encode()).hexdigest()[:20]
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.dir / f"{name}.jsonl", lambda t: Path(t).write_text(body, encoding="utf-8"))
            index.update({r["key"]: r["text"] for r in rows})
        return [index[k] for k in keys]
