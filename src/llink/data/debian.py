"""Build an English–<lang> parallel corpus from Debian bookworm packages (SPEC §4).

Human translations (MPL-2.0) ship in Debian: LibreOffice offline help and UI catalogues, and
the Firefox ESR language pack. LibreOffice becomes train/dev, Firefox (a different product,
different translators) becomes test, so test measures transfer rather than memorised phrasing.
Nothing here is Khmer-specific except the script table. In bookworm few languages have all three
package families: km and hi (firefox-esr-l10n-hi-in) do; lo, bo have none, my/si/am lack help.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from tqdm import tqdm

from llink.data.io import Pair, normalize, write_pairs
from llink.data.passages import Passage, choose_passage_files, number_pairs, write_passages
from llink.data.scripts import LANGUAGE_NAMES, SCRIPT_RANGES, in_script
from llink.data.splits import HELD_OUT_PAIR_SPLITS
from llink.errors import LlinkError

# Mozilla names some locales by region too (firefox-esr-l10n-hi-in).
FIREFOX_LOCALES = {"hi": "hi-in", "pa": "pa-in", "gu": "gu-in", "ne": "ne-np"}

HELP_EN_PACKAGE = "libreoffice-help-en-us"
FIREFOX_EN_PACKAGE = "firefox-esr"
SPLITS = ("train", "dev", "test")

# Test items must not be solvable by copying Latin tokens, and must be full phrases
# (one-word labels make retrieval a coin toss between synonyms).
_LATIN_OR_DIGIT = re.compile(r"[A-Za-z0-9]")
_PLACEABLE = re.compile(r"[{%<&]")
_TEST_MIN_EN_WORDS = 3


@dataclass(frozen=True)
class Packages:
    help: str
    help_en: str
    ui: str
    firefox: str
    firefox_en: str

    @classmethod
    def for_lang(cls, lang: str) -> "Packages":
        return cls(f"libreoffice-help-{lang}", HELP_EN_PACKAGE, f"libreoffice-l10n-{lang}",
                   f"firefox-esr-l10n-{FIREFOX_LOCALES.get(lang, lang)}", FIREFOX_EN_PACKAGE)

    def names(self) -> list[str]:
        return [self.help, self.help_en, self.ui, self.firefox, self.firefox_en]


def build_corpus(
    lang: str = "km",
    out_dir: Path | None = None,
    work_dir: Path | None = None,
    seed: int = 17,
    test_size: int = 1024,
    dev_min: int = 1000,
    passages_min: int = 320,
) -> dict:
    """Download, extract, pair, filter and split; write {train,dev,test,test_numbers}.tsv.gz,
    test_passages.jsonl.gz and SOURCES.md."""
    if lang not in SCRIPT_RANGES:
        raise LlinkError(f"no script range for language {lang!r}; known: "
                         f"{', '.join(sorted(SCRIPT_RANGES))} (add one to SCRIPT_RANGES in llink/data/scripts.py)")
    out_dir = Path(out_dir) if out_dir is not None else Path("data") / f"en-{lang}"
    work_dir = Path(work_dir) if work_dir is not None else Path(".work") / "debian"
    pkgs = Packages.for_lang(lang)
    roots, versions = fetch_packages(pkgs.names(), work_dir)

    keep = _translation_filter(lang)
    help_files = {f: [p for p in ps if keep(p)]
                  for f, ps in help_pairs(roots[pkgs.help], roots[pkgs.help_en]).items()}
    ui = [p for p in ui_pairs(roots[pkgs.ui]) if keep(p)]
    firefox = [p for p in firefox_pairs(roots[pkgs.firefox], roots[pkgs.firefox_en]) if keep(p)]

    splits, passages = split_corpus(help_files, ui, firefox, seed=seed, test_size=test_size, dev_min=dev_min,
                                    passages_min=passages_min)
    for name in SPLITS + HELD_OUT_PAIR_SPLITS:
        write_pairs(out_dir / f"{name}.tsv.gz", splits[name], lang=lang)
    write_passages(out_dir / "test_passages.jsonl.gz", passages, lang=lang)
    stats = {
        "lang": lang, "seed": seed, "packages": versions,
        "candidates": {"help": sum(map(len, help_files.values())), "ui": len(ui),
                       "firefox": len(firefox)},
        "splits": {name: _counts(splits[name]) for name in SPLITS + HELD_OUT_PAIR_SPLITS},
        "test_passages": _passage_counts(passages),
        "test_numbers_files": len({p.source.split("#")[0] for p in splits["test_numbers"]}),
    }
    (out_dir / "SOURCES.md").write_text(sources_md(stats, test_size, dev_min, passages_min), encoding="utf-8")
    return stats


# --- packages ---------------------------------------------------------------------------------


def fetch_packages(names: list[str], work_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """`apt-get download` + `dpkg-deb -x` each package; return extraction roots and versions."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise LlinkError(f"`{tool}` not found: building the corpus needs a Debian/Ubuntu "
                             "system with apt (the committed data/ files need no rebuild)")
    roots, versions = {}, {}
    for name in tqdm(names, desc="packages", unit="pkg", disable=None):
        deb = _download(name, work_dir / "debs" / name)
        versions[name] = _run(["dpkg-deb", "-f", str(deb), "Version"], name).strip()
        root = work_dir / "root" / name
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(root)], name)
        roots[name] = root
    return roots, versions


