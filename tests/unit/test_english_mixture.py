"""English-only examples mixed into the parallel pairs (issue 26): sizes, nesting, the record in
config.json, the run key of a parallel-only run left as it was, and clear errors."""

import gzip
import json

import pytest

from llink.data.io import Pair
from llink.data.mixture import english_count, mix, read_english
from llink.errors import LlinkError
from llink_app.__main__ import main

from .test_align import args, write_pairs
from .test_stage_b import stage_a  # noqa: F401 - a fixture


def english_file(path, n=200):
    rows = [json.dumps({"en": f"the {w} number {i} walks home", "kind": "sentence"}) for i, w in
            zip(range(n), ["red", "green", "blue", "old", "new"] * n)]
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    return path


PAIRS = [Pair(f"km {i}", f"en {i}") for i in range(40)]


def test_the_share_sets_how_many_english_texts_join(tmp_path):
    eng = english_file(tmp_path / "e.jsonl.gz")
    assert [english_count(40, s) for s in (0.0, 0.2, 0.5, 1.0)] == [0, 10, 40, 40]
    same, rec = mix(PAIRS, 0.0, 17, eng)
    assert same == PAIRS and rec == {"english_share": 0.0, "parallel": 40, "english": 0}
    half, rec = mix(PAIRS, 0.5, 17, eng)
    assert half[:40] == PAIRS and len(half) == 80 and rec["english"] == 40
    assert all(p.src == p.en and p.source == "english-only" for p in half[40:])
    only, rec = mix(PAIRS, 1.0, 17, eng)
    assert rec["parallel"] == 0 and len(only) == 40 and all(p.src == p.en for p in only)
    # a smaller share takes part of a larger one's sample: one cache serves every mixture
    small, _ = mix(PAIRS, 0.2, 17, eng)
    assert {p.en for p in small[40:]} <= {p.en for p in half[40:]}


def test_the_train_pairs_own_english_sides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    half, rec = mix(PAIRS, 0.5, 17, "pairs")
    assert half[:40] == PAIRS and rec == {"english_share": 0.5, "parallel": 40, "english": 40, "english_data": "pairs"}
    assert sorted(p.src for p in half[40:]) == sorted(p.en for p in PAIRS) and all(p.src == p.en for p in half[40:])
    with pytest.raises(LlinkError, match="needs 120 English texts.*the train pairs' English sides has 40 distinct"):
        mix(PAIRS, 0.75, 17, "pairs")
    (tmp_path / "pairs").write_text("a file of that name\n", encoding="utf-8")
    with pytest.raises(LlinkError, match="a file ./pairs exists too"):
        mix(PAIRS, 0.5, 17, "pairs")


def test_english_files_and_their_errors(tmp_path):
    (tmp_path / "e.txt").write_text("one text\n\n  two   texts \n", encoding="utf-8")
    assert read_english(tmp_path / "e.txt") == ["one text", "two texts"]
    with pytest.raises(LlinkError, match="does not exist"):
        read_english(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(LlinkError, match="line 1: needs a string field `en`"):
        read_english(tmp_path / "bad.jsonl")
    (tmp_path / "e.csv").write_text("a\n", encoding="utf-8")
    with pytest.raises(LlinkError, match=r"must be \.jsonl"):
        read_english(tmp_path / "e.csv")
    with pytest.raises(LlinkError, match="needs 120 English texts"):
        mix(PAIRS, 0.75, 17, english_file(tmp_path / "few.jsonl.gz", n=50))
    with pytest.raises(LlinkError, match="between 0 and 1"):
        mix(PAIRS, 1.5, 17, tmp_path / "e.txt")


def test_stage_a_trains_on_a_mixture_and_records_it(tiny_dirs, tmp_path, capsys):
    from llink.model import LLINK

    data, eng = write_pairs(tmp_path / "pairs.tsv"), english_file(tmp_path / "e.jsonl.gz")
    assert main(args(tiny_dirs, data, tmp_path / "par", epochs=2)) == 0
    assert main(args(tiny_dirs, data, tmp_path / "mix", epochs=2, english_share=0.5, english_data=eng)) == 0
    par, mixed = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("par", "mix"))
    assert par["train_pairs"] == 96 and mixed["train_pairs"] == 192
    cfg = LLINK.from_pretrained(tmp_path / "mix" / "llink").config
    assert cfg.mixture["stage_a"] == {"english_share": 0.5, "parallel": 96, "english": 96, "english_data": str(eng)}
    # a parallel-only run keys as before the option existed: its share stays out of the key
    key = LLINK.from_pretrained(tmp_path / "par" / "llink").config.run_key
    ckpt = json.loads((tmp_path / "par" / "summary.json").read_text())["run_key"]
    assert key == ckpt != cfg.run_key
    capsys.readouterr()
    assert main(args(tiny_dirs, data, tmp_path / "bad", epochs=1, english_share=0.5, english_data=tmp_path / "none.jsonl")) == 2
    assert "none.jsonl does not exist" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before the run directory (or any model) is made
    # a file given without a share would be ignored: refused before any model loads, as a bad share is
    assert main(args(tiny_dirs, data, tmp_path / "noshare", epochs=1, english_data=eng)) == 2
    assert "only with --english_share > 0" in capsys.readouterr().err
    assert main(args(tiny_dirs, data, tmp_path / "range", epochs=1, english_share=1.5)) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "noshare" / "llink").exists() and not (tmp_path / "range" / "llink").exists()


