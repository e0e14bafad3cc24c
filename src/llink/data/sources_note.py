"""SOURCES.md of a corpus built by llink.data.debian: packages, licences, how pairs and splits
were made. A language with all three package families, no gettext and no cap (km, hi) gets the
exact text of the committed km corpus (whose bytes run keys depend on); any other build also
says which families exist, lists its gettext catalogues with their licences, and tells where
dev and test came from instead.
"""

from __future__ import annotations

import textwrap

from llink.data.families import FAMILIES, Packages

_DEFAULTS = {"test_size": 1024, "dev_min": 1000, "passages_min": 320, "gettext": "auto", "train_max": None}


def sources_md(stats: dict, test_size: int, dev_min: int, passages_min: int, language: str) -> str:
    fams = stats.get("families", {"found": list(FAMILIES), "missing": []})
    full = not fams["missing"] and not stats.get("gettext") and not stats.get("train_max")
    opts = {"test_size": test_size, "dev_min": dev_min, "passages_min": passages_min}
    return "".join([
        _header(stats, language, fams, full),
        _licence(language, fams["found"], bool(stats.get("gettext")), full),
        _pairs(stats, fams["found"], full),
        _splits(stats, opts, fams["found"], full),
        _columns(stats["lang"], fams["found"], full),
        _rebuild(stats, opts, "help" in fams["found"]),
    ])


def _fill(text: str) -> str:
    """One markdown paragraph or bullet, wrapped like the hand-written ones."""
    return textwrap.fill(text, width=98, subsequent_indent="  " if text.startswith("- ") else "",
                         break_on_hyphens=False, break_long_words=False)


def _header(stats: dict, language: str, fams: dict, full: bool) -> str:
    lang = stats["lang"]
    rows = "\n".join(f"| `{n}` | `{v}` |" for n, v in stats["packages"].items())
    text = f"""# English–{language} (`{lang}`) corpus: sources and licence

Derived from these Debian bookworm (main + security) binary packages, fetched with
`apt-get download`:

| package | version |
|---|---|
{rows}
"""
    if full:
        return text
    pkgs = Packages.for_lang(lang)
    found = ", ".join(f"`{pkgs.family(f)[0]}`" for f in fams["found"]) or "none"
    missing = ", ".join(f"`{pkgs.family(f)[0]}`" for f in fams["missing"]) or "none"
    text += "\n" + _fill(f"Package families in bookworm for `{lang}`: found {found}; missing {missing}.") + "\n"
    if gt := stats.get("gettext"):
        rows = "\n".join(f"| `{n}` | {m['project']} | `{m['version']}` | {m['licence']} | {m['pairs']:,} |"
                         for n, m in gt.items())
        text += f"""
Gettext catalogues with {lang} strings (pairs: after the script filter, before de-duplication):

| package | project | version | licence | pairs |
|---|---|---|---|---|
{rows}
"""
    return text


def _licence(language: str, found: list[str], gettext: bool, full: bool) -> str:
    text = "\n## Licence and attribution\n"
    if full:
        return text + f"""
The text is from LibreOffice (help and user interface, © The Document Foundation and
contributors) and Firefox ESR (© Mozilla Foundation and contributors), including the work of
the volunteer {language} translators of both projects. It is distributed under the
**Mozilla Public License 2.0** (https://mozilla.org/MPL/2.0/); these files are a derived,
filtered extract and remain under MPL-2.0.
"""
    parts = [x for x, ok in (("help", "help" in found), ("user interface", "ui" in found)) if ok]
    products = ([f"LibreOffice ({' and '.join(parts)}, © The Document Foundation and contributors)"] if parts else []) \
        + (["Firefox ESR (© Mozilla Foundation and contributors)"] if "firefox" in found else [])
    if products:
        prefixes = " or ".join(f"`{f}:`" for f in FAMILIES if f in found)
        text += "\n" + _fill(
            f"Pairs whose `source` starts with {prefixes} are from {' and '.join(products)}, including the "
            f"work of the volunteer {language} translators. They are distributed under the **Mozilla Public "
            "License 2.0** (https://mozilla.org/MPL/2.0/) and remain under MPL-2.0.") + "\n"
    if gettext:
        text += """
Pairs whose `source` starts with `gettext:<package>/` are from that package's translation
catalogue, under the package's licence as its `/usr/share/doc/<package>/copyright` states it
(table above; machine-readable files: the `Files: po/*` stanza, else `Files: *`; free-form ones:
each GNU licence the text names). These are a derived, filtered extract and remain under those
licences, with the copyright of each project's translators.
"""
    return text