def _download(name: str, dest: Path) -> Path:
    # One folder per package, emptied first, so the .deb found is the one just downloaded.
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _run(["apt-get", "download", name], name, cwd=dest)
    debs = sorted(dest.glob("*.deb"))
    if len(debs) != 1:
        raise LlinkError(f"apt-get download {name} produced {len(debs)} .deb files in {dest}")
    return debs[0]


def _run(cmd: list[str], name: str, cwd: Path | None = None) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        err = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise LlinkError(
            f"`{' '.join(cmd)}` failed for package {name}: {' / '.join(err)}. "
            f"Is it available? Try `apt-get update` and `apt-cache policy {name}` "
            "(Debian bookworm with main + security sources)."
        )
    return res.stdout


# --- filters and splits -----------------------------------------------------------------------


def _translation_filter(lang: str):
    def keep(p: Pair) -> bool:
        return bool(p.src and p.en) and p.src != p.en and in_script(p.src, lang)

    return keep


def is_test_eligible(p: Pair) -> bool:
    return (
        not _LATIN_OR_DIGIT.search(p.src)
        and not _PLACEABLE.search(p.src + p.en)
        and len(p.en.split()) >= _TEST_MIN_EN_WORDS
    )


def split_corpus(
    help_files: dict[str, list[Pair]],
    ui: list[Pair],
    firefox: list[Pair],
    seed: int = 17,
    test_size: int = 1024,
    dev_min: int = 1000,
    passages_min: int = 320,
    passages_per_file: int = 4,
) -> tuple[dict[str, list[Pair]], list[Passage]]:
    """test from Firefox, dev = whole help files, test_passages = other whole help files,
    test_numbers = the sentence pairs of those files that share a number between their sides,
    train = the rest of LibreOffice, with every held-out string removed from it."""
    test = sample_test(firefox, test_size, seed)
    in_test = _strings(test)
    dev_files = choose_dev_files(help_files, in_test, dev_min, seed)
    dev = _dedup(p for f in dev_files for p in help_files[f] if _clean(p, in_test))
    held_out = in_test | _strings(dev)
    by_file = choose_passage_files(help_files, set(dev_files), held_out, passages_min, passages_per_file, seed)
    passages = [q for f in sorted(by_file) for q in by_file[f]]
    test_numbers = number_pairs({f: help_files[f] for f in by_file}, held_out)  # before the files join held_out
    held_out |= _strings([p for f in by_file for p in help_files[f]])  # the whole file, not only its passages
    train_files = sorted(set(help_files) - set(dev_files) - set(by_file))
    rest = [p for f in train_files for p in help_files[f]]
    train = _dedup(p for p in rest + ui if _clean(p, held_out))
    return {"train": train, "dev": dev, "test": test, "test_numbers": test_numbers}, passages


def sample_test(firefox: list[Pair], size: int, seed: int) -> list[Pair]:
    # Sorted first so the sample depends on the seed only, not on archive member order.
    pool = sorted((p for p in firefox if is_test_eligible(p)),
                  key=lambda p: (p.source, p.src, p.en))
    random.Random(seed).shuffle(pool)
    test, seen = [], set()
    for p in pool:
        if p.src in seen or p.en in seen:
            continue
        seen.update((p.src, p.en))
        test.append(p)
        if len(test) == size:
            return test
    raise LlinkError(f"only {len(test)} Firefox pairs pass the test filters (need {size}); "
                     "lower test_size for this language")


