"""English-only examples mixed into the parallel pairs (issue 26).

An English-only example is a Pair whose foreign side *is* the English text: the encoder reads it,
and the target (Stage A's teacher, Stage B's answer) comes from the same text. The multilingual
encoder already places a Khmer sentence near its English translation, so a bridge that carries
English of every kind carries Khmer of every kind too (LangBridge trains on English alone).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from ..errors import LlinkError
from .io import Pair, normalize

DEFAULT_ENGLISH = Path("data/en/english.jsonl.gz")
SOURCE = "english-only"  # the provenance of a mixed-in example
PAIRS = "pairs"  # --english_data pairs: the English sides of the train pairs themselves


def english_file(path: str | Path | None = None) -> Path:
    """The file --english_data names (the built corpus when unset), refused when it is missing."""
    path = Path(path) if path is not None else DEFAULT_ENGLISH
    if not path.is_file():
        hint = " (build it with `llink data english`)" if path == DEFAULT_ENGLISH else ""
        raise LlinkError(f"English texts: {path} does not exist{hint}")
    return path


def read_english(path: str | Path | None = None) -> list[str]:
    """The texts of a JSONL(.gz) with an `en` field per line, or a .txt(.gz) with one per line."""
    path = english_file(path)
    name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
    opener = gzip.open if path.name.endswith(".gz") else open
    texts = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if name.endswith(".jsonl"):
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise LlinkError(f"{path} line {i}: not JSON ({e.msg})") from None
                    if not isinstance(row, dict) or not isinstance(row.get("en"), str):
                        raise LlinkError(f"{path} line {i}: needs a string field `en`")
                    line = row["en"]
                elif not name.endswith(".txt"):
                    raise LlinkError(f"English texts: {path} must be .jsonl(.gz) with an `en` field or .txt(.gz), one text per line")
                text = normalize(line)
                if text:
                    texts.append(text)
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise LlinkError(f"English texts: cannot read {path} ({e})") from None
    if not texts:
        raise LlinkError(f"English texts: {path} holds no text")
    return texts


def names_pairs(english: str | Path | None) -> bool:
    """Whether --english_data asks for the train pairs' own English sides (`pairs`) rather than a file;
    refused when a file of that name would make it ambiguous."""
    if english is None or str(english) != PAIRS:
        return False
    if Path(PAIRS).exists():
        raise LlinkError(f"--english_data {PAIRS}: names the train pairs' English sides, and a file ./{PAIRS} exists too; "
                         f"give that file as {Path(PAIRS).resolve()} or rename it")
    return True


def english_count(parallel: int, share: float) -> int:
    """English texts for `share`: s/(1-s) per parallel pair, or (s = 1) as many as the pairs."""
    if not 0.0 <= share <= 1.0:
        raise LlinkError(f"--english_share must be between 0 and 1, got {share}")
    return parallel if share == 1.0 else round(parallel * share / (1.0 - share))


def mix(pairs: list[Pair], share: float, seed: int, english: str | Path | None = None) -> tuple[list[Pair], dict]:
    """(training pairs, mixture record): the parallel pairs (none with share 1) plus a seeded
    sample of English texts as English-only pairs. Samples of one file and seed are nested (a
    smaller share takes a prefix of a larger one's sample), so the caches of one serve all."""
    n = english_count(len(pairs), share)
    record = {"english_share": share, "parallel": len(pairs) if share < 1.0 else 0, "english": n}
    if n == 0:
        return pairs, record
    if names_pairs(english):
        texts = list(dict.fromkeys(p.en for p in pairs))
        where = "the train pairs' English sides"
    else:
        texts = list(dict.fromkeys(read_english(english)))
        where = str(english or DEFAULT_ENGLISH)
    if n > len(texts):
        raise LlinkError(f"--english_share {share} needs {n} English texts for {len(pairs)} parallel pairs; "
                         f"{where} has {len(texts)} distinct: lower the share or give a bigger --english_data")
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    extra = [Pair(texts[i], texts[i], SOURCE) for i in sorted(order)]
    record["english_data"] = str(english or DEFAULT_ENGLISH)
    return (pairs if share < 1.0 else []) + extra, record

