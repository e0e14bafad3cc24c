"""The comprehension split: passages from whole help files, never trained on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from llink.data import load_pairs, read_pairs
from llink.data.debian import split_corpus
from llink.data.io import Pair
from llink.data.passages import english_sentences, file_passages, module_of, write_passages
from llink.errors import LlinkError

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
KM = "ក" * 40  # 40 characters of Khmer per paragraph


def par(f: str, i: int, sentences: int = 1, km: str = KM) -> Pair:
    en = " ".join(f"Sentence {i}.{k} of {Path(f).stem}." for k in range(sentences))
    return Pair(f"{km}{i}", en, f"help:{f}#par_id{i}")


def heading(f: str, i: int, text: str = "Title of the page") -> Pair:
    return Pair(f"ខ{i}", text, f"help:{f}#hd_id{i}")


def test_sentence_count():
    assert english_sentences("Click OK. Then choose File - Save. Done!") == 3
    assert english_sentences("Version 7.4 is installed.") == 1  # a decimal point is not a sentence end
    assert english_sentences("") == 0


def test_passages_never_cross_a_heading_and_respect_the_limits():
    f = "text/scalc/01/x.xhp"
    pairs = [heading(f, 0, "Sorting")] + [par(f, i) for i in range(1, 5)] + [heading(f, 5)] + [par(f, 6, sentences=3)]
    ps = file_passages(f, pairs)
    # paragraphs 1-4 (4 sentences, 4 x 41 chars): one passage; after the heading one paragraph of 3
    # sentences but 41 characters of Khmer: too short, dropped
    assert [(q.source, q.sentences) for q in ps] == [(f"help:{f}#par_id1..par_id4", 4)]
    q = ps[0]
    assert q.title == "Sorting" and q.module == "Calc" and q.file == f
    assert q.src == " ".join(f"{KM}{i}" for i in range(1, 5))
    assert english_sentences(q.en) == 4


def test_long_runs_split_at_six_sentences_and_banned_paragraphs_break_runs():
    f = "text/swriter/guide/y.xhp"
    pairs = [par(f, i, sentences=2, km="ក" * 80) for i in range(1, 8)]
    ps = file_passages(f, pairs)
    assert all(2 <= q.sentences <= 6 for q in ps) and len(ps) >= 2
    banned = {pairs[1].en}
    assert all("par_id2" not in q.source.split("#")[1].split("..") for q in file_passages(f, pairs, banned))
    assert module_of("text/sbasic/shared/z.xhp") == "Basic" and module_of("other.xhp") == "unknown"


def test_split_holds_passage_files_out_of_train_and_leaves_dev_unchanged():
    help_files = {}
    for i in range(12):
        f = f"text/shared/f{i}.xhp"
        help_files[f] = [p for j in range(5) for p in (heading(f, 100 * j, f"Part {j} of {f}"),
                                                       *(par(f, 100 * j + k, km=KM + f"ខ{i}") for k in range(1, 5)))]
    firefox = [Pair(f"គ{'ក' * i}", f"firefox line number {i}", f"firefox:a.ftl#k{i}") for i in range(30)]
    # a UI string equal to a passage paragraph must leave train too
    shared_file = "text/shared/f3.xhp"
    ui = [Pair(help_files[shared_file][1].src, help_files[shared_file][1].en, "ui:x.mo")]
    before, none = split_corpus(help_files, ui, firefox, seed=3, test_size=20, dev_min=10, passages_min=0)
    s, passages = split_corpus(help_files, ui, firefox, seed=3, test_size=20, dev_min=10, passages_min=8)
    assert s["dev"] == before["dev"] and s["test"] == before["test"] and none == []
    files = {q.file for q in passages}
    assert len(passages) >= 8 and all(sum(q.file == f for q in passages) >= 4 for f in files)
    train_files = {p.source.split("#")[0][len("help:"):] for p in s["train"] if p.source.startswith("help:")}
    dev_files = {p.source.split("#")[0][len("help:"):] for p in s["dev"]}
    assert not files & train_files and not files & dev_files
    passage_strings = {x for f in files for p in help_files[f] for x in (p.src, p.en)}
    assert not passage_strings & {x for p in s["train"] for x in (p.src, p.en)}
    assert set(s["train"]) < set(before["train"])
    with pytest.raises(LlinkError, match="passages"):
        split_corpus(help_files, ui, firefox, seed=3, test_size=20, dev_min=10, passages_min=10_000)


def test_written_passages_read_back_as_pairs_with_their_metadata(tmp_path):
    f = "text/smath/01/m.xhp"
    ps = file_passages(f, [heading(f, 0, "Formulas")] + [par(f, i) for i in range(1, 5)])
    path = tmp_path / "p.jsonl.gz"
    write_passages(path, ps, "km")
    again = path.read_bytes()
    write_passages(path, ps, "km")
    assert path.read_bytes() == again  # byte-reproducible
    row = json.loads(gzip.decompress(again).decode().splitlines()[0])
    assert row["km"] == ps[0].src and row["title"] == "Formulas" and row["module"] == "Math"
    assert read_pairs(path, lang="km") == [Pair(ps[0].src, ps[0].en, ps[0].source)]


def test_committed_passages_are_held_out_by_file():
    passages = load_pairs("test_passages", "km")
    rows = [json.loads(x) for x in gzip.decompress((REPO_DATA / "en-km" / "test_passages.jsonl.gz").read_bytes()).decode().splitlines()]
    assert len(passages) >= 300 and len(rows) == len(passages)
    assert all(len(r["km"]) >= 150 and 2 <= r["sentences"] <= 6 for r in rows)
    files = {r["file"] for r in rows}
    assert all(sum(r["file"] == f for r in rows) >= 4 for f in files)
    for split in ("train", "dev"):
        used = {p.source.split("#")[0] for p in load_pairs(split, "km")}
        assert not {f"help:{f}" for f in files} & used
    train = load_pairs("train", "km")
    train_strings = {p.src for p in train} | {p.en for p in train}
    assert not {r["en"] for r in rows} & train_strings