def choose_dev_files(help_files: dict[str, list[Pair]], banned: set[str], dev_min: int,
                     seed: int) -> list[str]:
    files = sorted(help_files)
    random.Random(seed).shuffle(files)
    chosen, seen = [], set()
    for f in files:
        if len(seen) >= dev_min:
            break
        fresh = {(p.src, p.en) for p in help_files[f] if _clean(p, banned)} - seen
        if fresh:
            chosen.append(f)
            seen |= fresh
    if len(seen) < dev_min:
        raise LlinkError(f"only {len(seen)} help pairs available for dev (need {dev_min})")
    return chosen


def _strings(pairs: list[Pair]) -> set[str]:
    return {p.src for p in pairs} | {p.en for p in pairs}


def _clean(p: Pair, held_out: set[str]) -> bool:
    return p.src not in held_out and p.en not in held_out


def _dedup(pairs) -> list[Pair]:
    out, seen = [], set()
    for p in pairs:
        if (p.src, p.en) not in seen:
            seen.add((p.src, p.en))
            out.append(p)
    return out


def _counts(pairs: list[Pair]) -> dict:
    by_source: dict[str, int] = {}
    for p in pairs:
        kind = p.source.split(":", 1)[0]
        by_source[kind] = by_source.get(kind, 0) + 1
    return {"pairs": len(pairs), "sources": dict(sorted(by_source.items()))}