def _pairs(stats: dict, found: list[str], full: bool) -> str:
    lang, cand = stats["lang"], stats["candidates"]
    bullets = []
    if "help" in found:
        bullets.append(f"""- **help**: `libreoffice-help-{lang}` vs `libreoffice-help-en-us`: paragraphs and headings paired
  by file path and element id; HTML markup removed; only the default variant of OS/application
  switches kept.""")
    if "ui" in found:
        bullets.append(f"""- **ui**: `libreoffice-l10n-{lang}` `.mo` catalogues (msgid is `context\\x04English`); mnemonic
  markers (`~`, a lone `_` in dialog strings, `(~X)`) removed.""")
    if "firefox" in found:
        bullets.append(f"""- **firefox**: `firefox-esr-l10n-{lang}` language pack vs the en-US resources in `firefox-esr`'s
  `omni.ja` and `browser/omni.ja`: Fluent `.ftl` messages/attributes and `.properties` keys
  paired by resource path and key.""")
    if stats.get("gettext"):
        bullets.append(f"""- **gettext**: the `/usr/share/locale/{lang}[_XX]/LC_MESSAGES/*.mo` catalogues of the packages
  above (llink/data/gettext_sources.py lists the packages searched); the English is the msgid
  (context and plural forms dropped), mnemonics removed (`_`, `~`, a lone Qt `&`), translator
  credits and pairs whose English is only placeholders or markup dropped.""")
    if full:
        counts = f"help {cand['help']:,},\n  ui {cand['ui']:,}, firefox {cand['firefox']:,}."
    else:
        counts = ", ".join(f"{k} {cand[k]:,}" for k in (*FAMILIES, "gettext") if k in found or
                           (k == "gettext" and k in cand)) + "."
    bullets.append(f"""- Normalisation (both sides): Unicode NFC, U+200B and U+FEFF removed, whitespace collapsed,
  stripped. Pairs dropped when empty, when the {lang} side equals the English, or when it has no
  character of the {lang} script (untranslated fall-backs). Exact (text, English) duplicates
  removed. Candidates after filtering, before de-duplication: {counts}""")
    return "\n## How the pairs were made\n\n" + "\n".join(bullets) + "\n"


