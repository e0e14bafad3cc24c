"""A general-domain English corpus from Debian bookworm packages (issue 26).

Every parallel pair of the project is software text (LibreOffice, Firefox), so the bridge never
sees everyday English. This builds English-only sentences and short paragraphs from packages that
ship real prose under free licences, offline apart from `apt-get download`:

- `wordnet-base`: WordNet 3.0 glosses and example sentences (dictionary; everyday usage),
- `dict-gcide`: the GNU Collaborative International Dictionary of English (Webster 1913 + later):
  definitions, usage notes and literary quotations (dictionary/encyclopaedic, 19th c. literature),
- `sword-text-web`: the World English Bible (modern-English translation, public domain),
- `r-cran-janeaustenr`: Jane Austen's six novels (narrative and dialogue; public domain text),
- `dict-devil`: Ambrose Bierce's The Devil's Dictionary (witty prose; public domain).

Rows are `{"en", "kind": "sentence"|"paragraph", "source": "<package>:<entry id>"}`; a paragraph is
2-6 consecutive sentences of one entry's natural paragraph (a chapter paragraph, a sense block),
150-900 characters, like the comprehension passages of `llink.data.passages`.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import shutil
import struct
import subprocess
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tqdm import tqdm

# Private helpers of the bilingual builder, reused so both builders fetch packages one way.
from llink.data.debian import _download, _run
from llink.data.io import _gzip_bytes, normalize
from llink.errors import LlinkError

MIN_WORDS, MAX_WORDS = 5, 60  # a sentence
MIN_SENTENCES, MAX_SENTENCES = 2, 6  # a paragraph
MIN_CHARS, MAX_CHARS = 150, 900  # a paragraph
MAX_NON_LETTERS = 0.20  # share of non-space characters that are not (Latin) letters
# Per source and kind, at most this many rows are kept (a seeded sample): the whole corpus would be
# 417k rows, 22 MB gzipped, too big to commit; these caps keep it near 7 MB (117k rows).
DEFAULT_CAPS = {"sentence": 25_000, "paragraph": 5_000}

Entry = tuple[str, list[str]]  # (entry id, its natural paragraphs as raw text)


# --- sources ----------------------------------------------------------------------------------


def wordnet_entries(root: Path) -> Iterator[Entry]:
    """`data.{noun,verb,adj,adv}`: after ` | ` each synset line has its gloss, `definition;
    "example"; "example"`. Definition and examples are separate units: they are not one text."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / "usr/share/wordnet" / f"data.{pos}"
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or " | " not in line:  # the licence header lines start with 2 spaces
                continue
            gloss = line.split(" | ", 1)[1]
            examples = re.findall(r'"([^"]+)"', gloss)
            definition = gloss.split('"', 1)[0].strip().rstrip(";").strip()
            yield f"{pos}.{line[:8]}", [definition, *examples]


def read_dictd(root: Path, name: str) -> Iterator[tuple[str, str]]:
    """(headword, text) of each entry of a dictd database, in file order, via its .index
    (`headword<TAB>offset<TAB>length`, numbers in dictd's base64); `00-database-*` skipped."""
    base = root / "usr/share/dictd" / name
    data = gzip.decompress((base.with_suffix(".dict.dz")).read_bytes())  # .dz is gzip-compatible
    spans = {}
    for line in base.with_suffix(".index").read_text(encoding="utf-8", errors="replace").splitlines():
        word, off, length = line.split("\t")[:3]
        if not word.startswith("00"):
            spans.setdefault((_b64(off), _b64(length)), word)
    for (off, length), word in sorted(spans.items()):
        raw = data[off:off + length]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # a few GCIDE entries are Windows-1252
            text = raw.decode("cp1252", errors="replace")
        yield f"{word}@{off}", text


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64.index(c)
    return n