def _passage_counts(passages: list[Passage]) -> dict:
    modules: dict[str, int] = {}
    for q in passages:
        modules[q.module] = modules.get(q.module, 0) + 1
    return {"passages": len(passages), "files": len({q.file for q in passages}), "modules": dict(sorted(modules.items())),
            "src_chars_median": sorted(len(q.src) for q in passages)[len(passages) // 2] if passages else 0}


# --- LibreOffice help -------------------------------------------------------------------------


_HELP_BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6"}
_VOID = {"br", "img", "input", "meta", "link", "hr", "area", "col", "embed", "source", "wbr"}


class _HelpParagraphs(HTMLParser):
    """Text of every paragraph/heading that has an id, markup removed.

    Inline "switch" spans carry one hidden variant per OS/application plus a default; only the
    default is kept, otherwise "Tools - Options" would be glued to "LibreOffice - Preferences".
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[str, str]] = []
        self._stack: list[tuple[str, bool, int | None]] = []  # (tag, skipped, index in items)
        self._buf: dict[int, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            if tag == "br":
                self._text(" ")
            return
        a = dict(attrs)
        skip = self._skipping() or tag in ("script", "style") or (
            tag == "span" and "hidden" in a and not (a.get("id") or "").startswith("default"))
        idx = None
        ident = a.get("id") or ""
        if tag in _HELP_BLOCKS and ident and not ident.startswith("bm_") and not skip:
            idx = len(self.items)
            self.items.append((ident, ""))
            self._buf[idx] = []
        self._stack.append((tag, skip, idx))

    def handle_endtag(self, tag):
        if not any(t == tag for t, _, _ in self._stack):
            return  # stray end tag
        while self._stack:
            t, _, idx = self._stack.pop()
            if idx is not None:
                self.items[idx] = (self.items[idx][0], "".join(self._buf.pop(idx)))
            if t == tag:
                break

    def handle_data(self, data):
        if not self._skipping():
            self._text(data)

    def _text(self, data: str) -> None:
        for buf in self._buf.values():  # nested ids: the outer paragraph gets the text too
            buf.append(data)

    def _skipping(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]


def _html_paragraphs(path: Path) -> dict[tuple[str, int], str]:
    parser = _HelpParagraphs()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    out, seen = {}, {}
    for ident, text in parser.items:
        # Embedded sections repeat ids within a page; the occurrence number keeps them apart.
        n = seen[ident] = seen.get(ident, -1) + 1
        out[(ident, n)] = text
    return out


def _help_dir(root: Path) -> Path:
    # help/<locale>/text/...; siblings such as help/media/ hold images.
    base = root / "usr/share/libreoffice/help"
    dirs = sorted(d for d in base.glob("*") if (d / "text").is_dir())
    if len(dirs) != 1:
        raise LlinkError(f"expected one language folder in {base}, found {[d.name for d in dirs]}")
    return dirs[0]


def help_pairs(src_root: Path, en_root: Path) -> dict[str, list[Pair]]:
    """Pairs per help file, matched by (file path, element id, occurrence)."""
    src_dir, en_dir = _help_dir(src_root), _help_dir(en_root)
    files = sorted(p.relative_to(src_dir) for p in src_dir.rglob("*.html"))
    out: dict[str, list[Pair]] = {}
    for rel in tqdm(files, desc="help files", unit="file", disable=None):
        if not (en_dir / rel).is_file():
            continue
        src, en = _html_paragraphs(src_dir / rel), _html_paragraphs(en_dir / rel)
        xhp = rel.with_suffix(".xhp").as_posix()
        out[xhp] = [Pair(normalize(src[k]), normalize(en[k]), f"help:{xhp}#{k[0]}")
                    for k in src if k in en]
    return out


# --- LibreOffice UI catalogues ----------------------------------------------------------------


def read_mo(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) from a GNU .mo file; msgid keeps its `context\\x04` prefix."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">"
    _, _, n, ids_at, strs_at = struct.unpack(endian + "5I", data[:20])

    def string(table: int, i: int) -> str:
        length, offset = struct.unpack(endian + "2I", data[table + 8 * i: table + 8 * i + 8])
        return data[offset: offset + length].decode("utf-8", errors="replace")

    return [(string(ids_at, i), string(strs_at, i)) for i in range(n)]


# "~" marks LibreOffice mnemonics, "_" those of .ui dialogs; translators often append them as
# "(~F)". Removed so the pair is plain text, as a user would read it.
_MNEMONIC_SUFFIX = re.compile(r"\s*\([~_][^\W_]\)")
_TILDE = re.compile(r"~(?=[^\W_])")
_UNDERSCORE = re.compile(r"(?<![\w])_(?=[^\W_])|(?<=[^\W_])_(?=[^\W_])")


def strip_mnemonics(text: str, dialog: bool) -> str:
    text = _TILDE.sub("", _MNEMONIC_SUFFIX.sub("", text))
    # Only a lone "_" in a dialog string is a mnemonic; identifiers like a_b_c are left alone.
    if dialog and text.count("_") == 1:
        text = _UNDERSCORE.sub("", text)
    return text


def ui_pairs(ui_root: Path) -> list[Pair]:
    out = []
    catalogues = sorted(ui_root.rglob("LC_MESSAGES/*.mo"))
    for mo in tqdm(catalogues, desc="ui catalogues", unit="file", disable=None):
        for msgid, msgstr in read_mo(mo):
            if not msgid or not msgstr:
                continue  # the header entry, or untranslated
            context, _, english = msgid.rpartition("\x04")
            english, translated = english.split("\x00")[0], msgstr.split("\x00")[0]
            dialog = "|" in context
            out.append(Pair(normalize(strip_mnemonics(translated, dialog)),
                            normalize(strip_mnemonics(english, dialog)), f"ui:{mo.name}"))
    return out


# --- Firefox ----------------------------------------------------------------------------------


_FTL_MESSAGE = re.compile(r"^(-?[A-Za-z][\w-]*)\s*=\s?(.*)$")
_FTL_ATTRIBUTE = re.compile(r"^\s+\.([A-Za-z][\w-]*)\s*=\s?(.*)$")


def parse_ftl(text: str) -> dict[str, str]:
    """Fluent messages and attributes as flat `id` / `id.attr` -> value (whitespace joined)."""
    out: dict[str, list[str]] = {}
    key = msg = None
    for line in text.splitlines():
        if m := _FTL_MESSAGE.match(line):
            msg, key = m.group(1), m.group(1)
            out[key] = [m.group(2)]
        elif msg and (m := _FTL_ATTRIBUTE.match(line)):
            key = f"{msg}.{m.group(1)}"
            out[key] = [m.group(2)]
        elif key and line[:1].isspace():
            out[key].append(line)
        elif line.strip() == "" and key:
            out[key].append("")  # blank lines may sit inside a multi-line value
        else:
            key = msg = None  # comment or junk ends the entry
    return {k: " ".join(v).strip() for k, v in out.items() if " ".join(v).strip()}


def parse_properties(text: str) -> dict[str, str]:
    """Java-style .properties as Mozilla uses them (UTF-8, `\\` continuation, \\uXXXX)."""
    out: dict[str, str] = {}
    logical: list[str] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if not logical and (not stripped or stripped[0] in "#!"):
            continue
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            logical.append(stripped[:-1])
            continue
        logical.append(stripped)
        entry, logical = "".join(logical), []
        m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", entry)
        if m:
            out[m.group(1)] = _unescape_properties(m.group(2))
    return out


_PROPERTIES_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


def _unescape_properties(value: str) -> str:
    def one(m: re.Match) -> str:
        esc = m.group(1)
        if len(esc) == 5:
            return chr(int(esc[1:], 16))
        return {"n": "\n", "t": "\t"}.get(esc, esc)

    return _PROPERTIES_ESCAPE.sub(one, value)


def _firefox_en_archives(en_root: Path) -> dict[str, zipfile.ZipFile]:
    app = en_root / "usr/lib/firefox-esr"
    try:
        return {"": zipfile.ZipFile(app / "omni.ja"),
                "browser/": zipfile.ZipFile(app / "browser/omni.ja")}
    except (OSError, zipfile.BadZipFile) as e:
        raise LlinkError(f"cannot open Firefox's omni.ja archives under {app}: {e}") from None


def _langpack(src_root: Path) -> zipfile.ZipFile:
    xpis = sorted(src_root.rglob("langpack-*.xpi"))
    if len(xpis) != 1:
        raise LlinkError(f"expected one langpack-*.xpi under {src_root}, found {len(xpis)}")
    return zipfile.ZipFile(xpis[0])


def _en_location(member: str, locale: str) -> tuple[str, str]:
    """Map a langpack member to (archive prefix, en-US member name in that omni.ja)."""
    prefix = "browser/" if member.startswith("browser/") else ""
    rest = member[len(prefix):]
    return prefix, "/".join("en-US" if s == locale else s for s in rest.split("/"))


def _short_name(en_member: str, prefix: str) -> str:
    path = re.sub(r"^(localization/en-US/|chrome/en-US/locale/(en-US/)?)", "", en_member)
    return prefix + path if prefix and not path.startswith("browser") else path


def firefox_pairs(src_root: Path, en_root: Path) -> list[Pair]:
    """Pairs matched by resource path and key between the langpack and en-US omni.ja."""
    pack, english = _langpack(src_root), _firefox_en_archives(en_root)
    locale = _langpack_locale(pack)
    members = sorted(m for m in pack.namelist() if m.endswith((".ftl", ".properties")))
    out = []
    for member in tqdm(members, desc="firefox resources", unit="file", disable=None):
        prefix, en_member = _en_location(member, locale)
        if en_member not in english[prefix].namelist():
            continue
        parse = parse_ftl if member.endswith(".ftl") else parse_properties
        src = parse(pack.read(member).decode("utf-8", errors="replace"))
        en = parse(english[prefix].read(en_member).decode("utf-8", errors="replace"))
        name = _short_name(en_member, prefix)
        out += [Pair(normalize(src[k]), normalize(en[k]), f"firefox:{name}#{k}")
                for k in src if k in en]
    return out


def _langpack_locale(pack: zipfile.ZipFile) -> str:
    for m in pack.namelist():
        if m.startswith("localization/") and m.count("/") >= 2:
            return m.split("/")[1]
    raise LlinkError("language pack has no localization/<locale>/ folder")


# --- provenance note --------------------------------------------------------------------------


def sources_md(stats: dict, test_size: int, dev_min: int, passages_min: int = 320) -> str:
    lang, pk = stats["lang"], stats["packages"]
    language = LANGUAGE_NAMES.get(lang, lang)
    rows = "\n".join(f"| `{n}` | `{v}` |" for n, v in pk.items())
    counts = "\n".join(
        f"| {s} | {c['pairs']:,} | {', '.join(f'{k} {v:,}' for k, v in c['sources'].items())} |"
        for s, c in stats["splits"].items()
    )
    cand = stats["candidates"]
    tp = stats["test_passages"]
    tn_count = stats["splits"].get("test_numbers", {}).get("pairs", 0)
    tn_files = stats.get("test_numbers_files", 0)
    return f"""# English–{language} (`{lang}`) corpus: sources and licence

Derived from these Debian bookworm (main + security) binary packages, fetched with
`apt-get download`:

| package | version |
|---|---|
{rows}

## Licence and attribution

The text is from LibreOffice (help and user interface, © The Document Foundation and
contributors) and Firefox ESR (© Mozilla Foundation and contributors), including the work of
the volunteer {language} translators of both projects. It is distributed under the
**Mozilla Public License 2.0** (https://mozilla.org/MPL/2.0/); these files are a derived,
filtered extract and remain under MPL-2.0.

## How the pairs were made

- **help**: `libreoffice-help-{lang}` vs `libreoffice-help-en-us`: paragraphs and headings paired
  by file path and element id; HTML markup removed; only the default variant of OS/application
  switches kept.
- **ui**: `libreoffice-l10n-{lang}` `.mo` catalogues (msgid is `context\\x04English`); mnemonic
  markers (`~`, a lone `_` in dialog strings, `(~X)`) removed.
- **firefox**: `firefox-esr-l10n-{lang}` language pack vs the en-US resources in `firefox-esr`'s
  `omni.ja` and `browser/omni.ja`: Fluent `.ftl` messages/attributes and `.properties` keys
  paired by resource path and key.
- Normalisation (both sides): Unicode NFC, U+200B and U+FEFF removed, whitespace collapsed,
  stripped. Pairs dropped when empty, when the {lang} side equals the English, or when it has no
  character of the {lang} script (untranslated fall-backs). Exact (text, English) duplicates
  removed. Candidates after filtering, before de-duplication: help {cand['help']:,},
  ui {cand['ui']:,}, firefox {cand['firefox']:,}.

## Splits (seed {stats['seed']})

- **test**: exactly {test_size:,} Firefox pairs, seeded sample, whose {lang} side has no Latin
  letter or ASCII digit, whose English has at least 3 words, with no `{{`, `%`, `<`, `&` on
  either side; every English and every {lang} string unique within test.
- **dev**: whole help files, chosen by a seeded shuffle until at least {dev_min:,} pairs; pairs
  whose English or {lang} text occurs in test removed.
- **test_passages** (comprehension): whole help files, not in dev, chosen by a seeded shuffle
  (a stream of its own, so dev is unchanged) among files that give at least 4 passages, until at
  least {passages_min:,} passages. A passage is a run of consecutive paragraphs of one file (never
  across a heading, paragraphs of 3+ English words) holding 2-6 English sentences and
  150-900 characters of {lang}; a paragraph that occurs in dev or test breaks a run.
  {tp['passages']:,} passages from {tp['files']} files (median {tp['src_chars_median']} {lang}
  characters); by program: {', '.join(f'{k} {v}' for k, v in tp['modules'].items())}.
- **test_numbers** (numbers kept, issue 25): the sentence pairs of the test_passages files (all
  their paragraphs and headings, not only those inside passages) whose {lang} side, digits of any
  script mapped to ASCII, and English share at least one number (`\\d+(?:[.,]\\d+)?`); pairs whose
  English or {lang} text occurs in dev or test removed; every {lang} and every English string once.
  It measures whether a model keeps the numbers of what it reads (a count, a version, a date, a
  formula's arguments): a test of detail, held out like test, its scores reported and never used
  to choose a model, checkpoint or setting. {tn_count:,} pairs from {tn_files} of the {tp['files']}
  files.
- **train**: all other help files plus the UI catalogues; pairs whose English or {lang} text
  occurs anywhere in the dev, test or test_passages files removed.

| split | pairs | by source |
|---|---|---|
{counts}

Columns of each `.tsv.gz` (test_numbers too): `{lang}`, `en`, `source` (provenance:
`help:<file>.xhp#<id>`, `ui:<catalogue>.mo`, `firefox:<resource>#<key>`).
`test_passages.jsonl.gz` has the same three fields (`source` is
`help:<file>.xhp#<first id>..<last id>`) plus `file`, `title` (the file's first heading), `module`
(the program) and `sentences` (English sentences); every pairs reader reads it, and the part of
`source` before `#` groups passages by document.

## Rebuild

    llink data build --lang {lang}

Needs a Debian bookworm system with apt; the archive's versions move with security updates, so a
rebuild later may differ slightly from the committed files.
"""
