"""Multi-sentence passages from LibreOffice help files: the comprehension test split.

Sentence pairs are too short to summarise or question (the Firefox test's median is 6 English
words), so understanding is measured on runs of consecutive help paragraphs. A passage never
crosses a heading, keeps its file's identity (path, title, program) for document-level tasks,
and whole files are held out, so no sentence of a test passage is ever trained on.

The same held-out files give the numbers set (issue 25, test of detail): their sentence pairs
whose two sides share a number.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from llink.data.io import Pair, _gzip_bytes
from llink.errors import LlinkError

# text/<module>/... in the help tree -> the program a user would name
MODULES = {"scalc": "Calc", "swriter": "Writer", "simpress": "Impress", "sdraw": "Draw", "smath": "Math",
           "sbasic": "Basic", "schart": "Chart", "sdatabase": "Base", "shared": "LibreOffice (shared)"}

MIN_SENTENCES, MAX_SENTENCES = 2, 6
MIN_SRC_CHARS = 150
# The encoder reads at most 512 tokens; Khmer costs e5 about one token per 2-3 characters.
MAX_SRC_CHARS = 900
_MIN_PARAGRAPH_WORDS = 3  # shorter paragraphs are table cells and labels, not prose
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z0-9])")
# The number pattern of llink.eval.generate.NUMBER, applied after every decimal digit (Unicode
# category Nd: Khmer ០-៩, Devanagari, ...) is mapped to ASCII.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?", re.ASCII)


@dataclass(frozen=True)
class Passage:
    src: str
    en: str
    source: str  # help:<file>#<first id>..<last id>: the part before '#' names the document
    file: str
    title: str
    module: str
    sentences: int

    def to_row(self, lang: str) -> dict:
        row = asdict(self)
        return {lang: row.pop("src"), **row}


def english_sentences(text: str) -> int:
    return len([s for s in _SENTENCE_END.split(text.strip()) if s])


def module_of(xhp: str) -> str:
    parts = xhp.split("/")
    return MODULES.get(parts[1], parts[1]) if len(parts) > 2 and parts[0] == "text" else "unknown"


def file_passages(xhp: str, pairs: list[Pair], banned: set[str] = frozenset()) -> list[Passage]:
    """Greedy runs of consecutive paragraphs (document order, never across a heading) holding
    2-6 English sentences and at least MIN_SRC_CHARS characters of the foreign text. A paragraph
    whose text is in `banned` (dev or test) breaks a run like a heading does."""
    headings = [p for p in pairs if _ident(p).startswith("hd_")]
    title = headings[0].en if headings else Path(xhp).stem
    out: list[Passage] = []
    run: list[Pair] = []

    def close() -> None:
        if run:
            src, en = " ".join(p.src for p in run), " ".join(p.en for p in run)
            n = english_sentences(en)
            if MIN_SENTENCES <= n <= MAX_SENTENCES and MIN_SRC_CHARS <= len(src) <= MAX_SRC_CHARS:
                source = f"help:{xhp}#{_ident(run[0])}..{_ident(run[-1])}"
                out.append(Passage(src, en, source, xhp, title, module_of(xhp), n))
            run.clear()

    for p in pairs:
        if _ident(p).startswith("hd_") or len(p.en.split()) < _MIN_PARAGRAPH_WORDS or \
                p.src in banned or p.en in banned:
            close()
            continue
        if english_sentences(" ".join(q.en for q in run + [p])) > MAX_SENTENCES:
            close()
        run.append(p)
        if english_sentences(" ".join(q.en for q in run)) >= MAX_SENTENCES or \
                len(" ".join(q.src for q in run)) >= MAX_SRC_CHARS:
            close()
    close()
    return out


def _ident(p: Pair) -> str:
    return p.source.rpartition("#")[2]


def choose_passage_files(help_files: dict[str, list[Pair]], exclude: set[str], banned: set[str],
                         minimum: int, per_file: int, seed: int) -> dict[str, list[Passage]]:
    """Whole files, by a seeded shuffle, each giving >= per_file passages (so every passage has
    same-document distractors), until >= minimum passages."""
    files = sorted(set(help_files) - exclude)
    random.Random(seed + 1).shuffle(files)  # a stream of its own: dev's choice must not move
    chosen: dict[str, list[Pair]] = {}
    total = 0
    for f in files:
        if total >= minimum:
            break
        ps = file_passages(f, help_files[f], banned)
        if len(ps) >= per_file:
            chosen[f] = ps
            total += len(ps)
    if total < minimum:
        raise LlinkError(f"only {total} help passages in files with >= {per_file} each (need {minimum}); "
                         "lower --passages_min")
    return chosen


def split_passages(pairs: list[Pair]) -> list[Pair]:
    """The passages of a split held out (or kept) by whole help file, as pairs whose source is
    the passage's provenance: the train split's for passage-length training examples, dev's for a
    comprehension dev set. Pairs keep their split's order (document order within a file); pairs
    without help provenance (UI strings, a user's file) give none."""
    files: dict[str, list[Pair]] = {}
    for p in pairs:
        if p.source.startswith("help:"):
            files.setdefault(p.source[5:].partition("#")[0], []).append(p)
    return [Pair(q.src, q.en, q.source) for f, ps in files.items() for q in file_passages(f, ps)]


def training_passages(pairs: list[Pair], n: int, seed: int = 17, where: str = "the train pairs") -> list[Pair]:
    """A seeded sample of n passages of a training split (all of them when it has fewer)."""
    if n <= 0:
        return []
    found = split_passages(pairs)
    if not found:
        raise LlinkError(f"--passages {n}: {where} hold no passage (runs of 2-6 sentences from one LibreOffice help file need "
                         "`help:<file>#<id>` provenance in the source column, as the committed train split has); "
                         "use --passages 0 for a file without it")
    rng = random.Random(seed + 7)
    return [found[i] for i in sorted(rng.sample(range(len(found)), min(n, len(found))))]


def numbers(text: str) -> set[str]:
    """The numbers in a text, digits of any script mapped to ASCII ("៣.៥" -> "3.5")."""
    from ..hints import ascii_digits

    return set(_NUMBER.findall(ascii_digits(text)))


def shares_number(p: Pair) -> bool:
    return bool(numbers(p.src) & numbers(p.en))


def number_pairs(files: dict[str, list[Pair]], banned: set[str] = frozenset()) -> list[Pair]:
    """Sentence pairs of the given (held-out) files, in file order, whose two sides share a number;
    none whose text is in `banned` (dev or test), every foreign and every English string once."""
    out: list[Pair] = []
    seen: set[str] = set()
    for f in sorted(files):
        for p in files[f]:
            if p.src in banned or p.en in banned or p.src in seen or p.en in seen or not shares_number(p):
                continue
            seen.update((p.src, p.en))
            out.append(p)
    return out


def write_passages(path: str | Path, passages: list[Passage], lang: str) -> None:
    """JSONL: `<lang>`, `en`, `source` (read by every pairs reader) plus file, title, module,
    sentences; gzip output is byte-reproducible."""
    body = "".join(json.dumps(p.to_row(lang), ensure_ascii=False) + "\n" for p in passages).encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_gzip_bytes(body) if path.name.endswith(".gz") else body)
