"""The committed train/dev/test splits under data/en-<lang>/ and their summary statistics."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from llink.data.io import Pair, read_pairs
from llink.errors import LlinkError

SPLITS = ("train", "dev", "test")
# Multi-sentence help passages held out by whole file (llink.data.passages): comprehension tests.
PASSAGE_SPLITS = ("test_passages",)
# Sentence pairs of those same held-out files whose two sides share a number (issue 25, a test of
# detail): reported like test, never used to choose.
HELD_OUT_PAIR_SPLITS = ("test_numbers",)
# Out-of-domain pairs (issue 26, llink.data.ood): not software text, never trained on; written by
# `llink data ood`, not `llink data build`.
OOD_SPLITS = ("ood_dev", "ood_test")
# Passages made on the fly from a split held out by whole help file (llink.data.passages.split_passages):
# dev's help files give a comprehension dev set for choosing a recipe without touching test.
DERIVED_SPLITS = {"dev_passages": "dev"}
_FILES = {**{s: f"{s}.tsv.gz" for s in SPLITS + HELD_OUT_PAIR_SPLITS + OOD_SPLITS},
          **{s: f"{s}.jsonl.gz" for s in PASSAGE_SPLITS},
          **{s: f"{parent}.tsv.gz" for s, parent in DERIVED_SPLITS.items()}}


def find_data_dir(lang: str = "km") -> Path:
    """$LLINK_DATA_DIR, else the nearest data/ above the CWD holding the splits, else the repo's."""
    env = os.environ.get("LLINK_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "data" / f"en-{lang}" / "test.tsv.gz").is_file():
            return d / "data"
    # src/llink/data/splits.py -> repository root (an editable install keeps it there).
    return Path(__file__).resolve().parents[3] / "data"


def __getattr__(name: str):
    # DATA_DIR is looked up on access, so LLINK_DATA_DIR set after import still counts.
    if name == "DATA_DIR":
        return find_data_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def split_path(split: str, lang: str = "km", data_dir: str | Path | None = None) -> Path:
    if split not in _FILES:
        raise LlinkError(f"unknown split {split!r}; expected one of {', '.join(_FILES)}")
    if "," in lang:  # a list is read by llink.data.languages, one language at a time
        raise LlinkError(f"--lang {lang}: this command reads one language's {split} split; give one code (several languages are for "
                         "llink align, slots, finetune-direct and eval retrieval)")
    base = Path(data_dir) if data_dir is not None else find_data_dir(lang)
    return base / f"en-{lang}" / _FILES[split]


def load_split(split: str, lang: str = "km", data_dir: str | Path | None = None) -> list[Pair]:
    path = split_path(split, lang, data_dir)
    if not path.is_file():
        build = "llink data ood" if split in OOD_SPLITS else f"llink data build --lang {lang}"
        raise LlinkError(
            f"missing {path}: run `{build}` "
            "(or set LLINK_DATA_DIR to the folder that holds en-<lang>/)"
        )
    pairs = read_pairs(path, lang=lang)
    if split in DERIVED_SPLITS:
        from llink.data.passages import split_passages

        pairs = split_passages(pairs)
        if not pairs:
            raise LlinkError(f"{path} gives no {split}: it holds no runs of 2-6 help sentences with help:<file>#<id> provenance")
    return pairs


def load_pairs(split: str, lang: str = "km", data: str | Path | None = None) -> list[Pair]:
    """A user's TSV/JSONL file when given, else the committed split: the one place every
    command makes that choice."""
    return read_pairs(data, lang=lang) if data else load_split(split, lang=lang)


def split_stats(pairs: list[Pair]) -> dict:
    src_chars = [len(p.src) for p in pairs] or [0]
    en_words = [len(p.en.split()) for p in pairs] or [0]
    sources: dict[str, int] = {}
    for p in pairs:
        kind = p.source.split(":", 1)[0] if p.source else "unknown"
        sources[kind] = sources.get(kind, 0) + 1
    return {
        "pairs": len(pairs),
        "src_chars_mean": round(statistics.fmean(src_chars), 1),
        "src_chars_median": statistics.median(src_chars),
        "en_words_mean": round(statistics.fmean(en_words), 1),
        "en_words_median": statistics.median(en_words),
        "sources": dict(sorted(sources.items())),
    }


def corpus_stats(lang: str = "km", data_dir: str | Path | None = None) -> dict[str, dict]:
    return {split: split_stats(load_split(split, lang, data_dir)) for split in SPLITS}
