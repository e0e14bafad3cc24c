"""Languages beyond km (issue 27): pre-flight, gettext catalogues, splits held out by source, and
the committed data/en-<lang>/ corpora. Offline: apt and downloads are replaced, never called."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from llink.data import debian, families, gettext_sources, load_pairs
from llink.data.debian import split_corpus
from llink.data.scripts import SCRIPT_RANGES as SCRIPTS
from llink.data.io import Pair
from llink.errors import LlinkError

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
# What `llink data build` made on bookworm and is committed (SOURCES.md in each folder).
BUILT = ("hi", "my", "am", "si", "ka", "ta", "th", "dz")
ENGLISH_SIDES = {families.HELP_EN_PACKAGE: "1", families.FIREFOX_EN_PACKAGE: "1"}


# --- pre-flight ---------------------------------------------------------------------------------


def _no_download(*args, **kw):
    raise AssertionError("nothing may be downloaded for a language Debian lacks")


def test_language_with_nothing_fails_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setattr(families, "apt_candidates", lambda names: dict(ENGLISH_SIDES))
    monkeypatch.setattr(debian, "fetch_packages", _no_download)
    with pytest.raises(LlinkError) as e:
        debian.build_corpus("lo", out_dir=tmp_path / "o", work_dir=tmp_path / "w")
    msg = str(e.value)
    assert msg.startswith("`lo`: not in Debian bookworm: no libreoffice-help-lo, libreoffice-l10n-lo, "
                          "firefox-esr-l10n-lo, and no gettext catalogues for it in the packages searched")
    assert "apt-get update" not in msg
    assert not (tmp_path / "o").exists()


def test_gettext_packages_searched_but_without_the_language(tmp_path, monkeypatch):
    # The gettext packages exist but hold no catalogue for the language: the same message.
    known = dict(ENGLISH_SIDES) | {n: "1" for n in gettext_sources.GETTEXT_PACKAGES}
    monkeypatch.setattr(families, "apt_candidates", lambda names: {n: v for n, v in known.items() if n in names})
    fetched = []

    def fake_fetch(names, work_dir, expected=None):
        fetched.extend(names)
        return {n: tmp_path / "empty" for n in names}, {n: "1" for n in names}

    monkeypatch.setattr(debian, "fetch_packages", fake_fetch)
    with pytest.raises(LlinkError, match=r"`bo`: not in Debian bookworm: .*no gettext catalogues"):
        debian.build_corpus("bo", out_dir=tmp_path / "o", work_dir=tmp_path / "w")
    assert set(fetched) == set(gettext_sources.GETTEXT_PACKAGES)  # only the small catalogue packages


def test_families_found_and_missing():
    versions = dict(ENGLISH_SIDES) | {"firefox-esr-l10n-my": "1", "libreoffice-l10n-am": "1"}
    my = families.preflight("my", query=lambda names: versions)
    assert my.found == ["firefox"] and my.missing == ["help", "ui"] and not my.complete
    assert "found firefox-esr-l10n-my; missing libreoffice-help-my, libreoffice-l10n-my" in my.summary()
    hi = families.preflight("hi", query=lambda names: {n: "1" for n in names})
    assert hi.complete and hi.packages.firefox == "firefox-esr-l10n-hi-in"
    with pytest.raises(LlinkError, match="apt-get update"):  # empty lists: the one case it helps
        families.preflight("km", query=lambda names: {})


@pytest.mark.parametrize("lang, message", [
    ("xx1", "not a language code"), ("en", "English is the other side"), ("zz", "no script range for language 'zz'"),
])
def test_invalid_codes_exit_2_without_traceback(lang, message, capsys):
    from llink_app.__main__ import main

    assert main(["data", "build", "--lang", lang]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# --- gettext catalogues -------------------------------------------------------------------------


def write_mo(path: Path, entries: list[tuple[str, str]]) -> Path:
    """A minimal little-endian GNU .mo file (no hash table)."""
    entries = sorted(entries)
    n = len(entries)
    ids = [k.encode() for k, _ in entries]
    strs = [v.encode() for _, v in entries]
    data_at = 28 + 16 * n
    blob, table_ids, table_strs = b"", [], []
    for items, table in ((ids, table_ids), (strs, table_strs)):
        for s in items:
            table.append((len(s), data_at + len(blob)))
            blob += s + b"\0"
    head = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    body = b"".join(struct.pack("<2I", *t) for t in table_ids + table_strs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + body + blob)
    return path


def test_catalogue_pairs_plain_text_from_msgids(tmp_path):
    root = tmp_path / "pkg"
    entries = [("", "Content-Type: text/plain; charset=UTF-8\n"), ("_Open File", "ဖိုင် _ဖွင့်ရန်"),
               ("menu\x04&Quit", "ထွက်ရန်"), ("%d file\x00%d files", "ဖိုင် %d ခု"),
               ("%s: %d", "%s: %d"), ("translator-credits", "Somebody"), ("Untranslated", "")]
    write_mo(root / "usr/share/locale/my/LC_MESSAGES/app.mo", entries)
    write_mo(root / "usr/share/locale/my_MM/LC_MESSAGES/other.mo", [("Close", "ပိတ်ရန်")])
    write_mo(root / "usr/share/locale/mya@x/LC_MESSAGES/no.mo", [("Close", "x")])  # another locale
    got = {(p.src, p.en, p.source) for p in gettext_sources.catalogue_pairs(root, "pkg", "my")}
    assert got == {("ဖိုင် ဖွင့်ရန်", "Open File", "gettext:pkg/app"), ("ထွက်ရန်", "Quit", "gettext:pkg/app"),
                   ("ဖိုင် %d ခု", "%d file", "gettext:pkg/app"), ("ပိတ်ရန်", "Close", "gettext:pkg/other")}


def test_licence_from_copyright(tmp_path):
    doc = tmp_path / "usr/share/doc/p"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                                   "Files: *\nCopyright: x\nLicense: GPL-2+\n\nFiles: po/*\nLicense: LGPL-2.1+\n")
    assert gettext_sources.licence(tmp_path, "p") == "LGPL-2.1+"
    (doc / "copyright").write_text("This package was debianized by someone.\n\n  it under the terms of the GNU "
                                   "General Public License as published by\n  the Free Software Foundation; "
                                   "either version 2 of the License, or\n  (at your option) any later version.\n")
    assert gettext_sources.licence(tmp_path, "p") == "GPL-2+"
    assert "not in the .deb" in gettext_sources.licence(tmp_path, "absent")


# --- splits held out by source ------------------------------------------------------------------


def _catalogues() -> dict[str, list[Pair]]:
    """Three single-package projects; English of >= 3 words so every pair is test-eligible."""
    letters = "ကခဂဃငစဆဇ"
    return {pkg: [Pair(f"{letters[k]}{letters[j % 8]}{'ဝ' * (j // 8)}", f"{pkg} string number {j}", f"gettext:{pkg}/d")
                  for j in range(n)]
            for k, (pkg, n) in enumerate((("big", 60), ("mid", 40), ("small", 30)))}


def test_fallback_test_is_whole_projects_and_leaves_train():
    cat = _catalogues()
    cat["big"].append(Pair("ကကဝဝဝဝဝဝဝဝ", "big string number 64", "gettext:big/d"))
    shared = Pair("ကကဝဝဝဝဝဝဝဝ", "big string number 64", "ui:x.mo")  # a test-project string, again in the UI
    s, passages = split_corpus({}, [shared], [], seed=3, test_size=50, dev_min=20, passages_min=0,
                               gettext=cat, lang="my")
    assert len(s["test"]) == 50 and s["test_projects"] == ["big"]  # the largest project suffices
    assert {p.source for p in s["test"]} == {"gettext:big/d"}
    held = {x for p in cat["big"] + [shared] for x in (p.src, p.en)}
    assert not any(p.src in held or p.en in held for p in s["train"] + s["dev"])  # every string of it
    dev_units = set(s["dev_catalogues"])
    assert dev_units and "big" not in dev_units and len(s["dev"]) >= 20
    assert not dev_units & {p.source.split(":")[1].split("/")[0] for p in s["train"]}
    assert passages == [] and s["test_numbers"] == []


def test_fallback_dev_whole_catalogues_with_firefox_test():
    cat = _catalogues()
    firefox = [Pair(f"ဖ{'က' * i}", f"firefox line number {i}", f"firefox:a.ftl#k{i}") for i in range(40)]
    s, _ = split_corpus({}, [], firefox, seed=1, test_size=30, dev_min=35, passages_min=0, gettext=cat, lang="si")
    assert {p.source.split(":")[0] for p in s["test"]} == {"firefox"} and s["test_projects"] == []
    dev_pkgs = {p.source.split(":")[1].split("/")[0] for p in s["dev"]}
    train_pkgs = {p.source.split(":")[1].split("/")[0] for p in s["train"]}
    assert dev_pkgs == set(s["dev_catalogues"]) and not dev_pkgs & train_pkgs and train_pkgs
    capped, _ = split_corpus({}, [], firefox, seed=1, test_size=30, dev_min=35, passages_min=0, gettext=cat,
                             lang="si", train_max=10)
    assert len(capped["train"]) == 10 and set(capped["train"]) <= set(s["train"])


@pytest.mark.parametrize("kw, option", [({"test_size": 500}, "--test_size"), ({"dev_min": 5000}, "--dev_min")])
def test_too_little_names_language_split_and_option(kw, option):
    args = {"seed": 3, "test_size": 50, "dev_min": 20, "passages_min": 0} | kw
    with pytest.raises(LlinkError) as e:
        split_corpus({}, [], [], gettext=_catalogues(), lang="am", **args)
    msg = str(e.value)
    split = "test" if option == "--test_size" else "dev"
    assert msg.startswith(f"am: too little for the {split} split") and option in msg


# --- the committed corpora ----------------------------------------------------------------------


@pytest.mark.parametrize("lang", BUILT)
def test_committed_corpus_loads(lang):
    folder = REPO_DATA / f"en-{lang}"
    assert sum(f.stat().st_size for f in folder.iterdir()) < 3_000_000
    test = load_pairs("test", lang)
    assert len(test) >= 500
    ranges = SCRIPTS[lang]
    assert all(any(lo <= ord(ch) <= hi for ch in p.src for lo, hi in ranges) for p in test)
    train = load_pairs("train", lang)
    assert train and not {p.src for p in test} & {p.src for p in train}
    assert (folder / "SOURCES.md").is_file()
