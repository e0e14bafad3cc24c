"""Token inflation: how many decoder tokens a sentence costs in English, in its source language, and as slots."""

from __future__ import annotations

import statistics
from typing import Sequence


def token_counts(tokenizer, texts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def inflation(tokenizer, src: Sequence[str], en: Sequence[str], k: int) -> dict:
    s, e = token_counts(tokenizer, src), token_counts(tokenizer, en)
    src_mean, en_mean = statistics.fmean(s), statistics.fmean(e)
    return {
        "pairs": len(s),
        "en_mean": round(en_mean, 2),
        "en_median": statistics.median(e),
        "src_mean": round(src_mean, 2),
        "src_median": statistics.median(s),
        "ratio": round(src_mean / en_mean, 2),
        "ratio_median": round(statistics.median(s) / statistics.median(e), 2),
        "slots": k,
        "src_over_slots": round(src_mean / k, 2),
    }