_GCIDE_TAG_LINE = re.compile(r"^\s*\[[^\]]*\]\s*$", re.M)  # "[1913 Webster]", "[WordNet 1.5 + PJC]"
_GCIDE_ACCENT = re.compile(r"\[(['`^\"~,])([A-Za-z])\]")  # caf['e] -> café
_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", ",": "\u0327"}
_GCIDE_LIGATURE = {"[ae]": "æ", "[AE]": "Æ", "[oe]": "œ", "[OE]": "Œ"}
# Usage labels: [Obs.], [R.], [Colloq.], [Prov. Eng.]. Other brackets ("[may]" added in a
# quotation, accent codes) stay, and the markup filter drops the unit rather than corrupt it.
_LABEL_TAG = re.compile(r"\s*\[[A-Z][^\]\[]{0,25}\.\]")
_SENSE_HEAD = re.compile(r"^(?:\d+\.\s*|\([a-z]\)\s*|\([A-Z][^()]{0,30}\)\s*)+")  # "2. (Zool.) (a) "
_SUB_SENSE = re.compile(r"(?<=\s)\([a-z]\)\s+")  # "... a spray. (b) An instrument ...": "(b)" goes
_CITATION = re.compile(r"\s*--(?=[A-Z]).*$")  # "--Shak.", "--I. Taylor." end a quotation


def gcide_entries(root: Path) -> Iterator[Entry]:
    """Entries' blocks (blank-line separated): senses, usage notes, quotations. Dropped: the
    headword/pronunciation/etymology header, synonym lists, `{phrase}` sub-entries, citations."""
    for key, text in read_dictd(root, "gcide"):
        text = _GCIDE_TAG_LINE.sub("", text)
        blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
        if not blocks:
            continue
        blocks[0] = _drop_gcide_header(blocks[0])
        out = []
        for b in blocks:
            b = " ".join(b.split())
            if not b or b.startswith(("Syn", "{", "See")):
                continue
            b = re.sub(r"^(?:Usage|Note):\s*", "", b)
            b = _SUB_SENSE.sub("", _SENSE_HEAD.sub("", b))
            b = _CITATION.sub("", _LABEL_TAG.sub("", b))
            b = _GCIDE_ACCENT.sub(lambda m: unicodedata.normalize("NFC", m.group(2) + _ACCENTS[m.group(1)]), b)
            for code, char in _GCIDE_LIGATURE.items():
                b = b.replace(code, char)
            out.append(b.replace("{", "").replace("}", ""))
        yield key, out


def _drop_gcide_header(block: str) -> str:
    """The header (headword, pronunciation, part of speech, [etymology]) may span lines. It ends
    at the first line, outside any [...], that ends with `.`, `]` or `)` and is followed by a line
    starting like a definition (capital letter, sense number or `(`)."""
    lines = block.split("\n")
    depth = 0
    for i, line in enumerate(lines[:-1]):
        depth += line.count("[") - line.count("]")
        nxt = lines[i + 1].strip()
        if depth <= 0 and line.rstrip().endswith((".", "]", ")")) and re.match(r"[A-Z(]|\d+\.", nxt):
            return "\n".join(lines[i + 1:])
    return ""  # a header alone: no definition text


def devil_entries(root: Path) -> Iterator[Entry]:
    """`WORD, n.  Definition...`; prose blocks kept, indented blocks (verse, attributions) dropped."""
    for key, text in read_dictd(root, "devil"):
        blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
        prose = [b for b in blocks if not b.startswith(" ")]
        if prose:
            prose[0] = re.sub(r"^[A-Z][^a-z]*?,\s+[a-z][a-z. &]*?\.\s+", "", prose[0])
        yield key.split("@")[0].upper(), prose


_WEB_CUT = re.compile(r"<(note|title)\b[^>]*>.*?</\1>", re.S)  # footnotes and headings
_TAG = re.compile(r"<[^>]+>")


def web_entries(root: Path) -> Iterator[Entry]:
    """SWORD zText module: `*.bzv` (10 bytes per verse: block, offset, size) points into
    zlib-compressed blocks located by `*.bzs` (12 bytes: offset, size, raw size). Verses are OSIS
    XML; the translators' paragraph markers (`type="x-p"`, poetry `<lg>`) make the paragraphs,
    `<chapter sID=...>` the entries. Text before a book's first chapter (prefaces) is skipped; a
    book's end marker (`eID`) can stand before the last verses of the chapter and ends nothing."""
    mods = sorted(p for p in (root / "usr/share/sword/modules/texts/ztext").iterdir() if p.is_dir())
    if not mods:
        raise LlinkError(f"no SWORD module under {root}")
    for part in ("ot", "nt"):
        chapter, paras = None, [""]
        text = _WEB_CUT.sub(" ", _sword_text(mods[0], part))
        pos = 0
        for m in _TAG.finditer(text + "<end/>"):
            paras[-1] += text[pos:m.start()]
            pos = m.end()
            tag = m.group()
            new_chapter = re.match(r'<chapter\b[^>]*\bsID="([^"]+)"', tag)
            book_start = tag == "<end/>" or (tag.startswith("<div") and re.search(r'\bsID="', tag)
                                             and re.search(r'\btype="(?:book|front)"', tag))
            if new_chapter or book_start:
                if chapter:
                    yield chapter, paras
                chapter, paras = (new_chapter.group(1) if new_chapter else None), [""]
            elif re.match(r'<(?:div\b[^>]*type="x-p"|lg\b)', tag):
                paras.append("")
            elif re.match(r"<(?:l|lb|milestone)\b", tag):
                paras[-1] += " "