def test_english_offset_moves_english_only_inputs_where_the_foreign_side_lies(tiny_dirs, tmp_path, capsys):
    import torch

    from llink.data.mixture import SOURCE
    from llink.encoders import encode_cached, load_encoder
    from llink.model import LLINK
    from llink_app.recipes.align import shift_english

    enc = load_encoder(tiny_dirs["encoder"])
    pairs = [Pair(f"km {i} {w}", f"en {w} {i}") for i, w in enumerate(["red", "green", "blue", "old", "new", "big"] * 5)]
    extra = [Pair(t, t, SOURCE) for t in ("the red one walks", "a green house", "old new big")]
    train = pairs + extra
    x = torch.from_numpy(encode_cached(enc, [p.src for p in train], progress=False))
    en_sides = torch.from_numpy(encode_cached(enc, [p.en for p in pairs], progress=False)).double()
    src = x[:30].double()
    for how in ("mean", "procrustes"):
        moved = x.clone()
        rec = shift_english(enc, train, moved, how)
        assert torch.equal(moved[:30], x[:30])  # parallel pairs as read
        offset = src.mean(0) - en_sides.mean(0)
        assert rec == {"how": how, "offset_norm": round(float(offset.norm()), 4)}
        if how == "mean":
            torch.testing.assert_close(moved[30:].double(), x[30:].double() + offset, atol=1e-5, rtol=0)
        else:  # an orthogonal map: distances among the English-only inputs are kept
            torch.testing.assert_close(torch.cdist(moved[30:], moved[30:]), torch.cdist(x[30:], x[30:]), atol=1e-4, rtol=0)
            # and the pairs' English sides, moved the same way, land nearer their own foreign sides than the mean shift puts them
            u, _, vt = torch.linalg.svd((en_sides - en_sides.mean(0)).T @ (src - src.mean(0)))
            rotated = (en_sides - en_sides.mean(0)) @ (u @ vt) + src.mean(0)
            assert (rotated - src).norm() < (en_sides + offset - src).norm()
    with pytest.raises(LlinkError, match="both parallel pairs and English-only"):
        shift_english(enc, pairs, x[:30].clone(), "mean")

    data, eng = write_pairs(tmp_path / "pairs.tsv"), english_file(tmp_path / "e.jsonl.gz")
    assert main(args(tiny_dirs, data, tmp_path / "off", epochs=2, english_share=0.5, english_data=eng, english_offset="procrustes")) == 0
    cfg = LLINK.from_pretrained(tmp_path / "off" / "llink").config
    assert cfg.mixture["stage_a"]["english_offset"]["how"] == "procrustes"
    capsys.readouterr()
    assert main(args(tiny_dirs, data, tmp_path / "nooff", epochs=1, english_offset="mean")) == 2
    assert "0 < --english_share < 1" in capsys.readouterr().err
    assert main(args(tiny_dirs, data, tmp_path / "badoff", epochs=1, english_share=0.5, english_data=eng, english_offset="rotate")) == 2
    assert "--english_offset must be one of none, mean, procrustes" in capsys.readouterr().err
    assert not (tmp_path / "nooff" / "llink").exists() and not (tmp_path / "badoff" / "llink").exists()


