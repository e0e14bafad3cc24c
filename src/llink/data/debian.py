"""Build an English–<lang> parallel corpus from Debian bookworm packages (SPEC §4).

Human translations (MPL-2.0) ship in Debian: LibreOffice offline help and UI catalogues, and
the Firefox ESR language pack. LibreOffice becomes train/dev, Firefox (a different product,
different translators) becomes test, so test measures transfer rather than memorised phrasing.
Nothing here is Khmer-specific except the script table. In bookworm few languages have all three
package families: km and hi (firefox-esr-l10n-hi-in) do; lo, bo have none, my/si/am lack help.
For those, a pre-flight (llink.data.families) says what exists, the gettext catalogues of other
desktop packages (llink.data.gettext_sources) add UI strings, and dev/test are held out by whole
source from what exists (llink.data.source_splits).
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

from tqdm import tqdm

from llink.data import families, sources_note
from llink.data.families import check_lang, not_in_debian
from llink.data.gettext_sources import GETTEXT_PACKAGES, catalogue_pairs, licence, read_mo, strip_mnemonics
from llink.data.io import Pair, normalize, write_pairs
from llink.data.passages import Passage, choose_passage_files, number_pairs, write_passages
from llink.data.scripts import SCRIPT_RANGES, language_name
from llink.data.source_splits import cap, choose_dev_units, choose_test_projects, sample_eligible, too_little
from llink.data.splits import HELD_OUT_PAIR_SPLITS
from llink.errors import LlinkError

SPLITS = ("train", "dev", "test")
GETTEXT_MODES = ("auto", "yes", "no")


# Test items must not be solvable by copying Latin tokens, and must be full phrases
# (one-word labels make retrieval a coin toss between synonyms).
_LATIN_OR_DIGIT = re.compile(r"[A-Za-z0-9]")
_PLACEABLE = re.compile(r"[{%<&]")
_TEST_MIN_EN_WORDS = 3


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_corpus(
    lang: str = "km",
    out_dir: Path | None = None,
    work_dir: Path | None = None,
    seed: int = 17,
    test_size: int = 1024,
    dev_min: int = 1000,
    passages_min: int = 320,
    gettext: str = "auto",
    train_max: int | None = None,
) -> dict:
    """Pre-flight, download, extract, pair, filter and split; write {train,dev,test}.tsv.gz,
    (with LibreOffice help) test_numbers.tsv.gz and test_passages.jsonl.gz, and SOURCES.md.

    gettext: "auto" adds the gettext catalogues of GETTEXT_PACKAGES only when a family is missing
    (a language with all three keeps the recipe of the committed km corpus); "yes", "no".
    train_max: cap train at a seeded sample of this many pairs (None: no cap)."""
    check_lang(lang, SCRIPT_RANGES)
    if gettext not in GETTEXT_MODES:
        raise LlinkError(f"--gettext {gettext!r}: expected one of {', '.join(GETTEXT_MODES)}")
    out_dir = Path(out_dir) if out_dir is not None else Path("data") / f"en-{lang}"
    work_dir = Path(work_dir) if work_dir is not None else Path(".work") / "debian"
    avail = families.preflight(lang, extra=list(GETTEXT_PACKAGES))
    _say(avail.summary())
    keep = _translation_filter(lang)

    catalogues: dict[str, list[Pair]] = {}
    gettext_meta: dict[str, dict] = {}
    if gettext == "yes" or (gettext == "auto" and not avail.complete):
        names = [n for n in GETTEXT_PACKAGES if n in avail.versions]
        g_roots, g_versions = fetch_packages(names, work_dir, avail.versions) if names else ({}, {})
        for name in names:
            pairs = [p for p in catalogue_pairs(g_roots[name], name, lang) if keep(p)]
            if pairs:
                catalogues[name] = pairs
                gettext_meta[name] = {"version": g_versions[name], "project": GETTEXT_PACKAGES[name],
                                      "licence": licence(g_roots[name], name), "pairs": len(pairs)}
        _say(f"{lang}: gettext catalogues with {lang} strings in {len(catalogues)} of {len(names)} "
             f"packages searched: {', '.join(catalogues) or 'none'}")
    elif not avail.found:
        raise not_in_debian(lang, None)
    if not avail.found and not catalogues:
        raise not_in_debian(lang, len(GETTEXT_PACKAGES))

    pkgs = avail.packages
    roots, versions = fetch_packages([n for fam in avail.found for n in pkgs.family(fam)], work_dir,
                                     avail.versions)
    help_files = {}
    if "help" in avail.found:
        help_files = {f: [p for p in ps if keep(p)]
                      for f, ps in help_pairs(roots[pkgs.help], roots[pkgs.help_en]).items()}
    ui = [p for p in ui_pairs(roots[pkgs.ui]) if keep(p)] if "ui" in avail.found else []
    firefox = []
    if "firefox" in avail.found:
        firefox = [p for p in firefox_pairs(roots[pkgs.firefox], roots[pkgs.firefox_en]) if keep(p)]

    splits, passages = split_corpus(help_files, ui, firefox, seed=seed, test_size=test_size, dev_min=dev_min,
                                    passages_min=passages_min, gettext=catalogues, lang=lang,
                                    train_max=train_max)
    names = SPLITS + (HELD_OUT_PAIR_SPLITS if help_files else ())
    for name in names:
        write_pairs(out_dir / f"{name}.tsv.gz", splits[name], lang=lang)
    if help_files:
        write_passages(out_dir / "test_passages.jsonl.gz", passages, lang=lang)
    else:  # files of an earlier build would no longer match these splits
        for stale in ("test_passages.jsonl.gz", *(f"{s}.tsv.gz" for s in HELD_OUT_PAIR_SPLITS)):
            (out_dir / stale).unlink(missing_ok=True)
    stats = {
        "lang": lang, "seed": seed, "packages": versions,
        "candidates": {"help": sum(map(len, help_files.values())), "ui": len(ui),
                       "firefox": len(firefox)},
        "splits": {name: _counts(splits[name]) for name in names},
        "test_passages": _passage_counts(passages),
        "test_numbers_files": len({p.source.split("#")[0] for p in splits["test_numbers"]}),
    }
    if gettext != "auto":
        stats["gettext_mode"] = gettext
    if train_max:
        stats["train_max"] = train_max
    if not avail.complete or catalogues:
        stats |= {"families": {"found": avail.found, "missing": avail.missing},
                  "gettext": gettext_meta,
                  "held_out": {k: splits[k] for k in ("test_projects", "dev_catalogues")}}
        stats["candidates"]["gettext"] = sum(map(len, catalogues.values()))
    (out_dir / "SOURCES.md").write_text(sources_md(stats, test_size, dev_min, passages_min), encoding="utf-8")
    _say(f"{lang}: " + ", ".join(f"{n} {stats['splits'][n]['pairs']:,}" for n in names) + f" -> {out_dir}")
    return stats


# --- packages ---------------------------------------------------------------------------------


def fetch_packages(names: list[str], work_dir: Path,
                   expected: dict[str, str] | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """`apt-get download` + `dpkg-deb -x` each package; return extraction roots and versions.
    A .deb already downloaded is reused when its version is the one apt-cache expects."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise LlinkError(f"`{tool}` not found: building the corpus needs a Debian/Ubuntu "
                             "system with apt (the committed data/ files need no rebuild)")
    roots, versions = {}, {}
    for name in tqdm(names, desc="packages", unit="pkg", disable=None):
        deb = _download(name, work_dir / "debs" / name, (expected or {}).get(name))
        versions[name] = _run(["dpkg-deb", "-f", str(deb), "Version"], name).strip()
        root = work_dir / "root" / name
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(root)], name)
        roots[name] = root
    return roots, versions


