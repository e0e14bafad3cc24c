"""General English corpus (issue 26): extractors on tiny fixtures in each package's real format,
cleaning/splitting/paragraph rules, cross-source dedup, byte-reproducibility and clear errors.
No network: `fetch` and `subprocess.run` are replaced."""

from __future__ import annotations

import gzip
import json
import random
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from llink.data import english as E
from llink.errors import LlinkError

# --- fixtures in the packages' formats ---------------------------------------------------------

WORDNET_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
02084071 05 n 05 dog 0 domestic_dog 0 Canis_familiaris 0 023 @ 02083346 n 0000 | a member of the genus Canis (probably descended from the common wolf) that has been domesticated by man since prehistoric times; "the dog barked all night"; "the dogs were waiting patiently at the door"
07929351 13 n 01 coffee 0 java 0 002 @ 07881800 n 0000 | a beverage consisting of an infusion of ground coffee beans; "he ordered a cup of coffee"
"""
WORDNET_VERB = """\
00001740 29 v 04 breathe 0 take_a_breath 0 021 * 00005041 v 0000 02 + 02 00 + 08 00 | draw air into, and expel out of, the lungs; "I can breathe better when the air is clean"; "The patient is respiring"
"""

GCIDE = """\
Abandon \\A*ban"don\\ ([.a]*b[a^]n"d[u^]n), v. t. [imp. & p. p.
   {Abandoned}; p. pr. & vb. n. {Abandoning}.] [OF.
   abandoner, F. abandonner; a (L. ad) + bandon permission,
   authority. See {Ban}.]
   1. To cast or drive out; to banish; to expel; to reject.
      [Obs.]
      [1913 Webster]

            That he might abandon them from him forever and ever. --Udall.
      [1913 Webster]

   2. (Law) To give up absolutely; to forsake entirely; to renounce
      utterly; to relinquish all connection with it. The sailors
      abandoned the ship when the storm broke over the harbour.
      [1913 Webster]

   Syn: To give up; yield; forego; cede; surrender; resign.

   {To abandon ship}, to leave a vessel at sea in an emergency.
      [1913 Webster]