def test_stage_b_and_the_baseline_train_on_the_same_mixture(stage_a, tmp_path):  # noqa: F811
    from llink.model import LLINK

    from .test_stage_b import slots_args

    eng = english_file(tmp_path / "e.jsonl.gz")
    assert main(slots_args(stage_a, tmp_path / "b", steps=4, eval_every=4, english_share=0.5, english_data=eng)) == 0
    mixture = LLINK.from_pretrained(tmp_path / "b" / "llink").config.mixture
    n = mixture["stage_b"]["parallel"]
    assert mixture["stage_b"] == {"english_share": 0.5, "parallel": n, "english": n, "english_data": str(eng)}
    assert mixture["stage_a"]["english"] == 0  # the Stage A artifact's own record travels with it
    argv = slots_args(stage_a, tmp_path / "d", steps=4, eval_every=4, english_share=0.5, english_data=eng)
    direct = ["finetune-direct", f"--decoder={stage_a['dirs']['decoder']}"] + [
        a for a in argv[1:] if not a.startswith(("--from_stage_a", "--lr_expander"))]
    assert main(direct) == 0
    cfg = json.loads((tmp_path / "d" / "direct" / "config.json").read_text())
    assert cfg["mixture"] == mixture["stage_b"]


def test_stage_b_gives_english_only_examples_the_hints_of_a_translation(stage_a, tmp_path):  # noqa: F811
    from llink.hints import english_hints, extract_hints
    from llink_app.recipes.slots import SlotsConfig, SlotsRecipe

    eng = english_file(tmp_path / "e.jsonl.gz")
    recipe = SlotsRecipe(SlotsConfig(from_stage_a=stage_a["artifact"], train_data=stage_a["data"], dev_data=stage_a["data"],
                                     tasks="translate", max_dev=32, precision="fp32", progress=False, out=tmp_path / "b",
                                     hints=True, english_share=0.5, english_data=eng))
    recipe.setup()
    english = [(e, kw["hints"]) for e, kw in zip(recipe.examples, recipe.train_kw) if e.src == e.en]
    foreign = [(e, kw["hints"]) for e, kw in zip(recipe.examples, recipe.train_kw) if e.src != e.en]
    assert english and foreign
    # "the red number 3 walks home": the number a translation keeps, not the answer's words
    assert all(h == english_hints(e.src) and h == [e.src.split()[3]] for e, h in english)
    assert all(h == extract_hints(e.src) for e, h in foreign)
    assert all(kw["hints"] == extract_hints(s) for (s, _, _), kw in zip(recipe.dev, recipe.dev_kw))


def test_english_only_examples_get_their_own_answer_cap(stage_a, tmp_path, capsys):  # noqa: F811
    from .test_stage_b import slots_args

    # the English texts are 6 words (~8 tokens): a cap of 3 drops them all, a cap of 40 keeps them,
    # and the parallel examples keep their cap either way
    eng = english_file(tmp_path / "e.jsonl.gz")
    common = dict(steps=1, eval_every=1, checkpoint_every=1, english_share=0.5, english_data=eng, max_answer_tokens=200)
    assert main(slots_args(stage_a, tmp_path / "all", **common)) == 0
    full = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert full["english_only"] > 0
    assert main(slots_args(stage_a, tmp_path / "none", english_answer_tokens=3, **common)) == 0
    none = json.loads((tmp_path / "none" / "summary.json").read_text())
    assert none["english_only"] == 0 and none["examples"] == full["examples"] - full["english_only"]
    assert none["run_key"] != full["run_key"]
    capsys.readouterr()
    assert main(slots_args(stage_a, tmp_path / "x", english_answer_tokens=40)) == 2
    assert "--english_answer_tokens 40: needs --english_share > 0" in capsys.readouterr().err
    assert main(slots_args(stage_a, tmp_path / "y", english_answer_tokens=0, english_share=0.5, english_data=eng)) == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert main(slots_args(stage_a, tmp_path / "z", english_data="pairs")) == 2
    assert "--english_data pairs: English-only texts join the pairs only with --english_share > 0" in capsys.readouterr().err
    assert not any((tmp_path / d / "llink").exists() for d in "xyz")