def _download(name: str, dest: Path, version: str | None = None) -> Path:
    debs = sorted(dest.glob("*.deb"))
    if version and len(debs) == 1 and _run(["dpkg-deb", "-f", str(debs[0]), "Version"], name).strip() == version:
        return debs[0]  # firefox-esr (80 MB) serves every language
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
        # Only packages apt-cache lists get here (families.preflight), so a failure is the mirror
        # or stale lists, not a package Debian lacks.
        raise LlinkError(
            f"`{' '.join(cmd)}` failed for package {name}: {' / '.join(err)}. "
            "apt-cache lists it: check the network, and refresh stale package lists with "
            "`apt-get update` (Debian bookworm with main + security sources)."
        )
    return res.stdout


# --- filters and splits -----------------------------------------------------------------------


def _translation_filter(lang: str):
    ranges = SCRIPT_RANGES[lang]

    def keep(p: Pair) -> bool:
        in_script = any(lo <= ord(ch) <= hi for ch in p.src for lo, hi in ranges)
        return bool(p.src and p.en) and p.src != p.en and in_script

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
    gettext: dict[str, list[Pair]] | None = None,
    lang: str = "km",
    train_max: int | None = None,
) -> tuple[dict[str, list], list[Passage]]:
    """test from Firefox, dev = whole help files, test_passages = other whole help files,
    test_numbers = the sentence pairs of those files that share a number between their sides,
    train = the rest of LibreOffice, with every held-out string removed from it.

    `gettext` (package -> pairs) joins train; without Firefox, test is sampled from whole gettext
    projects instead, and without help, dev is whole catalogues: gettext packages and LibreOffice
    UI .mo files (no passages, no numbers then). The result also names them: "test_projects"
    (packages) and "dev_catalogues" (packages, or `ui:<name>.mo`)."""
    gettext = gettext or {}
    test_units: list[str] = []
    if firefox or not gettext:
        test = sample_test(firefox, test_size, seed, lang)
    else:
        test, test_units = choose_test_projects(gettext, test_size, seed, is_test_eligible, lang)
    in_test = _strings(test) | _strings([p for pkg in test_units for p in gettext[pkg]])
    dev_files: list[str] = []
    dev_units: list[str] = []
    if help_files or not gettext:
        dev_files = choose_dev_files(help_files, in_test, dev_min, seed, lang)
        dev = _dedup(p for f in dev_files for p in help_files[f] if _clean(p, in_test))
        held_out = in_test | _strings(dev)
    else:  # whole catalogues: gettext packages outside test, and LibreOffice's UI .mo files
        units = {pkg: ps for pkg, ps in gettext.items() if pkg not in test_units}
        for p in ui:
            units.setdefault(p.source, []).append(p)
        dev_units = choose_dev_units(units, in_test, dev_min, seed, lang)
        dev = _dedup(p for u in dev_units for p in units[u] if _clean(p, in_test))
        held_out = in_test | _strings([p for u in dev_units for p in units[u]])  # whole catalogues
    by_file: dict[str, list[Passage]] = {}
    if help_files:
        by_file = choose_passage_files(help_files, set(dev_files), held_out, passages_min, passages_per_file, seed)
    passages = [q for f in sorted(by_file) for q in by_file[f]]
    test_numbers = number_pairs({f: help_files[f] for f in by_file}, held_out)  # before the files join held_out
    held_out |= _strings([p for f in by_file for p in help_files[f]])  # the whole file, not only its passages
    train_files = sorted(set(help_files) - set(dev_files) - set(by_file))
    rest = [p for f in train_files for p in help_files[f]]
    rest += [p for p in ui if p.source not in dev_units]
    rest += [p for pkg in gettext if pkg not in test_units + dev_units for p in gettext[pkg]]
    train = cap(_dedup(p for p in rest if _clean(p, held_out)), train_max, seed)
    if not train:
        raise LlinkError(f"{lang}: nothing left for train once dev and test are held out; "
                         "lower --test_size or --dev_min")
    return {"train": train, "dev": dev, "test": test, "test_numbers": test_numbers,
            "test_projects": test_units, "dev_catalogues": dev_units}, passages


def sample_test(firefox: list[Pair], size: int, seed: int, lang: str = "km") -> list[Pair]:
    test = sample_eligible(firefox, size, seed, is_test_eligible)
    if len(test) < size:
        raise too_little(lang, "test", f"only {len(test)} Firefox pairs pass the test filters "
                         f"(need {size})", "test_size", size)
    return test


def choose_dev_files(help_files: dict[str, list[Pair]], banned: set[str], dev_min: int,
                     seed: int, lang: str = "km") -> list[str]:
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
        raise too_little(lang, "dev", f"only {len(seen)} help pairs available (need {dev_min})",
                         "dev_min", dev_min)
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
    language = language_name(stats["lang"])
    return sources_note.sources_md(stats, test_size, dev_min, passages_min, language)
