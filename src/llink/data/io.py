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

from llink.data.scripts import LANGUAGE_NAMES, SCRIPT_RANGES, guess_language, letter_counts
from llink.errors import LlinkError

# Zero-width space is the Khmer/Lao/Burmese word separator: translators use it inconsistently,
# and an encoder tokenizes it as noise, so it is removed everywhere. BOM/ZWNBSP likewise.
# ZWJ/ZWNJ are kept: they change the rendering (and meaning) of conjuncts in some scripts.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\ufeff"))
_SPACE = re.compile(r"\s+")

# Column/field names for the source-language text: generic ones, and every language code the
# corpus builder knows (a corpus built for `hi` has the header `hi<TAB>en<TAB>source`).
LANG_CODES = tuple(SCRIPT_RANGES)
SRC_NAMES = ("src", "source_text", "text", "foreign") + LANG_CODES
EN_NAMES = ("en", "english", "tgt", "target", "en_text")
PROVENANCE_NAMES = ("source", "provenance", "origin")
# `source` holds the text itself only when nothing else can ("source<TAB>english", or JSONL
# {"source": ..., "tgt": ...}); next to a text column it is provenance.
JSON_SRC_NAMES = SRC_NAMES + ("source",)
# Any other name that looks like a language code ("th", "zh-cn") next to `source` makes the
# text column ambiguous: the file is refused rather than `source` read as the text.
_LANG_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][a-z]{2,4})?$")
_NOT_LANG_CODES = {"id", "idx", "key", "ref", "tag", "url", "row", "set"}
_HEADER_CELL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_SNIFF_ROWS = 50  # rows whose scripts decide whether the columns are swapped

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

    `lang` (e.g. "lo"): the column/field of that name is the source text, whatever else the
    header holds. Otherwise a generic name (src, text, ...) or a language code the corpus builder
    knows identifies it. A header that does not say which column is which, or a file whose
    English column is in another script and whose text column is Latin (swapped), is an error.
    """
    p = Path(path)
    name = str(path)
    if not p.is_file():
        raise LlinkError(f"no such file: {name}" if not p.exists() else f"not a file: {name}")
    suffix = _suffix(p)
    lang = lang.strip().lower() if lang and lang.strip().lower() not in EN_NAMES else None
    if suffix in _TSV_EXT:
        pairs = _read_tsv(name, _lines(p, name), lang)
    elif suffix in _JSONL_EXT:
        pairs = _read_jsonl(name, _lines(p, name), lang)
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


def _read_tsv(name: str, lines: Iterator[tuple[int, str]], lang: str | None) -> list[Pair]:
    src_i, en_i, prov_i = 0, 1, 2
    header: list[str] | None = None
    pairs: list[Pair] = []
    first = True
    for i, line in lines:
        if not line.strip():
            continue
        cols = line.split("\t")
        if first:
            first = False
            if _is_header(cols, lang):
                header = [c.strip() for c in cols]
                found = _columns([c.lower() for c in header], lang)
                if isinstance(found, str):
                    raise LlinkError(f"{name}: cannot tell the columns apart in the header line "
                                     f"{chr(9).join(header)!r}: {found}; {_fix('columns')}")
                src_i, en_i, prov_i = found
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
    if header is None:
        _check_not_swapped(name, pairs, "column 1", "column 2", (
            "a file without a header is read as <text><TAB><english>[<TAB><provenance>]; swap the "
            "columns, or add a header line naming them (e.g. `en<TAB>{code}`)"))
    else:
        _check_not_swapped(name, pairs, f"column {header[src_i]!r}", f"column {header[en_i]!r}",
                           f"check the header line {chr(9).join(header)!r}")
    return pairs


def _is_header(cols: list[str], lang: str | None) -> bool:
    """A first row of bare names, at least one of them a column name we know."""
    names = [c.strip().lower() for c in cols if c.strip()]
    known = set(SRC_NAMES + EN_NAMES + PROVENANCE_NAMES) | ({lang} if lang else set())
    return all(_HEADER_CELL.match(c) for c in names) and any(c in known for c in names)


def _columns(names: list[str], lang: str | None) -> tuple[int, int, int | None] | str:
    """Positions (text, English, provenance) among lower-cased column/field names, or why not."""
    en = [j for j, c in enumerate(names) if c in EN_NAMES]
    if lang and lang in names:
        src = [names.index(lang)]  # the language asked for wins
    else:
        src = [j for j, c in enumerate(names) if c in SRC_NAMES]
        if not src and "source" in names:
            others = [c for c in names if c not in EN_NAMES + PROVENANCE_NAMES
                      and _LANG_CODE.match(c) and c not in _NOT_LANG_CODES]
            if others:
                return (f"is {others[0]!r} the source-language text, or 'source'? "
                        "(next to a text column 'source' means provenance)")
            src = [names.index("source")]
    if not en:
        return f"no English column (one of {', '.join(EN_NAMES)})"
    if not src:
        extra = (lang,) if lang and lang not in SRC_NAMES else ()
        return f"no source-language text column (one of {', '.join(extra + SRC_NAMES)})"
    if len(en) > 1:
        return f"two candidate English columns ({names[en[0]]!r}, {names[en[1]]!r})"
    if len(src) > 1:
        return f"two candidate source-language text columns ({names[src[0]]!r}, {names[src[1]]!r})"
    prov = [j for j, c in enumerate(names) if c in PROVENANCE_NAMES and j != src[0]]
    return src[0], en[0], (prov[0] if prov else None)


def _fix(what: str) -> str:
    return (f"name the {what} <lang> (or src) and en, plus an optional source for provenance, "
            f"or pass --lang with the name of the text {what[:-1]}")


def _check_not_swapped(name: str, pairs: list[Pair], src_what: str, en_what: str, fix: str) -> None:
    """Refuse a file whose text column is Latin and whose English column is in another script."""
    head = pairs[:_SNIFF_ROWS]
    src_latin, src_other = letter_counts(p.src for p in head)
    en_latin, en_other = letter_counts(p.en for p in head)
    if src_latin > src_other and en_other > en_latin:
        code = guess_language(p.en for p in head)
        script = f"{LANGUAGE_NAMES[code]} ({code}) script" if code else "a non-Latin script"
        raise LlinkError(
            f"{name}: the {src_what.split()[0]}s look swapped: {src_what}, read as the "
            f"source-language text, is mostly Latin script (English?), and {en_what}, read as the "
            f"English, is mostly {script}; " + fix.replace("{code}", code or "<lang>")
        )


def _read_jsonl(name: str, lines: Iterator[tuple[int, str]], lang: str | None) -> list[Pair]:
    pairs: list[Pair] = []
    first_keys: tuple[str, str] | None = None
    for i, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LlinkError(f"{name}:{i}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise LlinkError(f"{name}:{i}: expected a JSON object, found {type(obj).__name__}")
        keys = [k for k in obj if isinstance(obj[k], str)]
        found = _columns([k.lower() for k in keys], lang)
        if isinstance(found, str):
            if not any(k.lower() in EN_NAMES for k in keys):
                raise LlinkError(f"{name}:{i}: no English text field; expected one of "
                                 f"{', '.join(EN_NAMES)}")
            wanted = ((lang,) if lang and lang not in JSON_SRC_NAMES else ()) + JSON_SRC_NAMES
            if not any(k.lower() in wanted for k in keys):
                raise LlinkError(f"{name}:{i}: no source-language text field; expected one of "
                                 f"{', '.join(wanted)}")
            raise LlinkError(f"{name}:{i}: cannot tell the fields apart "
                             f"({', '.join(keys)}): {found.replace('column', 'field')}; "
                             f"{_fix('fields')}")
        src_i, en_i, prov_i = found
        first_keys = first_keys or (keys[src_i], keys[en_i])
        prov = obj[keys[prov_i]] if prov_i is not None else ""
        pairs.append(_make_pair(name, i, obj[keys[src_i]], obj[keys[en_i]], prov))
    if first_keys:
        _check_not_swapped(name, pairs, f"field {first_keys[0]!r}", f"field {first_keys[1]!r}",
                           "check the field names")
    return pairs


def _make_pair(name: str, i: int, src: str, en: str, prov: str) -> Pair:
    src, en = normalize(src), normalize(en)
    if not src:
        raise LlinkError(f"{name}:{i}: empty source-language text after normalisation")
    if not en:
        raise LlinkError(f"{name}:{i}: empty English text after normalisation")
    return Pair(src=src, en=en, source=prov)


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