def _splits(stats: dict, opts: dict, found: list[str], full: bool) -> str:
    lang, held = stats["lang"], stats.get("held_out", {})
    text = f"\n## Splits (seed {stats['seed']})\n\n"
    if "firefox" in found:
        text += f"""- **test**: exactly {opts['test_size']:,} Firefox pairs, seeded sample, whose {lang} side has no Latin
  letter or ASCII digit, whose English has at least 3 words, with no `{{`, `%`, `<`, `&` on
  either side; every English and every {lang} string unique within test.
"""
    else:
        packages = held.get("test_projects", [])
        projects = sorted({stats["gettext"][p]["project"] for p in packages})
        text += _fill(
            f"- **test** (no Firefox langpack for {lang}): the fewest whole gettext projects whose eligible "
            f"pairs reach {opts['test_size']:,}, largest first: {', '.join(projects)} (packages "
            f"{', '.join(f'`{p}`' for p in packages)}). Exactly {opts['test_size']:,} pairs, "
            f"seeded sample, whose {lang} side has no Latin letter or ASCII digit, whose English has at "
            f"least 3 words, with no `{{`, `%`, `<`, `&` on either side; every English and every {lang} "
            "string unique within test. Every string of those packages leaves dev and train, so test "
            "measures software whose translators train never saw.") + "\n"
    if "help" in found:
        text += _help_splits(stats, opts)
    else:
        text += _fill(
            f"- **dev** (no LibreOffice help for {lang}): whole catalogues outside test's projects (a gettext "
            "package, or one LibreOffice UI `.mo`), chosen by a seeded shuffle until at least "
            f"{opts['dev_min']:,} pairs (passing over one that would take dev past twice that while others "
            f"remain): {', '.join(f'`{p}`' for p in held.get('dev_catalogues', []))}; pairs whose English "
            f"or {lang} text occurs in test removed. Every string of those catalogues leaves train.") + f"""
- **test_passages**, **test_numbers**: not built: both are whole LibreOffice help files, and
  Debian bookworm has no `libreoffice-help-{lang}`.
"""
    if full:
        text += f"""- **train**: all other help files plus the UI catalogues; pairs whose English or {lang} text
  occurs anywhere in the dev, test or test_passages files removed."""
    else:
        sources = [x for x, ok in (("other help files", "help" in found), ("LibreOffice UI", "ui" in found),
                                   ("gettext packages outside dev and test", bool(stats.get("gettext")))) if ok]
        text += _fill(
            f"- **train**: everything not held out above ({', '.join(sources)}); pairs whose English or {lang} "
            "text occurs anywhere in the dev, test" + (" or test_passages files removed." if "help" in found
                                                         else " or held-out catalogues removed.")
            + (f" Capped at a seeded sample of {stats['train_max']:,} pairs (original order kept) so the "
               "committed files stay small." if stats.get("train_max") else ""))
    counts = "\n".join(
        f"| {s} | {c['pairs']:,} | {', '.join(f'{k} {v:,}' for k, v in c['sources'].items())} |"
        for s, c in stats["splits"].items()
    )
    return text + f"""

| split | pairs | by source |
|---|---|---|
{counts}

"""


def _help_splits(stats: dict, opts: dict) -> str:
    lang, tp = stats["lang"], stats["test_passages"]
    tn_count = stats["splits"].get("test_numbers", {}).get("pairs", 0)
    tn_files = stats.get("test_numbers_files", 0)
    return f"""- **dev**: whole help files, chosen by a seeded shuffle until at least {opts['dev_min']:,} pairs; pairs
  whose English or {lang} text occurs in test removed.
- **test_passages** (comprehension): whole help files, not in dev, chosen by a seeded shuffle
  (a stream of its own, so dev is unchanged) among files that give at least 4 passages, until at
  least {opts['passages_min']:,} passages. A passage is a run of consecutive paragraphs of one file (never
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
"""


def _columns(lang: str, found: list[str], full: bool) -> str:
    if "help" in found:
        return f"""Columns of each `.tsv.gz` (test_numbers too): `{lang}`, `en`, `source` (provenance:
`help:<file>.xhp#<id>`, `ui:<catalogue>.mo`, `firefox:<resource>#<key>`).
`test_passages.jsonl.gz` has the same three fields (`source` is
`help:<file>.xhp#<first id>..<last id>`) plus `file`, `title` (the file's first heading), `module`
(the program) and `sentences` (English sentences); every pairs reader reads it, and the part of
`source` before `#` groups passages by document.
""" + ("" if full else "`gettext:<package>/<domain>` names a gettext catalogue.\n")
    kinds = [x for x, ok in (("`ui:<catalogue>.mo`", "ui" in found), ("`firefox:<resource>#<key>`", "firefox" in found),
                             ("`gettext:<package>/<domain>`", True)) if ok]
    return _fill(f"Columns of each `.tsv.gz`: `{lang}`, `en`, `source` (provenance: {', '.join(kinds)}).") + "\n"


def _rebuild(stats: dict, opts: dict, has_help: bool) -> str:
    given = {**opts, "gettext": stats.get("gettext_mode", "auto"), "train_max": stats.get("train_max")}
    if not has_help:
        given["passages_min"] = _DEFAULTS["passages_min"]  # no help: the option does nothing
    options = "".join(f" --{k} {v}" for k, v in given.items() if v != _DEFAULTS[k])
    return f"""
## Rebuild

    llink data build --lang {stats['lang']}{options}

Needs a Debian bookworm system with apt; the archive's versions move with security updates, so a
rebuild later may differ slightly from the committed files.
"""