Cafe \\Caf['e]\\, n. [F.]
   A coffee house where the caf['e] owner serves good coffee daily.
   [1913 Webster]
"""

DEVIL = """\
ABSURDITY, n.  A statement or belief manifestly inconsistent with one's own
opinion.

    The flabby wine-skin of his brain
    Yields to some pathologic strain.
                                           "The Mad Philosopher," 1697

ACADEME, n.  An ancient school where morality and philosophy were taught.
"""

WEB_OT = [
    "",
    '<div sID="gen2" type="front"/> <title type="main">Preface to the World English Bible</title> '
    "This preface is front matter and is never taken as a chapter of the text.",
    '<chapter n="1" osisID="Gen.1" sID="Gen.1"/>',
    '<w lemma="strong:H0430">In</w> <w>the</w> beginning, God<note placement="foot">The Hebrew word '
    "rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note> created the heavens and the earth.",
    "The earth was formless and empty. Darkness was on the surface of the deep and God’s Spirit was "
    "hovering over the surface of the waters.",
    '<div sID="gen26" type="x-p"/>God said, “Let there be light,” and there was light.',
    "God saw the light, and saw that it was good. God divided the light from the darkness.",
    '<div sID="gen34" type="x-p"/><chapter n="2" osisID="Gen.2" sID="Gen.2"/>',
    '<div canonical="true" eID="gen9" osisID="Gen" type="book"/>'  # misplaced end marker: ignored
    "The heavens, the earth, and all their vast array were finished in those six days.",
]

AUSTEN = [
    "EMMA", "", "By Jane Austen", "", "VOLUME I", "", "CHAPTER I", "",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home",
    "and happy disposition, seemed to unite some of the best blessings of",
    "existence. She had lived nearly twenty-one years in the world with very",
    "little to distress or vex her. Her father was a _most_ affectionate man.",
    "", "\"I am sorry,\" said Mr. Knightley. \"You must go at once to Hartfield.\"", "",
    "CHAPTER II", "", "Mr. Weston was a native of Highbury, and born of a respectable family.",
]


def _b64(n: int) -> str:
    out = ""
    while True:
        out = E._B64[n % 64] + out
        n //= 64
        if not n:
            return out


def _dictd(root: Path, name: str, entries: str) -> None:
    d = root / "usr/share/dictd"
    d.mkdir(parents=True, exist_ok=True)
    header = f"00-database-short\n     {name}\n\n"
    text = header + entries
    index = [f"00-database-short\t{_b64(0)}\t{_b64(len(header))}"]
    pos = len(header.encode())
    body = entries.encode()  # an entry starts at a non-indented line after a blank line
    starts = [0] + [i + 2 for i in range(len(body) - 2) if body[i:i + 2] == b"\n\n" and body[i + 2:i + 3] not in b" \n"]
    for a, b in zip(starts, starts[1:] + [len(body)]):
        head = body[a:b].split(b" ", 1)[0].decode().strip(",")
        index.append(f"{head}\t{_b64(pos + a)}\t{_b64(b - a)}")
    (d / f"{name}.dict.dz").write_bytes(gzip.compress(text.encode(), mtime=0))
    (d / f"{name}.index").write_text("\n".join(sorted(index)) + "\n")


def _sword(root: Path, verses: list[str]) -> None:
    mod = root / "usr/share/sword/modules/texts/ztext/engWEB2015eb"
    mod.mkdir(parents=True)
    raw = "".join(verses).encode()
    block = zlib.compress(raw)
    (mod / "ot.bzs").write_bytes(struct.pack("<III", 0, len(block), len(raw)))
    (mod / "ot.bzz").write_bytes(block)
    offsets, pos = [], 0
    for v in verses:
        offsets.append(struct.pack("<IIH", 0, pos, len(v.encode())))
        pos += len(v.encode())
    (mod / "ot.bzv").write_bytes(b"".join(offsets))
    for ext in ("bzs", "bzz", "bzv"):  # an empty New Testament
        (mod / f"nt.{ext}").write_bytes(b"")


def _rser(obj) -> bytes:
    """Minimal R XDR writer: str lists -> character vectors, int tuples -> integer vectors, dicts ->
    named lists (the second `names` symbol written as a reference, as R does)."""
    seen: list[str] = []

    def i(n: int) -> bytes:
        return struct.pack(">i", n)

    def sym(name: str) -> bytes:
        if name in seen:
            return i(((seen.index(name) + 1) << 8) | 255)
        seen.append(name)
        return i(1) + i(9) + i(len(name)) + name.encode()

    def w(o) -> bytes:
        if isinstance(o, tuple):
            return i(13) + i(len(o)) + b"".join(i(x) for x in o)
        if isinstance(o, list):
            return i(16) + i(len(o)) + b"".join(i(9) + i(len(s.encode())) + s.encode() for s in o)
        values = b"".join(w(v) for v in o.values())  # before the attributes, as in the byte stream
        attrs = i(2 | 0x400) + sym("names") + w(list(o)) + i(254)
        return i(19 | 0x200) + i(len(o)) + values + attrs

    return b"X\n" + i(2) + i(0x40201) + i(0x20300) + w(obj)


def _austen(root: Path, novels: dict[str, list[str]]) -> None:
    d = root / "usr/lib/R/site-library/janeaustenr/data"
    d.mkdir(parents=True)
    rdb, variables = b"", {}
    for name, lines in novels.items():
        raw = _rser(lines)
        rec = struct.pack(">I", len(raw)) + zlib.compress(raw)
        variables[name] = (len(rdb), len(rec))
        rdb += rec
    (d / "Rdata.rdb").write_bytes(rdb)
    index = {"variables": variables, "references": {}, "compressed": (1,)}
    (d / "Rdata.rdx").write_bytes(gzip.compress(_rser(index), mtime=0))


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    r = {name: tmp_path / "root" / name for name in E.PACKAGES}
    wn = r["wordnet-base"] / "usr/share/wordnet"
    wn.mkdir(parents=True)
    (wn / "data.noun").write_text(WORDNET_NOUN)
    (wn / "data.verb").write_text(WORDNET_VERB)
    (wn / "data.adj").write_text("")
    (wn / "data.adv").write_text("")
    _dictd(r["dict-gcide"], "gcide", GCIDE)
    _dictd(r["dict-devil"], "devil", DEVIL)
    _sword(r["sword-text-web"], WEB_OT)
    _austen(r["r-cran-janeaustenr"], {"emma": AUSTEN})
    return r


# --- extractors -------------------------------------------------------------------------------


def test_wordnet_glosses_and_examples(roots):
    entries = dict(E.wordnet_entries(roots["wordnet-base"]))
    assert set(entries) == {"noun.02084071", "noun.07929351", "verb.00001740"}  # licence header skipped
    assert entries["noun.02084071"] == [
        "a member of the genus Canis (probably descended from the common wolf) that has been "
        "domesticated by man since prehistoric times",
        "the dog barked all night", "the dogs were waiting patiently at the door"]


def test_gcide_definitions_and_quotations(roots):
    entries = list(E.gcide_entries(roots["dict-gcide"]))
    blocks = dict(entries)
    abandon = next(v for k, v in blocks.items() if k.startswith("Abandon@"))
    assert abandon == [
        "To cast or drive out; to banish; to expel; to reject.",  # header and [Obs.] gone
        "That he might abandon them from him forever and ever.",  # citation gone
        "To give up absolutely; to forsake entirely; to renounce utterly; to relinquish all connection "
        "with it. The sailors abandoned the ship when the storm broke over the harbour.",  # (Law) gone
    ]  # Syn: list and {phrase} sub-entry dropped
    cafe = next(v for k, v in blocks.items() if k.startswith("Cafe@"))
    assert cafe == ["A coffee house where the café owner serves good coffee daily."]


def test_devil_prose_without_verse(roots):
    entries = {k: [" ".join(b.split()) for b in v] for k, v in E.devil_entries(roots["dict-devil"])}
    assert entries["ABSURDITY"] == ["A statement or belief manifestly inconsistent with one's own opinion."]
    assert entries["ACADEME"] == ["An ancient school where morality and philosophy were taught."]


def test_web_chapters_paragraphs_no_notes(roots):
    entries = list(E.web_entries(roots["sword-text-web"]))
    assert [k for k, _ in entries] == ["Gen.1", "Gen.2"]  # front matter skipped
    paras = [" ".join(p.split()) for p in entries[0][1] if p.strip()]
    assert len(paras) == 2  # split at the translators' x-p marker
    assert paras[0].startswith("In the beginning, God created the heavens")  # footnote removed
    assert "Hebrew" not in " ".join(paras) and "Preface" not in " ".join(paras)
    assert paras[1].startswith("God said, “Let there be light,”")
    assert " ".join(entries[1][1]).split() == "The heavens, the earth, and all their vast array were finished in those six days.".split()


def test_austen_chapters_from_r_data(roots):
    entries = list(E.austen_entries(roots["r-cran-janeaustenr"]))
    assert [k for k, _ in entries] == ["emma.1", "emma.2"]  # title page and VOLUME line skipped
    first = entries[0][1]
    assert first[0].startswith("Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy")
    assert "a most affectionate man" in first[0]  # _italics_ marks removed
    assert first[1] == "\"I am sorry,\" said Mr. Knightley. \"You must go at once to Hartfield.\""


def test_r_reader_rejects_other_formats():
    with pytest.raises(LlinkError, match="not R XDR"):
        E._unserialize(b"RDX3\n")


# --- cleaning, splitting, paragraphs ----------------------------------------------------------


def test_split_sentences_rules():
    text = ("Mr. Knightley met Dr. J. Smith in the U.S. Army camp. \"Is it far?\" asked she. "
            "It was not! (He smiled.) 3 men came, e.g. Tom and Ned. \"Yes,\" said he, \"go.\" Then silence.")
    assert E.split_sentences(text) == [
        "Mr. Knightley met Dr. J. Smith in the U.S. Army camp.",
        "\"Is it far?\" asked she.",  # ? before a lower-case word is not an end
        "It was not!",
        "(He smiled.)",
        "3 men came, e.g. Tom and Ned.",
        "\"Yes,\" said he, \"go.\"",
        "Then silence.",
    ]


def test_clean_and_sentence_filter():
    assert E.clean("pride--from  a\u200b general . . . wish") == "pride—from a general … wish"
    assert E.good_sentence("The dog barked all night long.")
    assert not E.good_sentence("Too short here.")  # 3 words
    assert not E.good_sentence(" ".join(["word"] * 61))  # > 60 words
    assert not E.good_sentence("Call 555-1234 or 555-9876 or 555-0000 now")  # > 20% non-letters
    assert not E.good_sentence("See {Ban} for the whole story here")  # markup residue
    assert not E.good_sentence("THE END OF THE FIRST VOLUME")  # no lower-case letter
    assert E._non_letter_share("abc, de.") == pytest.approx(2 / 7)


def test_paragraph_limits():
    rng = random.Random(0)
    sents = [f"Sentence number {i} says something quite ordinary about the weather today." for i in range(40)]
    sents[10] = None  # a dropped sentence breaks a run
    paras = E.paragraphs(sents, rng)
    assert paras
    for p in paras:
        n = len(E.split_sentences(p))
        assert E.MIN_SENTENCES <= n <= E.MAX_SENTENCES and E.MIN_CHARS <= len(p) <= E.MAX_CHARS
        assert not ("number 9 " in p and "number 11 " in p)
    assert len({len(E.split_sentences(p)) for p in paras}) > 1  # seeded lengths vary
    long = ["A sentence that is long enough to matter " + "x" * 800 + "."] * 3
    assert E.paragraphs(long, rng) == []  # never above MAX_CHARS
    assert E.paragraphs(["Only one sentence here, alone in its block, and it is long enough."], rng) == []


# --- build ------------------------------------------------------------------------------------


def _fake_fetch(roots):
    return lambda name, cache_dir: (roots[name], "1.0-test")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


def test_build_dedup_reproducible(roots, tmp_path, monkeypatch):
    monkeypatch.setattr(E, "fetch", _fake_fetch(roots))
    # The same sentence in WordNet (an example) and GCIDE (a definition): kept once, from WordNet.
    wn = roots["wordnet-base"] / "usr/share/wordnet/data.adv"
    wn.write_text('00001740 02 r 01 daily 0 000 | every day; "A coffee house where the café owner serves good coffee daily."\n')
    a = E.build_english(tmp_path / "a", seed=17, progress=False)
    b = E.build_english(tmp_path / "b", seed=17, progress=False)
    assert (tmp_path / "a/english.jsonl.gz").read_bytes() == (tmp_path / "b/english.jsonl.gz").read_bytes()
    assert (tmp_path / "a/SOURCES.md").read_text() == (tmp_path / "b/SOURCES.md").read_text()
    assert a == b
    rows = _rows(tmp_path / "a/english.jsonl.gz")
    keys = [E.dedup_key(r["en"]) for r in rows]
    assert len(keys) == len(set(keys))
    cafe = [r for r in rows if "café owner" in r["en"]]
    assert len(cafe) == 1 and cafe[0]["source"] == "wordnet-base:adv.00001740"
    assert {r["kind"] for r in rows} == {"sentence", "paragraph"}
    assert {r["source"].split(":")[0] for r in rows} == set(E.PACKAGES)
    for r in rows:
        assert set(r) == {"en", "kind", "source"}
        if r["kind"] == "sentence":
            assert E.good_sentence(r["en"])
        else:
            assert E.MIN_CHARS <= len(r["en"]) <= E.MAX_CHARS
    assert a["packages"]["dict-gcide"]["distinct"] == a["packages"]["dict-gcide"]["extracted"] - 1
    md = (tmp_path / "a/SOURCES.md").read_text()
    assert "| `dict-gcide` | `1.0-test` | GPL-2.0-or-later" in md and "WordNet 3.0 Copyright 2006" in md
    E.build_english(tmp_path / "c", seed=18, progress=False)
    reseeded = [r["en"] for r in _rows(tmp_path / "c/english.jsonl.gz") if r["kind"] == "sentence"]
    sentences = [r["en"] for r in rows if r["kind"] == "sentence"]
    assert sorted(reseeded) == sorted(sentences) and reseeded != sentences  # same text, another order


def test_caps_are_a_seeded_sample(roots, tmp_path, monkeypatch):
    monkeypatch.setattr(E, "fetch", _fake_fetch(roots))
    stats = E.build_english(tmp_path / "o", packages=["wordnet-base"], caps={"sentence": 3, "paragraph": 0},
                            progress=False)
    assert stats["packages"]["wordnet-base"]["sentence"] == 3 and stats["rows"] == 3


class _Done:
    def __init__(self, rc: int, out: str = "", err: str = ""):
        self.returncode, self.stdout, self.stderr = rc, out, err


def test_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(LlinkError, match="no English extractor for fortunes"):
        E.build_english(tmp_path, packages=["fortunes"], progress=False)
    monkeypatch.setattr(E.shutil, "which", lambda tool: f"/usr/bin/{tool}")

    def fake_run(cmd, **kw):
        if cmd[:2] == ["apt-cache", "show"]:
            return _Done(0, "Package: wordnet-base\nVersion: 1\n") if cmd[2] == "wordnet-base" else \
                _Done(100, err="E: No packages found")
        return _Done(100, err="E: Failed to fetch http://deb.debian.org/... Temporary failure resolving")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(LlinkError, match="not in Debian bookworm"):
        E.fetch("no-such-package", tmp_path)
    with pytest.raises(LlinkError, match="could not download wordnet-base .*network"):
        E.fetch("wordnet-base", tmp_path)
    # a package whose files are not where the extractor looks: a clear message, not a traceback
    monkeypatch.setattr(E, "fetch", lambda name, cache_dir: (tmp_path / "empty", "9"))
    with pytest.raises(LlinkError, match="dict-devil 9: unexpected file layout"):
        E.build_english(tmp_path / "o", packages=["dict-devil"], progress=False)


def test_cli_english_reports_unknown_package(tmp_path, capsys):
    from llink_app.__main__ import main

    assert main(["data", "english", "--out", str(tmp_path), "--packages", "wordnet-base,nope"]) == 2
    assert "no English extractor for nope" in capsys.readouterr().err