def _sword_text(mod: Path, part: str) -> str:
    bzs, bzv, bzz = ((mod / f"{part}.{ext}").read_bytes() for ext in ("bzs", "bzv", "bzz"))
    blocks: dict[int, bytes] = {}
    verses = []
    for block, offset, size in struct.iter_unpack("<IIH", bzv):
        if size == 0:
            continue
        if block not in blocks:
            start, length, _ = struct.unpack_from("<III", bzs, 12 * block)
            blocks[block] = zlib.decompress(bzz[start:start + length])
        verses.append(blocks[block][offset:offset + size].decode("utf-8", errors="replace"))
    return " ".join(verses)


def austen_entries(root: Path) -> Iterator[Entry]:
    """janeaustenr's lazy-load database `data/Rdata.rdb`: the gzip'd index `Rdata.rdx` maps each
    novel to (offset, length) of a zlib'd R-serialised character vector, one element per line.
    Paragraphs are blank-line separated; entries are chapters; `_italics_` marks removed."""
    data = root / "usr/lib/R/site-library/janeaustenr/data"
    index = _unserialize(gzip.decompress((data / "Rdata.rdx").read_bytes()))
    rdb = (data / "Rdata.rdb").read_bytes()
    for name, (off, length) in sorted(index["variables"].items()):
        lines = _unserialize(zlib.decompress(rdb[off + 4:off + length]))  # 4 bytes: raw length
        chapter, paras = 0, [[]]  # chapter 0: the title page, skipped
        for line in lines:
            line = (line or "").replace("_", "")
            if re.match(r"\s*(CHAPTER|Chapter) [0-9IVXLC]+\b", line):
                if chapter:
                    yield f"{name}.{chapter}", [" ".join(p) for p in paras if p]
                chapter, paras = chapter + 1, [[]]
            elif not line.strip():
                paras.append([])
            else:
                paras[-1].append(line.strip())
        if chapter:
            yield f"{name}.{chapter}", [" ".join(p) for p in paras if p]


def _unserialize(raw: bytes):
    """The subset of R's XDR serialisation these files use: character/integer/logical/double
    vectors and lists, with names (a list becomes a dict)."""
    pos, symbols = 0, []

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return raw[pos - n:pos]

    def integer() -> int:
        return struct.unpack(">i", take(4))[0]

    def obj():
        flags = integer()
        kind, has_attr, has_tag = flags & 0xFF, flags & 0x200, flags & 0x400
        if kind == 254:  # NULL
            return None
        if kind == 9:  # CHARSXP
            n = integer()
            return None if n == -1 else take(n).decode("utf-8", errors="replace")
        if kind == 1:  # symbol, remembered for later references to it
            symbols.append(obj())
            return symbols[-1]
        if kind == 255:  # reference to an earlier symbol
            return symbols[(flags >> 8) - 1]
        if kind == 2:  # pairlist (attributes)
            tag = obj() if has_tag else None
            value, rest = obj(), obj()
            return {tag: value, **(rest or {})}
        if kind in (10, 13, 14, 16, 19):
            n = integer()
            if kind in (16, 19):
                items = [obj() for _ in range(n)]
            else:
                items = list(struct.unpack(f">{n}{'d' if kind == 14 else 'i'}", take((8 if kind == 14 else 4) * n)))
            names = (obj() if has_attr else {}).get("names")
            return dict(zip(names, items)) if names is not None else items
        raise LlinkError(f"unsupported R object type {kind} in janeaustenr data")

    if take(2) != b"X\n":
        raise LlinkError("janeaustenr data is not R XDR serialisation")
    version = integer()
    take(8)
    if version == 3:
        take(integer())  # native encoding name
    return obj()


