"""Pair reading/writing, normalisation, and the committed English–Khmer splits."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from llink.data import Pair, load_pairs, load_split, normalize, read_pairs, write_pairs
from llink.data.debian import (
    is_test_eligible,
    parse_ftl,
    parse_properties,
    split_corpus,
    strip_mnemonics,
)
from llink.data.splits import corpus_stats, find_data_dir, split_stats
from llink.errors import LlinkError

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
KM = "ភាសាខ្មែរ"


def write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- normalisation ----------------------------------------------------------------------------


def test_normalize_removes_zero_width_space_and_collapses_whitespace():
    assert normalize("\ufeff  ភាសា\u200bខ្មែរ \t\n ok\u00a0 ") == "ភាសាខ្មែរ ok"


def test_normalize_applies_nfc():
    decomposed = "e\u0301"  # e + combining acute
    assert normalize(decomposed) == "\u00e9"
    assert normalize("\u1100\u1161") == "\uac00"  # Hangul jamo compose too


def test_normalize_keeps_zero_width_joiners():
    assert normalize("a\u200db\u200cc") == "a\u200db\u200cc"


# --- reading ----------------------------------------------------------------------------------


def test_tsv_without_header(tmp_path):
    f = write(tmp_path / "d.tsv", f"{KM}\u200b\tKhmer language\nក\tthe letter ka\n")
    assert read_pairs(f) == [Pair(KM, "Khmer language"), Pair("ក", "the letter ka")]


def test_tsv_with_header_and_provenance(tmp_path):
    f = write(tmp_path / "d.tsv", f"km\ten\tsource\n{KM}\tKhmer\thelp:x.xhp#p1\n\n")
    assert read_pairs(f) == [Pair(KM, "Khmer", "help:x.xhp#p1")]


@pytest.mark.parametrize(
    "header", ["src\ten", "source_text\tenglish", "SRC\tTGT", "lo\ten", "source\tenglish"]
)
def test_tsv_header_names_are_recognised(tmp_path, header):
    f = write(tmp_path / "d.tsv", f"{header}\n{KM}\tKhmer\n")
    assert read_pairs(f) == [Pair(KM, "Khmer")]


def test_tsv_header_columns_may_be_reordered(tmp_path):
    f = write(tmp_path / "d.tsv", f"en\tkm\nKhmer\t{KM}\n")
    assert read_pairs(f) == [Pair(KM, "Khmer")]


def test_tsv_extra_language_code(tmp_path):
    f = write(tmp_path / "d.tsv", "th\ten\nภาษาไทย\tThai\n")
    assert read_pairs(f, lang="th") == [Pair("ภาษาไทย", "Thai")]


def test_tsv_gz_and_crlf(tmp_path):
    f = write(tmp_path / "d.tsv.gz", f"km\ten\r\n{KM}\tKhmer\r\n")
    assert read_pairs(f) == [Pair(KM, "Khmer")]


def test_jsonl_and_field_names(tmp_path):
    rows = [
        {"src": KM, "en": "Khmer", "source": "mine"},
        {"km": "ក", "english": "ka"},
        {"text": "ខ", "target": "kha"},
        {"source": "គ", "tgt": "ko"},
    ]
    f = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    assert read_pairs(f) == [
        Pair(KM, "Khmer", "mine"), Pair("ក", "ka"), Pair("ខ", "kha"), Pair("គ", "ko")
    ]


def test_jsonl_gz(tmp_path):
    f = write(tmp_path / "d.jsonl.gz", json.dumps({"src": KM, "en": "Khmer"}) + "\n")
    assert read_pairs(f) == [Pair(KM, "Khmer")]


@pytest.mark.parametrize("name", ["out.tsv", "out.tsv.gz", "out.jsonl", "out.jsonl.gz"])
def test_write_then_read_round_trip(tmp_path, name):
    pairs = [Pair(KM, "Khmer", "a:b"), Pair("ក\tខ", "two\nlines", "")]
    write_pairs(tmp_path / name, pairs)
    assert read_pairs(tmp_path / name) == [Pair(KM, "Khmer", "a:b"), Pair("ក ខ", "two lines", "")]


def test_write_gz_is_deterministic(tmp_path):
    pairs = [Pair(KM, "Khmer", "x")]
    write_pairs(tmp_path / "a.tsv.gz", pairs)
    write_pairs(tmp_path / "b.tsv.gz", pairs)
    assert (tmp_path / "a.tsv.gz").read_bytes() == (tmp_path / "b.tsv.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.tsv.gz").read_bytes()).startswith(b"km\ten\tsource\n")


# --- errors: always LlinkError naming the file (and line) ---------------------------------------


def assert_error(path: Path, *fragments: str) -> None:
    with pytest.raises(LlinkError) as e:
        read_pairs(path)
    msg = str(e.value)
    for frag in (path.name, *fragments):
        assert frag in msg, msg


def test_error_missing_file(tmp_path):
    assert_error(tmp_path / "nope.tsv", "no such file")


def test_error_one_column(tmp_path):
    f = write(tmp_path / "data.tsv", f"km\ten\n{KM}\tKhmer\nonly one column\n")
    assert_error(f, "data.tsv:3:", "expected 2 tab-separated columns (source, english), found 1")


def test_error_empty_after_normalisation(tmp_path):
    f = write(tmp_path / "data.tsv", f"{KM}\tKhmer\n\u200b \tEnglish\n")
    assert_error(f, "data.tsv:2:", "empty")
    g = write(tmp_path / "e.tsv", f"{KM}\t  \n")
    assert_error(g, "e.tsv:1:", "empty English")


def test_error_invalid_json(tmp_path):
    f = write(tmp_path / "d.jsonl", '{"src": "ក", "en": "ka"}\n{"src": "ខ", "en": \n')
    assert_error(f, "d.jsonl:2:", "invalid JSON")


def test_error_json_missing_field(tmp_path):
    f = write(tmp_path / "d.jsonl", '{"src": "ក"}\n')
    assert_error(f, "d.jsonl:1:", "English")
    g = write(tmp_path / "e.jsonl", '["ក", "ka"]\n')
    assert_error(g, "e.jsonl:1:", "JSON object")


def test_error_unknown_extension(tmp_path):
    f = write(tmp_path / "d.csv", "ក,ka\n")
    assert_error(f, "unknown file type")


def test_error_no_pairs(tmp_path):
    assert_error(write(tmp_path / "d.tsv", "km\ten\n"), "no pairs")
    assert_error(write(tmp_path / "e.jsonl", "\n\n"), "no pairs")


def test_error_bad_utf8_and_bad_gzip(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_bytes("ក\tka\n".encode() + b"\xff\xfe\tx\n")
    assert_error(f, "d.tsv:2:", "UTF-8")
    g = tmp_path / "d.tsv.gz"
    g.write_bytes(b"not gzip")
    assert_error(g, "gzip")


# --- which column is which: never a silent misread ----------------------------------------------

HI = "हिन्दी भाषा"


def test_hi_header_with_provenance_column_reads_the_hindi(tmp_path):
    # What `llink data build --lang hi` writes: the provenance column must not become the text.
    f = write(tmp_path / "test.tsv.gz", f"hi\ten\tsource\n{HI}\tHindi language\tfirefox:a.ftl#k\n")
    want = [Pair(HI, "Hindi language", "firefox:a.ftl#k")]
    assert read_pairs(f) == want  # hi is a code the builder knows
    assert read_pairs(f, lang="hi") == want
    assert read_pairs(f, lang="km") == want  # the CLI's default --lang: the known code still wins
    assert load_pairs("test", "km", f) == want
    g = write(tmp_path / "hi.jsonl", json.dumps({"hi": HI, "en": "Hindi", "source": "p"}) + "\n")
    assert read_pairs(g) == [Pair(HI, "Hindi", "p")]


def test_lang_column_wins_over_other_candidates(tmp_path):
    f = write(tmp_path / "d.tsv", f"text\tth\ten\nnote\tภาษาไทย\tThai\n")
    assert read_pairs(f, lang="th") == [Pair("ภาษาไทย", "Thai")]
    g = write(tmp_path / "d.jsonl", json.dumps({"text": "note", "th": "ภาษาไทย", "en": "Thai"}))
    assert read_pairs(g, lang="th") == [Pair("ภาษาไทย", "Thai")]


@pytest.mark.parametrize("header, why", [
    ("ml\ten\tsource", "is 'ml' the source-language text, or 'source'?"),  # unknown code
    ("km\tsource", "no English column"),
    ("foo\ten", "no source-language text column"),
    ("km\tlo\ten", "two candidate source-language text columns ('km', 'lo')"),
    ("km\ten\tenglish", "two candidate English columns"),
])
def test_unidentifiable_header_is_an_error(tmp_path, header, why):
    f = write(tmp_path / "data.tsv", f"{header}\nภาษาไทย\tThai\tx\n")
    assert_error(f, "cannot tell the columns apart", repr(header), why,
                 "name the columns <lang> (or src) and en", "or pass --lang")


def test_unidentifiable_jsonl_fields_are_an_error(tmp_path):
    f = write(tmp_path / "d.jsonl", json.dumps({"ml": "മലയാളം", "en": "Malayalam", "source": "x"}))
    assert_error(f, "d.jsonl:1:", "cannot tell the fields apart", "'ml'", "or pass --lang")
    assert read_pairs(f, lang="ml") == [Pair("മലയാളം", "Malayalam", "x")]


def test_headerless_file_with_english_first_is_refused(tmp_path):
    f = write(tmp_path / "swapped.tsv", f"Hindi language\t{HI}\nThe letter ka\tक\n")
    assert_error(f, "columns look swapped", "column 1", "Latin", "column 2", "Hindi (hi)",
                 "swap the columns", "en<TAB>hi")
    g = write(tmp_path / "swapped.tsv.gz", f"Khmer language\t{KM}\n")
    assert_error(g, "columns look swapped", "Khmer (km)")


def test_header_whose_columns_hold_each_others_text_is_refused(tmp_path):
    f = write(tmp_path / "d.tsv", f"km\ten\nKhmer language\t{KM}\n")
    assert_error(f, "columns look swapped", "column 'km'", "column 'en'", "check the header line")
    g = write(tmp_path / "d.jsonl", json.dumps({"src": "Khmer", "en": KM}, ensure_ascii=False))
    assert_error(g, "fields look swapped", "field 'src'", "field 'en'")


def test_headerless_km_file_still_read_including_latin_words(tmp_path):
    rows = f"{KM}\tKhmer language\nបើក Firefox\tOpen Firefox\nAPI ថ្មី\tnew API\n"
    f = write(tmp_path / "d.tsv", rows)
    assert read_pairs(f, lang="km") == [
        Pair(KM, "Khmer language"), Pair("បើក Firefox", "Open Firefox"), Pair("API ថ្មី", "new API")
    ]
    # All-Latin on both sides (e.g. a romanised language) is not "swapped".
    assert read_pairs(write(tmp_path / "r.tsv", "sabai dee\thello\n")) == [Pair("sabai dee", "hello")]


# --- builder pieces (no network) ----------------------------------------------------------------


def test_strip_mnemonics():
    assert strip_mnemonics("~File", dialog=False) == "File"
    assert strip_mnemonics("ឯកសារ (~F)", dialog=False) == "ឯកសារ"
    assert strip_mnemonics("Broch_ure", dialog=True) == "Brochure"
    assert strip_mnemonics("_Row:", dialog=True) == "Row:"
    assert strip_mnemonics("file_name", dialog=False) == "file_name"
    assert strip_mnemonics("a_b_c", dialog=True) == "a_b_c"


def test_parse_ftl_messages_attributes_and_continuations():
    ftl = (
        "# comment\n"
        "simple = Hello world\n"
        "multi =\n"
        "    First line\n"
        "    second line\n"
        "button =\n"
        "    .label = Save page\n"
        "    .accesskey = S\n"
        "-brand = Firefox\n"
    )
    got = parse_ftl(ftl)
    assert got["simple"] == "Hello world"
    assert normalize(got["multi"]) == "First line second line"
    assert got["button.label"] == "Save page"
    assert got["button.accesskey"] == "S"
    assert "button" not in got
    assert got["-brand"] == "Firefox"


def test_parse_properties():
    text = "# c\nkey1 = Value one\nkey2=Long \\\n    value\nkey3 = caf\\u00e9\\nnext\n"
    got = parse_properties(text)
    assert got == {"key1": "Value one", "key2": "Long value", "key3": "café\nnext"}


def test_test_eligibility():
    assert is_test_eligible(Pair("បើកផ្ទាំងថ្មី", "Open a new tab"))
    assert not is_test_eligible(Pair("បើកផ្ទាំង", "Open tab"))  # < 3 English words
    assert not is_test_eligible(Pair("បើក Firefox ថ្មី", "Open Firefox again now"))  # Latin
    assert is_test_eligible(Pair("ផ្ទាំង ២", "Open tab 2 now"))  # Khmer digits are fine
    assert not is_test_eligible(Pair("ផ្ទាំង 2", "Open tab 2 now"))  # ASCII digit
    assert not is_test_eligible(Pair("បើក", "Open { $n } tabs"))  # placeable


def test_split_corpus_holds_out_whole_files_and_decontaminates():
    help_files = {f"f{i}.xhp": [Pair(f"ក{i}{j}", f"help {i} {j}", f"help:f{i}.xhp#p{j}")
                                for j in range(10)] for i in range(20)}
    shared = Pair("ខ្ញុំ", "shared words here", "ui:x.mo")  # same strings as a test pair
    firefox = [Pair(f"គ{'ក' * i}", f"firefox line number {i}", f"firefox:a.ftl#k{i}")
               for i in range(30)] + [Pair("ខ្ញុំ", "shared words here", "firefox:a.ftl#s")]
    s, passages = split_corpus(help_files, [shared], firefox, seed=3, test_size=31, dev_min=25, passages_min=0)
    assert len(s["test"]) == 31 and passages == []
    dev_files = {p.source.split("#")[0] for p in s["dev"]}
    train_files = {p.source.split("#")[0] for p in s["train"]}
    assert len(s["dev"]) >= 25 and not dev_files & train_files
    assert shared not in s["train"]
    with pytest.raises(LlinkError):
        split_corpus(help_files, [], firefox, test_size=32, dev_min=25, passages_min=0)


# --- the committed splits -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splits():
    return {s: load_split(s, "km", REPO_DATA) for s in ("train", "dev", "test")}


def strings(pairs):
    return {p.src for p in pairs}, {p.en for p in pairs}


def test_committed_sizes(splits):
    assert len(splits["test"]) == 1024
    assert len(splits["dev"]) >= 1000
    assert len(splits["train"]) >= 10_000


def test_committed_test_filters(splits):
    test = splits["test"]
    assert all(p.source.startswith("firefox:") for p in test)
    assert not [p for p in test if re.search(r"[A-Za-z0-9]", p.src)]
    assert all(len(p.en.split()) >= 3 and not re.search(r"[{%<&]", p.en) for p in test)
    assert all(re.search("[\u1780-\u17ff]", p.src) for p in test)
    assert len({p.src for p in test}) == len(test)
    assert len({p.en for p in test}) == len(test)


def test_committed_splits_do_not_leak(splits):
    train_km, train_en = strings(splits["train"])
    dev_km, dev_en = strings(splits["dev"])
    test_km, test_en = strings(splits["test"])
    assert not train_km & (dev_km | test_km)
    assert not train_en & (dev_en | test_en)
    assert not dev_km & test_km and not dev_en & test_en
    dev_files = {p.source.split("#")[0] for p in splits["dev"]}
    assert not dev_files & {p.source.split("#")[0] for p in splits["train"]}


def test_committed_text_is_normalised(splits):
    for pairs in splits.values():
        for p in pairs:
            assert p.src == normalize(p.src) and p.en == normalize(p.en)
            assert "\u200b" not in p.src and p.src != p.en
    assert {p.source.split(":")[0] for p in splits["train"]} == {"help", "ui"}


def test_split_stats_and_data_dir(monkeypatch, tmp_path):
    st = split_stats([Pair("ក", "a b c", "help:x"), Pair("ខគ", "d", "ui:y.mo")])
    assert st["pairs"] == 2 and st["sources"] == {"help": 1, "ui": 1}
    assert st["src_chars_median"] == 1.5 and st["en_words_mean"] == 2.0
    all_stats = corpus_stats("km", REPO_DATA)
    assert all_stats["test"]["pairs"] == 1024
    monkeypatch.setenv("LLINK_DATA_DIR", str(tmp_path))
    assert find_data_dir() == tmp_path
    with pytest.raises(LlinkError, match="llink data build --lang km"):
        load_split("train")
    with pytest.raises(LlinkError, match="unknown split"):
        load_split("validation")
