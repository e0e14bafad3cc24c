"""Several languages in one run (issue 27): `--lang km,hi` parsed once, balanced, scored per
language, recorded in config.json; a language the bridge never saw is labelled zero-shot."""

import json

import pytest

from llink.data.io import write_pairs
from llink.data.languages import after_mixture, load_languages, parse_langs
from llink.data.splits import load_split
from llink.errors import LlinkError
from llink_app.__main__ import main

from .test_stage_b import stage_a  # noqa: F401 - a fixture


def test_language_lists_parse_or_say_what_is_wrong():
    assert parse_langs("km") == ["km"]
    assert parse_langs(" km, hi ,si") == ["km", "hi", "si"]
    for bad, msg in (("km,,hi", "comma-separated"), ("km,Hindi", "'Hindi' is not a language code"), ("km,hi,km", "names km twice")):
        with pytest.raises(LlinkError, match=msg):
            parse_langs(bad)


@pytest.fixture()
def three_languages(tmp_path, monkeypatch):
    """Small slices of the committed km, hi and my corpora, sizes chosen to differ."""
    sizes = {"km": 90, "hi": 60, "my": 40}
    for lang, n in sizes.items():
        for split, m in (("train", n), ("dev", 40), ("test", 40)):
            write_pairs(tmp_path / f"en-{lang}" / f"{split}.tsv.gz", load_split(split, lang)[:m], lang=lang)
    monkeypatch.setenv("LLINK_DATA_DIR", str(tmp_path))
    return tmp_path


def test_several_languages_are_balanced_and_one_reads_as_before(three_languages):
    one, tags, rec = load_languages("train", ["km"], max_total=50, seed=3)
    assert len(one) == 50 and rec == {"km": 50} and set(tags) == {"km"}
    pairs, tags, rec = load_languages("train", ["km", "hi"], seed=3)
    assert rec == {"km": 60, "hi": 60} and tags == ["km"] * 60 + ["hi"] * 60
    assert {p.src for p in pairs[60:]} <= {p.src for p in load_split("train", "hi")}
    _, _, rec = load_languages("train", ["km", "hi", "my"], max_total=90, seed=3)
    assert rec == {"km": 30, "hi": 30, "my": 30}
    with pytest.raises(LlinkError, match="holds one language"):
        load_languages("train", ["km", "hi"], data=three_languages / "en-km" / "train.tsv.gz")
    # a user's file: --lang picks its column, but nothing says which language it is, so no record
    assert load_languages("train", ["hi"], data=three_languages / "en-hi" / "train.tsv.gz")[2] is None
    # English only: the bridge saw no pair of any language, so every language is zero-shot to it
    assert after_mixture({"km": 60}, {"english_share": 1.0, "parallel": 0, "english": 60}) == {"km": 0}
    assert after_mixture({"km": 60}, {"english_share": 0.2, "parallel": 60, "english": 15}) == {"km": 60}
    with pytest.raises(LlinkError, match=r"missing .*en-si.*llink data build --lang si"):
        load_languages("train", ["km", "si"])


def test_one_bridge_for_two_languages_and_a_zero_shot_third(tiny_dirs, three_languages, tmp_path, capsys):
    from llink.model import LLINK

    out = tmp_path / "run"
    argv = ["align", f"--encoder={tiny_dirs['encoder']}", f"--decoder={tiny_dirs['decoder']}", "--teacher=layer=1,pooling=mean,norm=zscore",
            "--lang=km,hi", "--batch_size=16", "--epochs=2", "--warmup_steps=2", "--eval_every=5", "--queue_size=32",
            "--hard_negatives=8", "--progress=false", f"--out={out}"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["languages"] == {"km": 60, "hi": 60} and summary["train_pairs"] == 120
    assert summary["dev_r1"] == pytest.approx((summary["dev_r1_km"] + summary["dev_r1_hi"]) / 2)  # each language counts once
    cfg = LLINK.from_pretrained(out / "llink").config
    assert cfg.languages == {"stage_a": {"km": 60, "hi": 60}} and cfg.trained_languages() == ["km", "hi"]
    capsys.readouterr()
    for lang, zero in (("hi", False), ("my", True)):
        assert main(["eval", "retrieval", f"--model={out / 'llink'}", f"--lang={lang}", "--base=false", "--json=true",
                     f"--out={tmp_path / lang}"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["zero_shot"] is zero and res["lang"] == lang and set(res["llink"]) == {"src2en", "en2src"}
    assert main(["eval", "retrieval", f"--model={out / 'llink'}", "--lang=km,my", "--base=false", "--json=true", f"--out={tmp_path / 'two'}"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert {k: v["zero_shot"] for k, v in both.items()} == {"km": False, "my": True}
    assert (tmp_path / "two" / "retrieval_my.json").is_file() and (tmp_path / "two" / "retrieval_ranks_km.png").is_file()
    assert main(argv[:-1] + [f"--out={tmp_path / 'bad'}", "--train_data=" + str(three_languages / "en-km" / "train.tsv.gz")]) == 2
    assert "holds one language" in capsys.readouterr().err


def test_stage_b_and_the_baseline_train_on_several_languages(stage_a, three_languages, tmp_path):  # noqa: F811
    from llink.model import LLINK

    from .test_stage_b import slots_args

    argv = [a for a in slots_args(stage_a, tmp_path / "b", steps=2, eval_every=2, checkpoint_every=2, lang="km,hi")
            if not a.startswith(("--train_data", "--dev_data"))]
    assert main(argv) == 0
    cfg = LLINK.from_pretrained(tmp_path / "b" / "llink").config
    assert cfg.languages["stage_b"] == {"km": 60, "hi": 60} and "km" in cfg.trained_languages() and "hi" in cfg.trained_languages()
    direct = ["finetune-direct", f"--decoder={stage_a['dirs']['decoder']}", f"--out={tmp_path / 'd'}"] + [
        a for a in argv[1:] if not a.startswith(("--from_stage_a", "--lr_expander", "--out"))]
    assert main(direct) == 0
    assert json.loads((tmp_path / "d" / "direct" / "config.json").read_text())["languages"] == {"direct": {"km": 60, "hi": 60}}


def test_an_encoder_blind_to_a_script_is_refused_before_training():
    from types import SimpleNamespace

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from llink.encoders import check_readable, unknown_share

    words = Tokenizer(models.WordLevel({"[UNK]": 0, "open": 1, "file": 2, "បើក": 3}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    enc = SimpleNamespace(id="tiny-words", tokenizer=PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]"))
    assert unknown_share(enc, ["open file", "បើក file"]) == 0.0
    assert unknown_share(enc, ["ཡིག་ཆ open", "ཧྲིལ file"]) == 0.5
    check_readable(enc, ["open ཡིག"], "km")  # half unknown: not over the limit
    with pytest.raises(LlinkError, match=r"tiny-words cannot read --lang dz: 100% of its pieces"):
        check_readable(enc, ["ཡིག་ཆ ཧྲིལ"], "dz")
    assert unknown_share(SimpleNamespace(id="engine"), ["x"]) is None


def test_a_one_language_command_given_several_says_so(capsys):
    assert main(["tokens", "--lang=km,hi"]) == 2
    assert "reads one language's test split" in capsys.readouterr().err
    with pytest.raises(LlinkError, match="reads one language's dev split"):
        load_split("dev", "km,hi")