@dataclass(frozen=True)
class Source:
    extract: Callable[[Path], Iterable[Entry]]
    licence: str
    taken: str


SOURCES = {
    "wordnet-base": Source(wordnet_entries, "WordNet 3.0 licence (BSD-like; notice below must be kept)",
                           "glosses and example sentences of every synset (data.noun/verb/adj/adv)"),
    "dict-gcide": Source(gcide_entries, "GPL-2.0-or-later",
                         "definitions, usage notes and quotations (no headers, etymologies, synonym lists)"),
    "sword-text-web": Source(web_entries, "public domain (World English Bible)",
                             "verse text by the translators' paragraphs, chapters as entries; no footnotes or headings"),
    "r-cran-janeaustenr": Source(austen_entries, "text public domain (Austen, 1811-1818); packaging MIT",
                                 "the six novels, paragraphs by chapter"),
    "dict-devil": Source(devil_entries, "public domain (Bierce, 1911)", "definitions' prose (no verse)"),
}
PACKAGES = tuple(SOURCES)


# --- cleaning, splitting, paragraphs ----------------------------------------------------------

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "messrs", "rev", "col", "gen", "capt", "lt", "hon", "esq",
    "prof", "vs", "cf", "viz", "e.g", "i.e", "no", "vol", "ch", "p", "pp", "fig", "ed", "al", "co", "gr",
    "lat", "fr", "ger", "obs", "esp", "approx", "ca", "n", "v", "adj", "adv", "prep",
}
# A candidate end: `.`, `!`, `?` (and closing quotes/brackets), whitespace, then something that can
# start a sentence (an opening quote/bracket, a capital letter or a digit).
_END = re.compile(r"[.!?]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_RESIDUE = re.compile(r"[<>{}\[\]\\|*^_~#@=]")  # leftover markup of any source


def clean(text: str) -> str:
    """Normalise (NFC, no zero-width characters, single spaces), `--` and `. . .` made typographic."""
    text = normalize(text)
    text = re.sub(r"\s*--\s*", "—", text)
    return re.sub(r"\.(?: \.){2,}", "…", text)


def split_sentences(text: str) -> list[str]:
    """Rule-based: a sentence ends at `.`/`!`/`?` (plus closing quotes or brackets) followed by a
    space and an opening quote/bracket, capital letter or digit, unless the word before the period
    is a known abbreviation (Mr., Mrs., St., cf., ...), a single letter (an initial) or dotted
    letters (e.g., U.S., H.M.S.).
    Quotes are not tracked: a speech of several sentences is split like narration."""
    out, start = [], 0
    for m in _END.finditer(text):
        word = re.search(r"(\S+?)[.!?]+[\"'”’)\]]*\s+$", text[start:m.end()])
        token = word.group(1).lstrip("\"'“‘(").lower() if word else ""
        if text[m.start()] == "." and (token in _ABBREVIATIONS or re.fullmatch(r"[a-z](?:\.[a-z])*", token)):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _non_letter_share(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() and ord(c) < 0x250 for c in chars)  # Latin letters only
    return 1 - letters / max(1, len(chars))


def good_sentence(s: str) -> bool:
    return (MIN_WORDS <= len(s.split()) <= MAX_WORDS and _non_letter_share(s) <= MAX_NON_LETTERS
            and not _RESIDUE.search(s) and any(c.islower() for c in s))


def paragraphs(sentences: list[str | None], rng: random.Random) -> list[str]:
    """Non-overlapping runs of consecutive good sentences (None, a dropped sentence, breaks a
    run). Each run aims at a seeded 2-6 sentences, stops before 900 characters, and is kept when
    it has 2+ sentences and 150+ characters, so lengths spread like a user's passages."""
    out, i = [], 0
    while i < len(sentences):
        want, run = rng.randint(MIN_SENTENCES, MAX_SENTENCES), []
        for s in sentences[i:]:
            if s is None or len(run) == want or len(" ".join(run + [s])) > MAX_CHARS:
                break
            run.append(s)
        text = " ".join(run)
        if len(run) >= MIN_SENTENCES and len(text) >= MIN_CHARS:
            out.append(text)
        i += max(1, len(run))
    return out


def dedup_key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def units(package: str, entries: Iterable[Entry], seed: int) -> Iterator[dict]:
    """Sentence and paragraph rows of one source, in entry order."""
    rng = random.Random(f"{seed}:{package}")
    for entry_id, blocks in entries:
        source = f"{package}:{entry_id}"
        for block in blocks:
            sents = [s if good_sentence(s) else None for s in split_sentences(clean(block))]
            for s in sents:
                if s is not None:
                    yield {"en": s, "kind": "sentence", "source": source}
            for p in paragraphs(sents, rng):
                yield {"en": p, "kind": "paragraph", "source": source}


# --- build ------------------------------------------------------------------------------------


def build_english(out_dir: Path | str = Path("data/en"), packages: Iterable[str] = PACKAGES, seed: int = 17,
                  cache_dir: Path | str | None = None, progress: bool = True,
                  caps: dict[str, int] | None = DEFAULT_CAPS) -> dict:
    """Download (or reuse from `cache_dir`) and extract the packages, then write
    `english.jsonl.gz` and `SOURCES.md` to `out_dir`; return the statistics. Rows are
    deduplicated across sources (first source in `packages` order wins), capped per source and
    kind by a seeded sample (`caps=None`: no cap) and shuffled with `seed`."""
    packages = list(dict.fromkeys(packages))
    unknown = [p for p in packages if p not in SOURCES]
    if unknown or not packages:
        raise LlinkError(f"no English extractor for {', '.join(unknown) or 'an empty package list'}; "
                         f"known packages: {', '.join(PACKAGES)}")
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(".work") / "english"
    seen: set[str] = set()
    rows: list[dict] = []
    stats: dict = {"seed": seed, "caps": caps, "packages": {}}
    for name in tqdm(packages, desc="english", unit="pkg", disable=not progress):
        root, version = fetch(name, cache_dir)
        try:
            found = list(units(name, SOURCES[name].extract(root), seed))
        except (OSError, ValueError, KeyError, IndexError, struct.error, zlib.error) as e:
            raise LlinkError(f"{name} {version}: unexpected file layout or format ({type(e).__name__}: {e}); "
                             "the extractor in llink/data/english.py needs updating") from None
        fresh = []
        for r in found:
            key = dedup_key(r["en"])
            if key not in seen:
                seen.add(key)
                fresh.append(r)
        kept = []
        for kind in ("sentence", "paragraph"):
            of_kind = [r for r in fresh if r["kind"] == kind]
            if caps and len(of_kind) > caps[kind]:
                of_kind = random.Random(f"{seed}:{name}:{kind}").sample(of_kind, caps[kind])
            kept += of_kind
        rows += kept
        stats["packages"][name] = {
            "version": version, "licence": SOURCES[name].licence, "taken": SOURCES[name].taken,
            "extracted": len(found), "distinct": len(fresh),
            **{kind: sum(r["kind"] == kind for r in kept) for kind in ("sentence", "paragraph")},
        }
    random.Random(seed).shuffle(rows)
    stats["rows"] = len(rows)
    stats["sentence_words"] = _percentiles([len(r["en"].split()) for r in rows if r["kind"] == "sentence"])
    stats["paragraph_chars"] = _percentiles([len(r["en"]) for r in rows if r["kind"] == "paragraph"])
    out_dir.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    (out_dir / "english.jsonl.gz").write_bytes(_gzip_bytes(body))
    stats["bytes"] = (out_dir / "english.jsonl.gz").stat().st_size
    (out_dir / "SOURCES.md").write_text(sources_md(stats), encoding="utf-8")
    return stats


def fetch(name: str, cache_dir: Path) -> tuple[Path, str]:
    """The package's extraction root and version. A .deb already in `cache_dir/debs/<name>/` is
    reused (offline rebuilds); otherwise `apt-cache show` tells a package Debian does not have
    from one that failed to download."""
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise LlinkError(f"`{tool}` not found: building the English corpus needs a Debian/Ubuntu "
                             "system with apt (the committed data/en/ files need no rebuild)")
    debs = sorted((cache_dir / "debs" / name).glob("*.deb"))
    if len(debs) == 1:
        deb = debs[0]
    else:
        shown = subprocess.run(["apt-cache", "show", name], capture_output=True, text=True)
        if shown.returncode != 0 or "Version:" not in shown.stdout:
            raise LlinkError(f"package {name} is not in Debian bookworm (apt-cache knows no such package; "
                             "if it should exist, run `apt-get update` first)")
        try:
            deb = _download(name, cache_dir / "debs" / name)
        except LlinkError as e:
            raise LlinkError(f"could not download {name} (network failure or unreachable mirror?): {e}") from None
    version = _run(["dpkg-deb", "-f", str(deb), "Version"], name).strip()
    root = cache_dir / "root" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(deb), str(root)], name)
    return root, version


