"""Several languages in one run (issue 27): `--lang km,hi,si` parsed once, and each language's
split loaded and balanced the same way for Stage A, Stage B and the direct finetune.

Balanced means every language contributes the same number of pairs: the smallest language's
count (or `max_total / languages` when that is smaller), a seeded sample of each. Oversampling the
small languages instead would put repeats of one pair into a batch, which the contrastive loss
reads as a negative of itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import LlinkError
from .io import Pair
from .sampling import subsample
from .splits import load_pairs

_CODE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")


def parse_langs(spec: str) -> list[str]:
    """'km' -> ['km']; 'km, hi,si' -> ['km', 'hi', 'si']; a clear error for anything else."""
    langs = [s.strip() for s in str(spec).split(",")]
    if not langs or any(not s for s in langs):
        raise LlinkError(f"--lang {spec!r}: expected a language code or a comma-separated list of them, e.g. km or km,hi,si")
    bad = [s for s in langs if not _CODE.match(s)]
    if bad:
        raise LlinkError(f"--lang {spec!r}: {', '.join(map(repr, bad))} is not a language code (two or three lower-case letters, "
                         "as in data/en-<lang>/, e.g. km, hi, my)")
    dupes = sorted({s for s in langs if langs.count(s) > 1})
    if dupes:
        raise LlinkError(f"--lang {spec!r} names {', '.join(dupes)} twice")
    return langs


def load_languages(split: str, langs: list[str], data: str | Path | None = None, max_total: int | None = None,
                   seed: int = 17) -> tuple[list[Pair], list[str], dict[str, int] | None]:
    """(pairs, each pair's language, pairs per language). One language: its split (or `data`),
    a seeded subset of `max_total`, exactly as a single-language run always read it. Several: the
    same count from each, balanced as the module says, in the order given. A user's file gets no
    record (None): --lang picks its column, but a generic header never says which language it is."""
    if len(langs) == 1:
        pairs = subsample(load_pairs(split, langs[0], data), max_total, seed)
        return pairs, [langs[0]] * len(pairs), None if data else {langs[0]: len(pairs)}
    if data is not None:
        raise LlinkError(f"--lang {','.join(langs)} reads each language's committed {split} split; a --{split}_data file holds one "
                         "language: drop it, or train on one --lang")
    per = {lang: load_pairs(split, lang) for lang in langs}
    n = min(len(p) for p in per.values())
    if max_total is not None:
        n = min(n, max_total // len(langs))
    if n < 1:
        raise LlinkError(f"--lang {','.join(langs)}: {split} has {', '.join(f'{l} {len(p)}' for l, p in per.items())} pairs, "
                         f"too few to give every language the same share of --max_train {max_total}")
    pairs, tags = _joined({lang: subsample(ps, n, seed) for lang, ps in per.items()})
    return pairs, tags, {lang: n for lang in langs}


def load_dev_languages(langs: list[str], data: str | Path | None, max_each: int | None,
                       seed: int) -> tuple[list[Pair], list[str]]:
    """Each language's dev split, a seeded `max_each` of it (dev scores are per language, so each
    keeps its own size, not a balanced share)."""
    if len(langs) > 1 and data is not None:
        raise LlinkError(f"--lang {','.join(langs)} scores each language's committed dev split; --dev_data holds one language: "
                         "drop it, or train on one --lang")
    return _joined({lang: subsample(load_pairs("dev", lang, data), max_each, seed) for lang in langs})


def _joined(per: dict[str, list[Pair]]) -> tuple[list[Pair], list[str]]:
    """The languages' pairs one after another, and each pair's language."""
    return [p for ps in per.values() for p in ps], [lang for lang, ps in per.items() for _ in ps]


def after_mixture(record: dict[str, int] | None, mixture: dict) -> dict[str, int] | None:
    """The pairs each language really gave once English-only texts are mixed in: none at all with
    English only (`--english_share 1`), whose bridge then meets every language zero-shot."""
    if record is None or mixture.get("parallel", 1) > 0:
        return record
    return {lang: 0 for lang in record}
