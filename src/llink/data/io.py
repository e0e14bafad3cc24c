"""Reading and writing sentence pairs (source-language text, English).

Every user-supplied file goes through `read_pairs`, so its errors must be ones a user can act
on: the file name, the 1-based line number and what was expected, never a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from llink.errors import LlinkError

# Zero-width space is the Khmer/Lao/Burmese word separator: translators use it inconsistently,
# and an encoder tokenizes it as noise, so it is removed everywhere. BOM/ZWNBSP likewise.
# ZWJ/ZWNJ are kept: they change the rendering (and meaning) of conjuncts in some scripts.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\ufeff"))
_SPACE = re.compile(r"\s+")

SRC_NAMES = ("src", "source_text", "text", "foreign", "km", "lo", "my", "si", "bo", "am")
EN_NAMES = ("en", "english", "tgt", "target", "en_text")
PROVENANCE_NAMES = ("source", "provenance", "origin")
# In JSONL, `source` may hold the source-language text itself (it is listed last, so an
# explicit `src`/language field wins and `source` is then read as provenance).
JSON_SRC_NAMES = ("src", "km", "text", "source_text", "lo", "my", "si", "bo", "am", "source")

_TSV_EXT = (".tsv", ".tsv.gz")
_JSONL_EXT = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class Pair:
    src: str
    en: str
    source: str = ""


def normalize(text: str) -> str:
    """NFC, no zero-width spaces, single spaces, no outer whitespace."""
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    return _SPACE.sub(" ", text).strip()


def read_pairs(path: str | Path, lang: str | None = None) -> list[Pair]:
    """Read pairs from .tsv/.tsv.gz (optional header) or .jsonl/.jsonl.gz.

    `lang` (e.g. "lo") is accepted as an extra column/field name for the source text.
    """
    p = Path(path)
    name = str(path)
    if not p.is_file():
        raise LlinkError(f"no such file: {name}" if not p.exists() else f"not a file: {name}")
    suffix = _suffix(p)
    extra = (lang.lower(),) if lang else ()
    if suffix in _TSV_EXT:
        pairs = _read_tsv(name, _lines(p, name), extra)
    elif suffix in _JSONL_EXT:
        pairs = _read_jsonl(name, _lines(p, name), extra)
    else:
        raise LlinkError(
            f"{name}: unknown file type {suffix or '(no extension)'!r}; "
            "expected .tsv, .tsv.gz, .jsonl or .jsonl.gz"
        )
    if not pairs:
        raise LlinkError(f"{name}: no pairs found (file is empty or has only a header)")
    return pairs


def write_pairs(path: str | Path, pairs: Iterable[Pair], lang: str = "km") -> None:
    """Write a TSV (header `<lang>\\ten\\tsource`) or JSONL; `.gz` output is byte-reproducible."""
    p = Path(path)
    suffix = _suffix(p)
    if suffix in _TSV_EXT:
        rows = [f"{lang}\ten\tsource"]
        rows += ["\t".join(_one_line(x) for x in (q.src, q.en, q.source)) for q in pairs]
    elif suffix in _JSONL_EXT:
        rows = [json.dumps({"src": q.src, "en": q.en, "source": q.source}, ensure_ascii=False)
                for q in pairs]
    else:
        raise LlinkError(f"{path}: cannot write {suffix!r}; use .tsv, .tsv.gz, .jsonl or .jsonl.gz")
    data = ("\n".join(rows) + "\n").encode("utf-8")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.name.endswith(".gz"):
        data = _gzip_bytes(data)
    p.write_bytes(data)


def _gzip_bytes(data: bytes) -> bytes:
    # mtime=0 and no embedded file name: the same pairs always give the same bytes (git-friendly).
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _suffix(p: Path) -> str:
    name = p.name.lower()
    for ext in _TSV_EXT[::-1] + _JSONL_EXT[::-1]:  # longest first, so .tsv.gz beats .gz
        if name.endswith(ext):
            return ext
    return "".join(p.suffixes[-2:]).lower()


def _lines(p: Path, name: str) -> Iterator[tuple[int, str]]:
    try:
        raw = gzip.decompress(p.read_bytes()) if p.name.lower().endswith(".gz") else p.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise LlinkError(f"{name}: cannot read as gzip ({e})") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for i, line in enumerate(raw.split(b"\n"), start=1):
        try:
            yield i, line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise LlinkError(f"{name}:{i}: not valid UTF-8") from None


def _read_tsv(name: str, lines: Iterator[tuple[int, str]], extra: tuple[str, ...]) -> list[Pair]:
    src_i, en_i, prov_i = 0, 1, 2
    pairs: list[Pair] = []
    first = True
    for i, line in lines:
        if not line.strip():
            continue
        cols = line.split("\t")
        if first:
            first = False
            header = _tsv_header(cols, extra)
            if header:
                src_i, en_i, prov_i = header
                continue
        if len(cols) < 2:
            raise LlinkError(
                f"{name}:{i}: expected 2 tab-separated columns (source, english), found {len(cols)}"
            )
        if max(src_i, en_i) >= len(cols):
            raise LlinkError(f"{name}:{i}: expected {max(src_i, en_i) + 1} columns "
                             f"as named in the header, found {len(cols)}")
        prov = cols[prov_i].strip() if prov_i is not None and prov_i < len(cols) else ""
        pairs.append(_make_pair(name, i, cols[src_i], cols[en_i], prov))
    return pairs


def _tsv_header(cols: list[str], extra: tuple[str, ...]) -> tuple[int, int, int | None] | None:
    """Column indices (src, en, provenance) if `cols` is a header row, else None."""
    names = [c.strip().lower() for c in cols]
    en = [j for j, c in enumerate(names) if c in EN_NAMES]
    src = [j for j, c in enumerate(names) if c in SRC_NAMES + extra]
    # "source\tenglish": with no other text column, `source` names the source language.
    src = src or [j for j, c in enumerate(names) if c == "source"]
    if not src or not en:
        return None
    prov = [j for j, c in enumerate(names) if c in PROVENANCE_NAMES and j != src[0]]
    return src[0], en[0], (prov[0] if prov else None)


def _read_jsonl(name: str, lines: Iterator[tuple[int, str]], extra: tuple[str, ...]) -> list[Pair]:
    pairs: list[Pair] = []
    for i, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LlinkError(f"{name}:{i}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise LlinkError(f"{name}:{i}: expected a JSON object, found {type(obj).__name__}")
        src_key = _first_key(obj, extra + JSON_SRC_NAMES)
        en_key = _first_key(obj, EN_NAMES)
        if src_key is None or en_key is None:
            missing = "source-language text" if src_key is None else "English text"
            raise LlinkError(
                f"{name}:{i}: no {missing} field; expected one of "
                f"{', '.join(extra + JSON_SRC_NAMES) if src_key is None else ', '.join(EN_NAMES)}"
            )
        prov_key = _first_key(obj, tuple(k for k in PROVENANCE_NAMES if k != src_key))
        prov = str(obj[prov_key]) if prov_key else ""
        pairs.append(_make_pair(name, i, obj[src_key], obj[en_key], prov))
    return pairs


def _first_key(obj: dict, names: tuple[str, ...]) -> str | None:
    lowered = {k.lower(): k for k in obj if isinstance(obj[k], str)}
    return next((lowered[n] for n in names if n in lowered), None)


def _make_pair(name: str, i: int, src: str, en: str, prov: str) -> Pair:
    src, en = normalize(src), normalize(en)
    if not src:
        raise LlinkError(f"{name}:{i}: empty source-language text after normalisation")
    if not en:
        raise LlinkError(f"{name}:{i}: empty English text after normalisation")
    return Pair(src=src, en=en, source=prov)


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