def _percentiles(values: list[int]) -> dict:
    if not values:
        return {}
    values = sorted(values)
    return {f"p{q}": values[min(len(values) - 1, len(values) * q // 100)] for q in (5, 25, 50, 75, 95)}


WORDNET_NOTICE = """WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.
THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS
OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY
MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANTABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR
THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY
PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or Princeton may
not be used in advertising or publicity pertaining to distribution of the software and/or
database. Title to copyright in this software, database and any associated documentation shall at
all times remain with Princeton University and LICENSEE agrees to preserve same."""


def sources_md(stats: dict) -> str:
    rows = "\n".join(
        f"| `{name}` | `{s['version']}` | {s['licence']} | {s['taken']} | {s['extracted']:,} | "
        f"{s['distinct']:,} | {s['sentence']:,} | {s['paragraph']:,} |"
        for name, s in stats["packages"].items())
    caps = stats["caps"]
    cap_line = (f"at most {caps['sentence']:,} sentences and {caps['paragraph']:,} paragraphs per source "
                f"(a seeded sample of its distinct rows)" if caps else "no cap per source")

    def pct(d: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items())

    return f"""# General English corpus (`english.jsonl.gz`): sources and licences

English-only text for the bridge (issue 26), built by `llink data english` from these Debian
bookworm packages (fetched with `apt-get download`). Each row is
`{{"en": text, "kind": "sentence"|"paragraph", "source": "<package>:<entry id>"}}`.

| package | version | licence | text taken | units extracted | distinct | sentences kept | paragraphs kept |
|---|---|---|---|---|---|---|---|
{rows}

{stats['rows']:,} rows, seed {stats['seed']}, {cap_line}. Sentence length in words: {pct(stats['sentence_words'])}.
Paragraph length in characters: {pct(stats['paragraph_chars'])}.

## Licences

Each row keeps the licence of its package (named by `source`); the full terms are in that
package's `/usr/share/doc/<package>/copyright`.
- `dict-gcide` text is GPL-2.0-or-later: rows from it, and this file as a whole when redistributed,
  are under the GNU GPL v2 or later.
- `wordnet-base` (WordNet 3.0) requires its notice on every copy:

```
{WORDNET_NOTICE}
```
- `sword-text-web`: the World English Bible is in the public domain ("World English Bible" is a
  trademark of eBible.org; the rows are extracts, not the WEB as published).
- `r-cran-janeaustenr`: the novels are public domain; the R packaging is MIT (© Julia Silge).
- `dict-devil`: The Devil's Dictionary (1911) is public domain.

## How the rows were made

- Markup removed per source (OSIS tags and footnotes, GCIDE headers/tags/citations/braces,
  `_italics_`), then Unicode NFC, whitespace collapsed, `--` to an em dash, `. . .` to `…`.
- Sentences: split after `.`, `!` or `?` (and closing quotes/brackets) before a capital, digit or
  opening quote, except after a known abbreviation, a single-letter initial or dotted letters
  (e.g., U.S.); quotes are not tracked, so a speech may be split mid-quotation. Kept when
  {MIN_WORDS}-{MAX_WORDS} words, at most {MAX_NON_LETTERS:.0%} of non-space characters not Latin letters,
  no markup residue, some lower-case letter.
- Paragraphs: runs of consecutive kept sentences of one natural paragraph of one entry (a
  chapter's paragraph, a dictionary sense or note), a seeded target of
  {MIN_SENTENCES}-{MAX_SENTENCES} sentences, kept when {MIN_CHARS}-{MAX_CHARS} characters.
- Exact duplicates (NFC, case-folded, whitespace-collapsed) removed across all sources and kinds,
  the first source in package order keeping its row; rows then shuffled with the seed.

Rebuild (byte-identical for the same package versions): `llink data english --out data/en`.

## Surveyed, not used

- `fortunes`, `fortunes-min`: the BSD licence covers the program; the collected quotations and
  song lyrics have no clear licence.
- `bible-kjv-text` (public domain text): a custom compressed format, and the World English Bible
  gives the same register in modern English.
- `dict-jargon` (public domain), `debian-reference-en`, `doc-debian`: software text, what the
  corpus must get away from.
"""
